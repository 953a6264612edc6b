//! The dedupe key index through its trait, as the ingestion writer uses it, on both engines:
//! the store hands out the index of its engine; events appended in a write transaction are
//! found by the next one and by a reader outside the writer, and by another node's index;
//! PostgreSQL writes key rows and sets its planner settings for the transaction only, SQLite
//! keeps the keys in its tail until a merge.

use companyos_ledger::leaf::EventClass;
use companyos_store::bundles::{self, NewEvent};
use companyos_store::db::{self, Backend, Db, PoolOptions};
use companyos_store::dedupe::{self, EventKeyIndex, IndexChange, KeyIndex};

use crate::stores;

/// Appends events `first..first + count` of `tenant` in one write transaction through the
/// index's hooks, in the writer's order; returns their compact keys, sorted.
async fn append(store: &Db, index: &KeyIndex, tenant: &str, first: u64, count: u64) -> Vec<i64> {
    let ids: Vec<String> = (first..first + count).map(|i| format!("e-{i}")).collect();
    let mut keys: Vec<i64> = ids.iter().map(|id| dedupe::event_key(tenant, id)).collect();
    let events: Vec<NewEvent<'_>> = ids
        .iter()
        .zip(&keys)
        .map(|(id, key)| NewEvent {
            key: *key,
            event_id: id,
            class: EventClass::OnTime,
            flags: &[],
            canonical: "{}",
            source_signature: None,
        })
        .collect();
    let mut guard = index.for_write().await;
    let mut tx = store.begin().await.expect("begin");
    guard.begin_write(&mut tx).await.expect("begin write");
    let appended = bundles::write_events(&mut tx, &[(tenant, first, events)], 0)
        .await
        .expect("write");
    guard
        .write_appended(&mut tx, &appended)
        .await
        .expect("record keys");
    tx.commit().await.expect("commit");
    guard.committed(&appended);
    keys.sort_unstable();
    keys
}

/// The event ids the writer's lookup finds for `keys`, inside a write transaction.
async fn found_by_writer(store: &Db, index: &KeyIndex, keys: &[i64]) -> Vec<String> {
    let mut guard = index.for_write().await;
    let mut tx = store.begin().await.expect("begin");
    guard.begin_write(&mut tx).await.expect("begin write");
    let found = dedupe::lookup(&mut tx, &mut guard, keys)
        .await
        .expect("lookup");
    tx.commit().await.expect("commit");
    let mut ids: Vec<String> = found.into_iter().map(|f| f.event_id).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn appended_keys_are_found_through_the_trait_on_both_engines() {
    let temp = tempfile::tempdir().expect("temp dir");
    for (url, postgres) in stores(temp.path(), "keys").await {
        let store = Db::connect(&url, PoolOptions::default())
            .await
            .expect("store");
        let index = store.key_index();
        assert_eq!(
            matches!(index, KeyIndex::Postgres(_)),
            store.backend() == Backend::Postgres,
            "the store hands out the index of its engine"
        );
        let keys = append(&store, &index, "acme", 0, 3).await;
        assert_eq!(
            found_by_writer(&store, &index, &keys).await,
            ["e-0", "e-1", "e-2"]
        );
        let unknown = [dedupe::event_key("acme", "e-9")];
        assert!(found_by_writer(&store, &index, &unknown).await.is_empty());

        // A reader outside the writer, and another node's (or process's) fresh index.
        let mut conn = store.readers().acquire().await.expect("connection");
        let latest = index
            .lookup_latest(&store, &mut conn, &keys[..1])
            .await
            .expect("lookup");
        assert_eq!(latest.len(), 1);
        drop(conn);
        let other = store.key_index();
        assert_eq!(found_by_writer(&store, &other, &keys).await.len(), 3);

        let mut guard = index.for_write().await;
        match store.backend() {
            Backend::Postgres => {
                // The keys are rows; nothing is held in memory, so there is nothing to merge
                // or compact.
                let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_event_keys")
                    .fetch_one(store.readers())
                    .await
                    .expect("count");
                assert_eq!(rows, 3);
                assert_eq!((guard.tail_len(), guard.run_count()), (0, 0));
                let mut tx = store.begin().await.expect("begin");
                let merged = guard.merge(&mut tx).await.expect("merge");
                assert!(matches!(merged, IndexChange::Nothing));
                assert!(!guard.wants_compaction());
                let step = guard.compaction_step(&mut tx, 1).await.expect("step");
                assert!(matches!(step, IndexChange::Nothing));
                tx.commit().await.expect("commit");
            }
            Backend::Sqlite => {
                // The keys are in the tail until a merge writes them out as a run.
                assert_eq!((guard.tail_len(), guard.run_count()), (3, 0));
                let mut tx = store.begin().await.expect("begin");
                let merged = guard.merge(&mut tx).await.expect("merge");
                tx.commit().await.expect("commit");
                guard.apply(merged);
                assert_eq!((guard.tail_len(), guard.run_count()), (0, 1));
            }
        }
        drop(guard);
        assert_eq!(found_by_writer(&store, &index, &keys).await.len(), 3);
        store.close().await;
        if let Some((server, database)) = postgres {
            db::drop_postgres_database(&server, &database)
                .await
                .expect("drop");
        }
    }
}

/// `enable_seqscan` as the transaction sees it.
async fn seqscan_setting(tx: &mut db::Tx) -> String {
    sqlx::query_scalar("SELECT current_setting('enable_seqscan')")
        .fetch_one(&mut **tx)
        .await
        .expect("setting")
}

/// PostgreSQL's planner settings hold inside the write transaction the index readied, and
/// end with it: other transactions on the same pooled connection plan as usual.
#[tokio::test]
async fn postgres_planner_settings_last_one_transaction() {
    let Ok(server) = std::env::var("COMPANYOS_TEST_POSTGRES_URL") else {
        return;
    };
    let database = format!("companyos_store_planner_{}", std::process::id());
    let url = db::create_postgres_database(&server, &database)
        .await
        .expect("fresh database");
    let store = Db::connect(
        &url,
        PoolOptions {
            connections_max: 1,
            ..PoolOptions::default()
        },
    )
    .await
    .expect("store");
    let index = store.key_index();
    let mut guard = index.for_write().await;
    let mut tx = store.begin().await.expect("begin");
    guard.begin_write(&mut tx).await.expect("begin write");
    assert_eq!(seqscan_setting(&mut tx).await, "off");
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("begin");
    assert_eq!(seqscan_setting(&mut tx).await, "on");
    tx.commit().await.expect("commit");
    drop(guard);
    store.close().await;
    db::drop_postgres_database(&server, &database)
        .await
        .expect("drop");
}
