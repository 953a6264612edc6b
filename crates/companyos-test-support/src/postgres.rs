//! Fresh PostgreSQL databases, one per test, on the server `COMPANYOS_TEST_POSTGRES_URL` names
//! (default a local server), dropped with any connection still open when the test is done.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use companyos_store::db;
use companyos_store::db::StoreError;

/// The PostgreSQL server tests create their databases on.
pub fn server_url() -> String {
    std::env::var("COMPANYOS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database name no other test of any process uses: `prefix`, then the clock, the process
/// and a per-process counter (tests run in parallel threads and parallel binaries).
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let count = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{nanos:x}_{:x}_{count}", std::process::id())
}

/// Creates a fresh database named after `prefix`; returns its URL.
pub async fn fresh_database(prefix: &str) -> String {
    db::create_postgres_database(&server_url(), &unique_name(prefix))
        .await
        .expect(
            "PostgreSQL at COMPANYOS_TEST_POSTGRES_URL (default 127.0.0.1:5432) must be reachable",
        )
}

/// The database name of a database URL.
pub fn database_name(url: &str) -> Option<&str> {
    url.rsplit('/').next()
}

/// Drops the database of `url` (connections still open, e.g. of a node that failed to start,
/// are ended). Callers decide whether a failed clean-up fails their test.
pub async fn drop_database(url: &str) -> Result<(), StoreError> {
    let name = database_name(url).unwrap_or(url);
    db::drop_postgres_database(&server_url(), name).await
}

/// A fresh database for a test that runs outside an async runtime (a child process uses it);
/// dropped by [`PgDatabase::drop_with`].
#[derive(Debug)]
pub struct PgDatabase {
    pub server: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create(runtime: &tokio::runtime::Runtime) -> PgDatabase {
        let server = server_url();
        let name = unique_name("companyos_test");
        let url = runtime
            .block_on(db::create_postgres_database(&server, &name))
            .expect("PostgreSQL must be reachable");
        PgDatabase { server, name, url }
    }

    pub fn drop_with(self, runtime: &tokio::runtime::Runtime) {
        let _ = runtime.block_on(db::drop_postgres_database(&self.server, &self.name));
    }
}
