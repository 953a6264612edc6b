//! Migrations and the log storage on both engines: a fresh store reaches the newest schema and
//! opens again unchanged; leaves written in bundles read back whole, across bundle boundaries.

use companyos_ledger::leaf_hash;
use companyos_store::bundles::{self, LeafLayout, PendingLeaves};
use companyos_store::db::{self, Db, PoolOptions};

/// The stores to run on: a SQLite file always, and a fresh PostgreSQL database when
/// `COMPANYOS_TEST_POSTGRES_URL` names a server.
async fn stores(temp: &std::path::Path, name: &str) -> Vec<(String, Option<(String, String)>)> {
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
        bundles::write_leaves(&mut conn, &[("audit", &pending)])
            .await
            .expect("write");
        assert_eq!(
            bundles::count_leaves(&mut conn, "audit")
                .await
                .expect("count"),
            600
        );
        let read = bundles::read_leaves(&mut conn, "audit", 250, 270, true)
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
            bundles::count_leaves(&mut conn, "audit")
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
