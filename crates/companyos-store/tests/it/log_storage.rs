//! Migrations and the log storage on both engines: a fresh store reaches the newest schema and
//! opens again unchanged; leaves written in bundles read back whole, across bundle boundaries;
//! `verify_log` passes a log as written and names each kind of tampering with its leaf.

use companyos_domain::LogId;
use companyos_ledger::leaf_hash;
use companyos_ledger::note::NoteSigner;
use companyos_store::bundles::{self, LeafLayout, PendingLeaves};
use companyos_store::db::{self, Db, PoolOptions};
use companyos_store::ledger_store;

/// The stores to run on: a SQLite file always, and a fresh PostgreSQL database when
/// `COMPANYOS_TEST_POSTGRES_URL` names a server.
pub(crate) async fn stores(
    temp: &std::path::Path,
    name: &str,
) -> Vec<(String, Option<(String, String)>)> {
    let mut urls = vec![(db::sqlite_url_in(temp), None)];
    if let Ok(server) = std::env::var("COMPANYOS_TEST_POSTGRES_URL") {
        let database = format!("companyos_store_{name}_{}", std::process::id());
        let url = db::create_postgres_database(&server, &database)
            .await
            .expect("fresh database");
        urls.push((url, Some((server, database))));
    }
    urls
}

#[tokio::test]
async fn fresh_store_migrates_once_and_round_trips_leaves() {
    let temp = tempfile::tempdir().expect("temp dir");
    for (url, postgres) in stores(temp.path(), "leaves").await {
        let store = Db::connect(&url, PoolOptions::default())
            .await
            .expect("store");
        let mut conn = store.writer().acquire().await.expect("connection");
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
                .fetch_all(&mut *conn)
                .await
                .expect("versions");
        assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>());

        // 600 leaves span three bundles of at most 256.
        let mut pending = PendingLeaves::new(LeafLayout::Whole, 0);
        let data: Vec<Vec<u8>> = (0..600).map(|i| format!("leaf {i}").into_bytes()).collect();
        for leaf in &data {
            pending.push_whole(leaf_hash(leaf), leaf);
        }
        bundles::write_leaves(&mut conn, &[(&LogId::Audit, &pending)])
            .await
            .expect("write");
        assert_eq!(
            bundles::count_leaves(&mut conn, &LogId::Audit)
                .await
                .expect("count"),
            600
        );
        let read = bundles::read_leaves(&mut conn, &LogId::Audit, 250, 270, true)
            .await
            .expect("read across a bundle boundary");
        assert_eq!(read.len(), 20);
        for (offset, leaf) in read.iter().enumerate() {
            assert_eq!(leaf.data, data[250 + offset]);
            assert_eq!(leaf.hash, leaf_hash(&data[250 + offset]));
        }
        drop(conn);
        store.close().await;

        // Opening again applies nothing and keeps every leaf.
        let again = Db::connect(&url, PoolOptions::default())
            .await
            .expect("reopen");
        let mut conn = again.readers().acquire().await.expect("connection");
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
            .fetch_one(&mut *conn)
            .await
            .expect("count");
        assert_eq!(count, versions.len() as i64);
        assert_eq!(
            bundles::count_leaves(&mut conn, &LogId::Audit)
                .await
                .expect("count"),
            600
        );
        drop(conn);
        again.close().await;
        if let Some((server, database)) = postgres {
            db::drop_postgres_database(&server, &database)
                .await
                .expect("drop");
        }
    }
}

/// The example signer key of `docs/spec/ledger.md`.
const SIGNER_KEY: &str =
    "PRIVATE+KEY+companyos.local+e1dcc57c+AUxMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExM";
const ORIGIN: &str = "companyos.local/audit";

/// Appends `count` leaves to the audit log in one transaction.
async fn append_leaves(store: &Db, count: u64) {
    let mut tx = store.begin().await.expect("transaction");
    let mut head = ledger_store::lock_head(store, &mut tx, &LogId::Audit)
        .await
        .expect("head");
    for _ in 0..count {
        let leaf = format!("leaf {}", head.next_index());
        head.append(leaf.as_bytes());
    }
    ledger_store::write_appends(&mut tx, &mut head, 0)
        .await
        .expect("append");
    tx.commit().await.expect("commit");
}

/// The audit log's problems, as (leaf index, message).
async fn problems_of(store: &Db, signer: &NoteSigner) -> Vec<(Option<u64>, String)> {
    let mut conn = store.readers().acquire().await.expect("connection");
    ledger_store::verify_log(
        &mut conn,
        &LogId::Audit,
        &signer.verifier(),
        ORIGIN,
        |_, _| None,
    )
    .await
    .expect("verify")
    .into_iter()
    .map(|problem| (problem.leaf_index, problem.message))
    .collect()
}

/// Runs each statement on the store's writer.
async fn tamper(store: &Db, statements: &[&str]) {
    for sql in statements {
        sqlx::query(sql)
            .execute(store.writer())
            .await
            .expect("tamper");
    }
}

#[tokio::test]
async fn verify_log_names_each_kind_of_tampering_with_its_leaf() {
    let signer = NoteSigner::from_signer_key(SIGNER_KEY).expect("signer");
    let temp = tempfile::tempdir().expect("temp dir");
    for (url, postgres) in stores(temp.path(), "verify").await {
        let store = Db::connect(&url, PoolOptions::default())
            .await
            .expect("store");
        // 600 leaves: stored level-8 nodes 0 and 1, a signed checkpoint at 300 between them.
        append_leaves(&store, 300).await;
        ledger_store::sign_checkpoint(&store, &signer, &LogId::Audit, ORIGIN, 1)
            .await
            .expect("checkpoint");
        append_leaves(&store, 300).await;
        assert_eq!(problems_of(&store, &signer).await, Vec::new());

        let zeros = "X'0000000000000000000000000000000000000000000000000000000000000000'";
        let zeros = if postgres.is_some() {
            "'\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea"
        } else {
            zeros
        };
        tamper(
            &store,
            &[
                &format!(
                    "UPDATE ledger_nodes SET hash = {zeros} \
                     WHERE log_id = 'audit' AND level = 8 AND node_index = 0"
                ),
                "DELETE FROM ledger_nodes WHERE log_id = 'audit' AND level = 8 AND node_index = 1",
                &format!("UPDATE ledger_checkpoints SET root = {zeros} WHERE log_id = 'audit'"),
                &format!(
                    "INSERT INTO ledger_checkpoints (log_id, tree_size, root, note, signed_at) \
                     VALUES ('audit', 700, {zeros}, 'no note', 2)"
                ),
            ],
        )
        .await;
        let expected = |head: (Option<u64>, &str)| {
            vec![
                (
                    Some(0),
                    "stored node at level 8 index 0 does not match its leaves",
                ),
                (
                    Some(299),
                    "checkpoint at tree size 300 has a root that does not match the leaves",
                ),
                (Some(256), "stored node at level 8 index 1 is missing"),
                (
                    Some(699),
                    "checkpoint at tree size 700 is beyond the 600 stored leaves",
                ),
                head,
            ]
            .into_iter()
            .map(|(leaf, message)| (leaf, message.to_owned()))
            .collect::<Vec<_>>()
        };
        tamper(
            &store,
            &["UPDATE ledger_heads SET tree_size = 601 WHERE log_id = 'audit'"],
        )
        .await;
        assert_eq!(
            problems_of(&store, &signer).await,
            expected((Some(600), "head says 601 leaves but 600 are stored"))
        );
        tamper(
            &store,
            &[&format!(
                "UPDATE ledger_heads SET tree_size = 600, root = {zeros} WHERE log_id = 'audit'"
            )],
        )
        .await;
        assert_eq!(
            problems_of(&store, &signer).await,
            expected((Some(599), "stored root does not match the leaves"))
        );

        // A bundle of leaves gone: the walk stops at the first missing leaf.
        tamper(
            &store,
            &["DELETE FROM ledger_leaf_bundles WHERE log_id = 'audit' AND first_index = 256"],
        )
        .await;
        let problems = problems_of(&store, &signer).await;
        assert_eq!(
            problems
                .last()
                .map(|(leaf, message)| (*leaf, message.as_str())),
            Some((Some(256), "leaf 256 is missing (next stored leaf is 300)"))
        );
        store.close().await;
        if let Some((server, database)) = postgres {
            db::drop_postgres_database(&server, &database)
                .await
                .expect("drop");
        }
    }
}
