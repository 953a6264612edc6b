//! Test support: the service layer ([`App`]) opened on a real store — a SQLite file in a temp
//! dir, or a fresh PostgreSQL database — with a manual clock, operators and tenants. What the
//! suites share (databases, event builders, opening the store) is `companyos-test-support`.

use std::sync::Arc;

use companyos_core::authz::Principal;
use companyos_core::clock::ManualClock;
use companyos_core::lifecycle::NewTenant;
use companyos_core::metering::ingest::{IngestOutcome, RawEvent};
use companyos_core::metering::reports::ReconciliationDay;
use companyos_core::settings::Settings;
use companyos_core::{Actor, App};
use companyos_test_support::{postgres, store};
use serde_json::Value;
use time::{Date, OffsetDateTime};

pub use companyos_test_support::events::{
    digest_of, hex, public_key_base64, sign, source_key, usage_event as event,
};
pub use companyos_test_support::store::{BACKENDS, Backend, START, settings_for};

/// Drops a test database (connections still open, e.g. of a node that failed to start, are
/// ended).
pub async fn drop_postgres(url: &str) {
    postgres::drop_database(url)
        .await
        .expect("drop the test database");
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
        let opened = store::open(backend, "companyos_core_it", configure).await;
        let admin = actor(&opened.app, &opened.admin_token).await;
        Node {
            backend,
            app: opened.app,
            clock: opened.clock,
            admin,
            database_url: opened.database_url,
            dir: opened.dir,
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

    /// The admin's reconciliation of `tenant_id` for the day of `START`: one row.
    pub async fn reconciliation_of_start_day(&self, tenant_id: &str) -> ReconciliationDay {
        let day = day_of(START);
        let mut rows = self
            .app
            .metering()
            .reconciliation(&self.admin, tenant_id, day, day)
            .await
            .expect("reconciliation");
        assert_eq!(rows.len(), 1, "one day asked, one row");
        rows.remove(0)
    }

    /// Closes the store; a PostgreSQL test database is dropped.
    pub async fn close(self) {
        self.app.db().close().await;
        if let Some(url) = &self.database_url {
            drop_postgres(url).await;
        }
    }
}

/// A multi-threaded runtime for a property test, which drives async code from a sync runner.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a test runtime")
}

/// A property test runner of `cases` cases that shrinks a failure at most `max_shrink_iters`
/// times and persists nothing (the failing case is printed).
pub fn test_runner(cases: u32, max_shrink_iters: u32) -> proptest::test_runner::TestRunner {
    proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        max_shrink_iters,
        ..proptest::test_runner::Config::default()
    })
}

/// Puts each plan (name, spec as JSON), as the admin.
pub async fn put_plans<'a>(node: &Node, plans: impl IntoIterator<Item = (&'a str, Value)>) {
    for (name, body) in plans {
        let raw: companyos_domain::catalog::RawPlanSpec =
            serde_json::from_value(body).expect("a plan spec");
        let name = companyos_domain::PlanName::parse(name).expect("a plan name");
        let billing = node.app.billing();
        billing
            .put_plan(&node.admin, &name, raw)
            .await
            .expect("put plan");
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
