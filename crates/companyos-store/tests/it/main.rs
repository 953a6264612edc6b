//! The store's integration tests: a real SQLite file and a real PostgreSQL database each (no
//! mocks), through the crate's public surface only, as the service layer uses it.

mod key_index;
mod log_storage;
mod tenants;

use companyos_store::db;

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
