//! The service layer opened on a temporary store: a SQLite file in a temp dir or a fresh
//! PostgreSQL database, a manual clock at [`START`], and the admin token a fresh store prints.

use std::path::Path;
use std::sync::Arc;

use companyos_core::clock::ManualClock;
use companyos_core::{App, Settings};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::postgres;

/// The store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Both engines: every suite runs against each.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// The instant tests start at (a Monday noon, UTC).
pub const START: OffsetDateTime = datetime!(2026-03-02 12:00:00 UTC);

/// The settings of a node whose data dir is `data_dir`, on the PostgreSQL database `url`, or
/// on the SQLite file in the data dir when `url` is `None`.
pub fn settings_for(data_dir: &Path, url: Option<&str>) -> Settings {
    let mut settings = Settings::new(data_dir.to_owned());
    settings.database_url = url.map(str::to_owned);
    settings
}

/// Lets outbound deliveries reach this machine's loopback, where tests run their receivers
/// (refused by default: see `companyos_core::outbound`).
pub fn allow_loopback(settings: &mut Settings) {
    settings.outbound.allow =
        vec![companyos_core::jobs::outbound::Cidr::parse("127.0.0.1/32").expect("a CIDR")];
}

/// A service layer on a fresh store, with what a test needs to reach and clean it up.
pub struct OpenedStore {
    pub app: App,
    pub clock: Arc<ManualClock>,
    /// The admin's token, which only a fresh store shows.
    pub admin_token: String,
    /// The PostgreSQL URL, when on PostgreSQL.
    pub database_url: Option<String>,
    /// The temp dir holding the data dir (`data`); removed when dropped.
    pub dir: tempfile::TempDir,
}

/// Opens a fresh store on `backend` (a PostgreSQL database named after `database_prefix`)
/// after `configure` adjusted the settings.
pub async fn open(
    backend: Backend,
    database_prefix: &str,
    configure: impl FnOnce(&mut Settings),
) -> OpenedStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(postgres::fresh_database(database_prefix).await),
    };
    let mut settings = settings_for(&dir.path().join("data"), database_url.as_deref());
    configure(&mut settings);
    let clock = Arc::new(ManualClock::new(START));
    let (app, report) = App::open(settings, clock.clone())
        .await
        .expect("open the store");
    let admin_token = report.admin_token.expect("a fresh store creates the admin");
    OpenedStore {
        app,
        clock,
        admin_token,
        database_url,
        dir,
    }
}
