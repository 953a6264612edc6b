//! Test support: the service layer ([`App`]) opened on a real store — a SQLite file in a temp
//! dir, or a fresh PostgreSQL database — with a manual clock, operators and tenants.

use std::path::Path;
use std::sync::Arc;

use companyos_core::app::InitReport;
use companyos_core::authz::Principal;
use companyos_core::clock::ManualClock;
use companyos_core::lifecycle::NewTenant;
use companyos_core::metering::ingest::{IngestOutcome, RawEvent};
use companyos_core::settings::Settings;
use companyos_core::{Actor, App, db};
use companyos_domain::time_util::format_rfc3339;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use time::macros::datetime;
use time::{Date, OffsetDateTime};

/// The store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Both engines: every test runs against each.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// The instant tests start at (a Monday noon, UTC).
pub const START: OffsetDateTime = datetime!(2026-03-02 12:00:00 UTC);

/// The PostgreSQL server tests create their databases on.
pub fn postgres_server_url() -> String {
    std::env::var("COMPANYOS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh PostgreSQL database for one test.
pub async fn fresh_postgres() -> String {
    let name = format!(
        "companyos_core_it_{}",
        companyos_core::util::new_id("db", OffsetDateTime::now_utc()).replace("db_", "")
    );
    db::create_postgres_database(&postgres_server_url(), &name)
        .await
        .expect(
            "PostgreSQL at COMPANYOS_TEST_POSTGRES_URL (default 127.0.0.1:5432) must be reachable",
        )
}

/// Drops a test database (connections still open, e.g. of a node that failed to start, are
/// ended).
pub async fn drop_postgres(url: &str) {
    use sqlx::{Connection as _, Executor as _};
    let name = url.rsplit('/').next().expect("a database name");
    let mut conn = sqlx::AnyConnection::connect(&postgres_server_url())
        .await
        .expect("PostgreSQL server");
    conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await
        .expect("drop the test database");
    conn.close().await.expect("close");
}

/// The settings of a node whose data dir is `data_dir`, on the database of `backend` (`url`
/// for PostgreSQL; the SQLite file in the data dir otherwise).
pub fn settings_for(data_dir: &Path, url: Option<&str>) -> Settings {
    let mut settings = Settings::new(data_dir.to_owned());
    settings.database_url = url.map(str::to_owned);
    settings
}

/// One opened service layer with its clock and admin.
pub struct Node {
    pub backend: Backend,
    pub app: App,
    pub clock: Arc<ManualClock>,
    pub admin: Actor,
    /// The PostgreSQL URL, when on PostgreSQL.
    pub database_url: Option<String>,
    pub dir: tempfile::TempDir,
}

impl Node {
    pub async fn open(backend: Backend) -> Node {
        Self::open_with(backend, |_| {}).await
    }

    /// Opens a fresh store after `configure` adjusted the settings.
    pub async fn open_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Node {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_postgres().await),
        };
        let mut settings = settings_for(&dir.path().join("data"), database_url.as_deref());
        configure(&mut settings);
        let clock = Arc::new(ManualClock::new(START));
        let (app, report): (App, InitReport) = App::open(settings, clock.clone())
            .await
            .expect("open the store");
        let token = report.admin_token.expect("a fresh store creates the admin");
        let admin = actor(&app, &token).await;
        Node {
            backend,
            app,
            clock,
            admin,
            database_url,
            dir,
        }
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Creates an operator with `role` and returns it as an actor.
    pub async fn operator(&self, name: &str, role: &str) -> Actor {
        let created = self
            .app
            .operators()
            .create(&self.admin, name, role)
            .await
            .expect("create operator");
        actor(&self.app, &created.token).await
    }

    /// Creates an operator and returns its token.
    pub async fn operator_token(&self, name: &str, role: &str) -> String {
        self.app
            .operators()
            .create(&self.admin, name, role)
            .await
            .expect("create operator")
            .token
    }

    /// Creates an active tenant; returns its API key.
    pub async fn tenant(&self, id: &str) -> String {
        create_tenant(&self.app, &self.admin, id).await
    }

    /// Closes the store; a PostgreSQL test database is dropped.
    pub async fn close(self) {
        self.app.db().close().await;
        if let Some(url) = &self.database_url {
            drop_postgres(url).await;
        }
    }
}

/// Authenticates a token as an actor.
pub async fn actor(app: &App, token: &str) -> Actor {
    let principal = app
        .authenticate(Some(token), None, "test")
        .await
        .expect("token authenticates");
    assert!(matches!(principal, Principal::Operator { .. }));
    Actor {
        principal,
        request_id: None,
        channel: None,
    }
}

/// Creates an active tenant on the standard plan; returns its API key.
pub async fn create_tenant(app: &App, admin: &Actor, id: &str) -> String {
    let created = app
        .lifecycle()
        .create(
            admin,
            NewTenant {
                id: id.to_owned(),
                name: format!("Tenant {id}"),
                plan: Some("standard".to_owned()),
                home_region: Some("eu-west-1".to_owned()),
                allowed_regions: Some(vec!["eu-west-1".to_owned()]),
                ..NewTenant::default()
            },
        )
        .await
        .expect("create tenant");
    assert_eq!(created.tenant.status.as_str(), "active");
    created.api_key
}

/// A valid usage event at `at` (service api, metric requests, unit request).
pub fn event(tenant: &str, event_id: &str, quantity: &str, at: OffsetDateTime) -> Value {
    json!({
        "event_id": event_id,
        "tenant_id": tenant,
        "service": "api",
        "metric": "requests",
        "quantity": quantity,
        "unit": "request",
        "timestamp": format_rfc3339(at),
        "request_id": format!("req-{event_id}"),
    })
}

/// Sends events through the service layer.
pub async fn ingest(app: &App, actor: &Actor, events: &[Value]) -> IngestOutcome {
    app.ingest(actor, events.iter().map(raw_event).collect())
        .await
        .expect("ingest")
}

/// The status names of an outcome, in order.
pub fn statuses(outcome: &IngestOutcome) -> Vec<&'static str> {
    outcome.results.iter().map(|r| r.status.as_str()).collect()
}

/// The field names of the errors of result `index`.
pub fn error_fields(outcome: &IngestOutcome, index: usize) -> Vec<String> {
    outcome.results[index]
        .errors
        .iter()
        .map(|e| e.field.clone())
        .collect()
}

/// A deterministic Ed25519 source key.
pub fn source_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The base64 public key of a source key, as `register_source` takes it.
pub fn public_key_base64(key: &SigningKey) -> String {
    companyos_ledger::encoding::base64_encode(key.verifying_key().as_bytes())
}

/// Signs an event in place: `source_signature` over its canonical form (CONTRACT §5).
pub fn sign(event: &mut Value, key: &SigningKey) {
    let object = event.as_object_mut().expect("event object");
    object.remove("source_signature");
    let canonical = companyos_ledger::usage_event::canonical_form(object).expect("canonical form");
    let signature = companyos_ledger::usage_event::sign(key, canonical.as_bytes());
    object.insert("source_signature".to_owned(), json!(signature));
}

/// `"sha256:" + hex(SHA-256(canonical form))` of an event, computed here.
pub fn digest_of(event: &Value) -> String {
    use sha2::Digest as _;
    let mut object = event.as_object().expect("event object").clone();
    object.remove("source_signature");
    object.remove("digest");
    let canonical = companyos_ledger::jcs::canonicalize(&Value::Object(object)).expect("jcs");
    let hash = sha2::Sha256::digest(canonical.as_bytes());
    format!("sha256:{}", hex(&hash))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The UTC day of an instant.
pub fn day_of(at: OffsetDateTime) -> Date {
    at.to_offset(time::UtcOffset::UTC).date()
}

/// Runs a statement on the store (a test's direct access, e.g. to tamper with a row).
pub async fn execute(app: &App, sql: &str, binds: &[&str]) -> u64 {
    let mut tx = app.db().begin().await.expect("begin");
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(*bind);
    }
    let done = query.execute(&mut *tx).await.expect("statement runs");
    tx.commit().await.expect("commit");
    done.rows_affected()
}

/// One event as the HTTP adapter hands it to ingestion: its JSON text.
pub fn raw_event(event: &Value) -> RawEvent {
    RawEvent::from_text(event.to_string())
}
