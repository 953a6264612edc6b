//! The store's migrations of earlier layouts, tested on both engines.

use super::*;
use crate::bundles;
use companyos_domain::{LogId, TenantId};

/// A store written before bundles (schema 2: a row per leaf and per event) keeps every
/// leaf, payload and dedupe key through the migration, on both engines.
#[tokio::test]
async fn legacy_rows_become_bundles() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut urls = vec![(sqlite_url_in(temp.path()), None)];
    if let Ok(server) = std::env::var("COMPANYOS_TEST_POSTGRES_URL") {
        let name = format!("companyos_migration_{}", std::process::id());
        let url = create_postgres_database(&server, &name)
            .await
            .expect("database");
        urls.push((url, Some((server, name))));
    }
    for (url, postgres) in urls {
        write_schema_2_rows(&url).await;

        let db = Db::connect(&url, PoolOptions::default())
            .await
            .expect("migrated");
        assert_migrated(&db).await;
        db.close().await;
        if let Some((server, name)) = postgres {
            drop_postgres_database(&server, &name).await.expect("drop");
        }
    }
}

/// Writes a store at schema 2: three leaves of two logs and two events, a row each.
async fn write_schema_2_rows(url: &str) {
    let old = Db::connect_at_version(url, PoolOptions::default(), 2)
        .await
        .expect("schema 2");
    let mut conn = old.writer().acquire().await.expect("connection");
    for (log_id, index) in [("tenant/acme", 0), ("tenant/acme", 1), ("audit", 0)] {
        let data = format!("leaf {log_id} {index}").into_bytes();
        sqlx::query(
            "INSERT INTO ledger_leaves (log_id, leaf_index, leaf_hash, leaf_data) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(log_id)
        .bind(index)
        .bind(companyos_ledger::leaf_hash(&data).as_bytes().to_vec())
        .bind(data)
        .execute(&mut *conn)
        .await
        .expect("legacy leaf");
    }
    for (seq, event_id, flags) in [(0i64, "e-0", "[\"unsigned\"]"), (1, "e-1", "[]")] {
        let canonical = format!("{{\"event_id\":\"{event_id}\"}}");
        let digest = companyos_ledger::usage_event::EventDigest::of_canonical(canonical.as_bytes());
        sqlx::query(
            "INSERT INTO usage_events (tenant_id, event_key, event_id, seq, digest, \
             service, metric, unit, quantity, event_time, event_day, class, flags, \
             source, source_seq, received_at, canonical, source_signature) VALUES \
             ($1, $2, $3, $4, $5, 'api', 'requests', 'request', '1', 0, 0, $6, $7, \
             NULL, NULL, 5, $8, $9)",
        )
        .bind("acme")
        .bind(crate::dedupe::event_key("acme", event_id))
        .bind(event_id)
        .bind(seq)
        .bind(digest.to_string())
        .bind(if seq == 0 { "on_time" } else { "late" })
        .bind(flags)
        .bind(canonical)
        .bind((seq == 1).then_some("c2ln"))
        .execute(&mut *conn)
        .await
        .expect("legacy event");
    }
    drop(conn);
    old.close().await;
}

/// Every leaf, payload and dedupe key of [`write_schema_2_rows`] reads back from the bundles,
/// and the per-event table is gone.
async fn assert_migrated(db: &Db) {
    let mut conn = db.readers().acquire().await.expect("connection");
    let acme = LogId::Usage(TenantId::parse("acme").expect("a valid tenant id"));
    let leaves = bundles::read_leaves(&mut conn, &acme, 0, 10, true)
        .await
        .expect("leaves");
    assert_eq!(leaves.len(), 2);
    assert_eq!(leaves[1].data, b"leaf tenant/acme 1");
    assert_eq!(
        leaves[1].hash,
        companyos_ledger::leaf_hash(b"leaf tenant/acme 1")
    );
    assert_eq!(
        bundles::count_leaves(&mut conn, &LogId::Audit)
            .await
            .expect("count"),
        1
    );
    let events = bundles::read_events(&mut conn, "acme", 0, 10)
        .await
        .expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].flags, vec!["unsigned"]);
    assert_eq!(events[1].event_id, "e-1");
    assert_eq!(events[1].source_signature.as_deref(), Some("c2ln"));
    assert_eq!(events[1].class, companyos_ledger::leaf::EventClass::Late);
    // The meter query's lighter reading gives the same canonical forms.
    let canonical = bundles::read_canonical_forms(&mut conn, "acme", 1, 10)
        .await
        .expect("canonical forms");
    assert_eq!(canonical, [(1, events[1].canonical.clone())]);
    let mut tail = crate::dedupe::SqliteKeyIndex::default();
    if db.backend() == Backend::Sqlite {
        tail.sync(&mut conn).await.expect("tail");
        assert!(tail.is_empty(), "converted keys are in the merged index");
    }
    let found = db
        .key_index()
        .lookup_latest(db, &mut conn, &[crate::dedupe::event_key("acme", "e-1")])
        .await
        .expect("lookup");
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].event_id.as_str(), found[0].seq), ("e-1", 1));
    let legacy = sqlx::query("SELECT COUNT(*) FROM usage_events")
        .fetch_one(&mut *conn)
        .await;
    assert!(legacy.is_err(), "the per-event table is gone");
    drop(conn);
}
