//! Tenant isolation boundaries (LIFE-1) through drivers: `directory` (a per-tenant directory,
//! mode 0700, with its own SQLite database), `postgres` (a schema and a login role that reaches
//! only that schema), `webhook` (an external provisioner, told through the outbox). Each driver
//! creates, suspends, reactivates and removes a boundary; the provisioner records each step.

use std::path::{Path, PathBuf};
use std::time::Instant;

use companyos_domain::boundary::{BoundaryCredentials, BoundaryDriverKind, BoundarySpec};
use companyos_domain::time_util::format_rfc3339;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection as _, Executor as _};
use time::OffsetDateTime;

use crate::db::{Backend, Db};
use crate::settings::BoundaryDriverSettings;
use crate::util::{new_token, random_bytes};

mod directory;
mod postgres;
mod webhook;

use webhook::{told_access, told_removal};

/// One recorded step of a provisioning (or purge) run.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub started_at: OffsetDateTime,
    pub duration_ms: f64,
    pub details: Value,
}

/// A step as the step log stores it (in `provisioning_runs`, the dossier, certificates and audit
/// details): a status word, and the duration rounded to the microsecond.
#[derive(Serialize)]
struct StoredStep<'a> {
    name: &'a str,
    status: &'static str,
    started_at: String,
    duration_ms: f64,
    details: &'a Value,
}

impl Serialize for Step {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredStep {
            name: &self.name,
            status: if self.ok { "ok" } else { "failed" },
            started_at: format_rfc3339(self.started_at),
            duration_ms: (self.duration_ms * 1000.0).round() / 1000.0,
            details: &self.details,
        }
        .serialize(serializer)
    }
}

/// Records steps with their durations; serialized, the array of its steps.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct StepLog {
    pub steps: Vec<Step>,
}

impl StepLog {
    /// Runs a step and records it; its error is returned after being recorded. A temporary
    /// failure is recorded with `"temporary": true` beside its message.
    pub async fn run<T>(
        &mut self,
        name: &str,
        now: OffsetDateTime,
        step: impl Future<Output = Result<(T, Value), StepError>>,
    ) -> Result<T, StepFailed> {
        let started = Instant::now();
        let result = step.await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok((value, details)) => {
                self.steps.push(Step {
                    name: name.to_owned(),
                    ok: true,
                    started_at: now,
                    duration_ms,
                    details,
                });
                Ok(value)
            }
            Err(error) => {
                let details = match &error {
                    StepError::Failed(message) => json!({"error": message}),
                    StepError::Unavailable(message) => {
                        json!({"error": message, "temporary": true})
                    }
                };
                self.steps.push(Step {
                    name: name.to_owned(),
                    ok: false,
                    started_at: now,
                    duration_ms,
                    details,
                });
                Err(StepFailed {
                    step: name.to_owned(),
                    error,
                })
            }
        }
    }

    pub fn total_ms(&self) -> f64 {
        self.steps.iter().map(|s| s.duration_ms).sum()
    }
}

/// The directory of a tenant's boundary.
pub fn tenant_dir(data_dir: &Path, tenant_id: &str) -> PathBuf {
    data_dir.join("tenants").join(tenant_id)
}

/// PostgreSQL identifiers of a tenant: schema `tenant_<id>` and a login role whose name also
/// carries the database, because roles are shared by every database of a cluster.
pub fn postgres_names(database: &str, tenant_id: &str) -> (String, String) {
    let id = tenant_id.replace('-', "_");
    let database_tag = &companyos_ledger::hash::sha256(database.as_bytes()).to_hex()[..8];
    let schema = format!("tenant_{id}");
    let mut role = format!("cos_{database_tag}_{id}");
    role.truncate(63);
    (schema, role)
}

/// What a driver acts in: the caller's transaction (database work happens in it, so a failed
/// provisioning leaves nothing behind in the store; files are removed by [`remove_boundary`] on
/// failure), the data directory and the tenant.
pub struct BoundaryContext<'a> {
    pub db: &'a Db,
    pub conn: &'a mut AnyConnection,
    pub data_dir: &'a Path,
    pub tenant_id: &'a str,
}

/// One kind of boundary: creates it, blocks or restores access at it, removes it. The answers
/// other than the created spec are the step details recorded in the step log and audit.
pub trait BoundaryDriver {
    /// Creates a tenant's boundary, with its alert rules where the driver keeps files.
    fn create(
        &self,
        cx: BoundaryContext<'_>,
        alert_rules: &str,
    ) -> impl Future<Output = Result<BoundarySpec, StepError>> + Send;

    /// Blocks (`allowed` false, for `reason`) or restores access at the boundary `spec`.
    fn set_access(
        &self,
        spec: &BoundarySpec,
        cx: BoundaryContext<'_>,
        allowed: bool,
        reason: &str,
    ) -> impl Future<Output = Result<Value, StepError>> + Send;

    /// Removes the boundary `spec` for good (purge).
    fn remove(
        &self,
        spec: &BoundarySpec,
        cx: BoundaryContext<'_>,
    ) -> impl Future<Output = Result<Value, StepError>> + Send;
}

/// A directory per tenant, mode 0700, with its own SQLite database.
#[derive(Debug, Clone, Copy)]
pub struct DirectoryDriver;

/// A schema and a login role per tenant on the PostgreSQL store.
#[derive(Debug, Clone, Copy)]
pub struct PostgresDriver;

/// An external provisioner, told through the outbox (the messages are the outbox's).
#[derive(Debug, Clone)]
pub struct WebhookDriver {
    pub url: String,
}

/// A database error as a step's failure, in its own words (as the step log has always had it).
fn failed(error: sqlx::Error) -> StepError {
    StepError::database(error)
}

/// Creates a tenant's boundary with the configured driver; with the credentials of a `postgres`
/// boundary, which the creation answer shows once.
pub async fn create_boundary(
    driver: &BoundaryDriverSettings,
    db: &Db,
    conn: &mut AnyConnection,
    data_dir: &Path,
    tenant_id: &str,
    alert_rules: &str,
) -> Result<BoundarySpec, StepError> {
    let cx = BoundaryContext {
        db,
        conn,
        data_dir,
        tenant_id,
    };
    let spec = match driver {
        BoundaryDriverSettings::Directory => DirectoryDriver.create(cx, alert_rules).await?,
        BoundaryDriverSettings::Postgres => PostgresDriver.create(cx, alert_rules).await?,
        BoundaryDriverSettings::Webhook { url, .. } => {
            WebhookDriver { url: url.clone() }
                .create(cx, alert_rules)
                .await?
        }
    };
    Ok(spec)
}

/// Why a recorded step (a boundary driver's, or any other of a provisioning or purge) failed:
/// for now (a full disk, a lost database connection: the request may be retried and the
/// service answers 503) or for good. The message is what the step log records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

/// A step that failed, as [`StepLog::run`] reports it after recording it:
/// `step <name> failed: <message>`, and whether for now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("step {step} failed: {error}")]
pub struct StepFailed {
    step: String,
    error: StepError,
}

impl StepFailed {
    /// Whether the step failed for now (a full disk, a lost connection), not for good.
    pub fn is_temporary(&self) -> bool {
        matches!(self.error, StepError::Unavailable(_))
    }
}

/// A temporary failure is the store's (503, retry later), as a store error is; a permanent one
/// an internal error, as it always was.
impl From<StepFailed> for crate::error::ServiceError {
    fn from(failed: StepFailed) -> Self {
        let message = failed.to_string();
        match failed.error {
            StepError::Unavailable(_) => {
                crate::error::ServiceError::Store(crate::db::StoreError::Unavailable(message))
            }
            StepError::Failed(_) => crate::error::ServiceError::Internal(message),
        }
    }
}

impl StepError {
    /// A database error in its own words (as the step log has always had it), temporary when
    /// the store is unavailable rather than the request wrong.
    pub fn database(error: sqlx::Error) -> Self {
        let message = error.to_string();
        if crate::db::StoreError::Database(error).is_unavailable() {
            StepError::Unavailable(message)
        } else {
            StepError::Failed(message)
        }
    }

    /// A file-system error, with what was being done.
    fn io(doing: &str, error: &std::io::Error) -> Self {
        // ENOSPC, EROFS, EDQUOT, EIO: the disk, not the request.
        let message = format!("{doing}: {error}");
        match error.raw_os_error() {
            Some(28 | 30 | 122 | 5) => StepError::Unavailable(message),
            _ => StepError::Failed(message),
        }
    }
}

/// A database error with the store's prefix (`database error: ...`), as the drivers' `?` has
/// always recorded it.
impl From<sqlx::Error> for StepError {
    fn from(error: sqlx::Error) -> Self {
        crate::db::StoreError::Database(error).into()
    }
}

impl From<crate::db::StoreError> for StepError {
    fn from(error: crate::db::StoreError) -> Self {
        if error.is_unavailable() {
            StepError::Unavailable(error.to_string())
        } else {
            StepError::Failed(error.to_string())
        }
    }
}

impl From<StepError> for crate::error::ServiceError {
    fn from(error: StepError) -> Self {
        match error {
            StepError::Unavailable(message) => {
                crate::error::ServiceError::Store(crate::db::StoreError::Unavailable(message))
            }
            StepError::Failed(message) => crate::error::ServiceError::Internal(message),
        }
    }
}

/// Blocks or restores access at a stored boundary (suspension, reactivation, deletion); with
/// none (`{}`: nothing was created), the change is only told, through the outbox.
pub async fn set_boundary_access(
    boundary: Option<&BoundarySpec>,
    db: &Db,
    conn: &mut AnyConnection,
    data_dir: &Path,
    tenant_id: &str,
    allowed: bool,
    reason: &str,
) -> Result<Value, StepError> {
    let cx = BoundaryContext {
        db,
        conn,
        data_dir,
        tenant_id,
    };
    let Some(spec) = boundary else {
        return Ok(told_access(allowed));
    };
    match spec {
        BoundarySpec::Directory { .. } => {
            DirectoryDriver.set_access(spec, cx, allowed, reason).await
        }
        BoundarySpec::Postgres { .. } => PostgresDriver.set_access(spec, cx, allowed, reason).await,
        BoundarySpec::Webhook { provisioner, .. } => {
            let driver = WebhookDriver {
                url: provisioner.clone(),
            };
            driver.set_access(spec, cx, allowed, reason).await
        }
    }
}

/// Removes a stored boundary for good (purge); with none (`{}`), the removal is only told.
pub async fn remove_boundary(
    boundary: Option<&BoundarySpec>,
    db: &Db,
    conn: &mut AnyConnection,
    data_dir: &Path,
    tenant_id: &str,
) -> Result<Value, StepError> {
    let cx = BoundaryContext {
        db,
        conn,
        data_dir,
        tenant_id,
    };
    let Some(spec) = boundary else {
        return Ok(told_removal());
    };
    match spec {
        BoundarySpec::Directory { .. } => DirectoryDriver.remove(spec, cx).await,
        BoundarySpec::Postgres { .. } => PostgresDriver.remove(spec, cx).await,
        BoundarySpec::Webhook { provisioner, .. } => {
            let driver = WebhookDriver {
                url: provisioner.clone(),
            };
            driver.remove(spec, cx).await
        }
    }
}

/// Removes what a failed provisioning with `driver` may have left outside its rolled-back
/// transaction: the `directory` driver's files. A `postgres` boundary's role and schema were
/// created in that transaction and went with it; a `webhook` one was only to be told, and the
/// outbox message went with the transaction too.
pub async fn remove_failed_boundary(
    driver: BoundaryDriverKind,
    db: &Db,
    conn: &mut AnyConnection,
    data_dir: &Path,
    tenant_id: &str,
) -> Result<(), StepError> {
    if driver != BoundaryDriverKind::Directory {
        return Ok(());
    }
    let cx = BoundaryContext {
        db,
        conn,
        data_dir,
        tenant_id,
    };
    // The directory driver removes the tenant's directory, whatever the spec says.
    let spec = BoundarySpec::Directory {
        path: String::new(),
        mode: String::new(),
        database: String::new(),
    };
    DirectoryDriver.remove(&spec, cx).await.map(drop)
}

/// Prometheus alert rules generated for a tenant (LIFE-1 observability).
pub fn alert_rules(tenant_id: &str) -> String {
    format!(
        "# Generated by CompanyOS for tenant {tenant_id}.\n\
         groups:\n\
         - name: companyos-tenant-{tenant_id}\n\
         \x20 rules:\n\
         \x20 - alert: TenantUsageRejected\n\
         \x20   expr: increase(companyos_usage_events_total{{tenant=\"{tenant_id}\",status=\"rejected\"}}[15m]) > 0\n\
         \x20   labels: {{severity: warning, tenant: \"{tenant_id}\"}}\n\
         \x20   annotations: {{summary: \"usage events of {tenant_id} are being rejected\"}}\n\
         \x20 - alert: TenantUsageSilent\n\
         \x20   expr: increase(companyos_usage_events_total{{tenant=\"{tenant_id}\",status=\"accepted\"}}[6h]) == 0\n\
         \x20   labels: {{severity: info, tenant: \"{tenant_id}\"}}\n\
         \x20   annotations: {{summary: \"no usage from {tenant_id} for 6 hours\"}}\n"
    )
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// HMAC-SHA256 over `parts`, each followed by `.`, then `body`.
fn signing_mac(secret: &str, parts: &[&[u8]], body: &[u8]) -> HmacSha256 {
    use hmac::Mac as _;
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    for part in parts {
        mac.update(part);
        mac.update(b".");
    }
    mac.update(body);
    mac
}

/// Whether `signature` is `<scheme>=<hex of mac>`, compared in constant time by the `hmac`
/// crate (`verify_slice`), not by hand.
fn signature_matches(mac: HmacSha256, scheme: &str, signature: &str) -> bool {
    use hmac::Mac as _;
    signature
        .strip_prefix(scheme)
        .and_then(|rest| rest.strip_prefix('='))
        .filter(|hex| hex.bytes().all(|b| !b.is_ascii_uppercase()))
        .and_then(companyos_ledger::encoding::hex_decode)
        .is_some_and(|tag| mac.verify_slice(&tag).is_ok())
}

/// The HMAC-SHA256 signature of a webhook: `v1=<hex>` over `<timestamp>.<body>`.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    use hmac::Mac as _;
    let mac = signing_mac(secret, &[timestamp.to_string().as_bytes()], body);
    format!(
        "v1={}",
        companyos_ledger::encoding::hex_encode(&mac.finalize().into_bytes())
    )
}

/// Checks a webhook signature in constant time, and that its timestamp is within 5 minutes.
pub fn verify_webhook_signature(
    secret: &str,
    timestamp: i64,
    now_unix: i64,
    body: &[u8],
    signature: &str,
) -> bool {
    if (now_unix - timestamp).abs() > 300 {
        return false;
    }
    let mac = signing_mac(secret, &[timestamp.to_string().as_bytes()], body);
    signature_matches(mac, "v1", signature)
}

/// How long a provisioning callback's timestamp stays acceptable, in seconds either way.
pub const CALLBACK_TIMESTAMP_SKEW_SECONDS: i64 = 300;

/// The text a provisioning callback signs: `<tenant_id>.<attempt>.<timestamp>.` then the body.
/// Tenant and attempt are in the signed text, so a genuine callback for one tenant or attempt
/// is worthless for any other; tenant ids and attempt ids hold no `.`, so the text splits only
/// one way.
fn callback_mac(
    secret: &str,
    tenant_id: &str,
    attempt: &str,
    timestamp: i64,
    body: &[u8],
) -> HmacSha256 {
    let timestamp = timestamp.to_string();
    signing_mac(
        secret,
        &[
            tenant_id.as_bytes(),
            attempt.as_bytes(),
            timestamp.as_bytes(),
        ],
        body,
    )
}

/// The signature of a provisioning callback: `v2=<hex>`, HMAC-SHA256 with the driver secret
/// over the text of [`callback_mac`].
pub fn callback_signature(
    secret: &str,
    tenant_id: &str,
    attempt: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    use hmac::Mac as _;
    let mac = callback_mac(secret, tenant_id, attempt, timestamp, body);
    format!(
        "v2={}",
        companyos_ledger::encoding::hex_encode(&mac.finalize().into_bytes())
    )
}

/// Checks a provisioning callback's signature in constant time, and that its timestamp is
/// within [`CALLBACK_TIMESTAMP_SKEW_SECONDS`]. Whether the attempt is still open is the
/// store's to say (`provisioning_attempts`).
pub fn verify_callback_signature(
    secret: &str,
    tenant_id: &str,
    attempt: &str,
    timestamp: i64,
    now_unix: i64,
    body: &[u8],
    signature: &str,
) -> bool {
    if (now_unix - timestamp).abs() > CALLBACK_TIMESTAMP_SKEW_SECONDS {
        return false;
    }
    let mac = callback_mac(secret, tenant_id, attempt, timestamp, body);
    signature_matches(mac, "v2", signature)
}

/// A random secret for a tenant's audit webhook subscription.
pub fn new_webhook_secret() -> String {
    companyos_ledger::encoding::hex_encode(&random_bytes::<32>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ServiceError;

    async fn failing(error: StepError) -> (StepLog, ServiceError) {
        let mut steps = StepLog::default();
        let now = OffsetDateTime::UNIX_EPOCH;
        let result: Result<(), StepFailed> = steps.run("boundary", now, async { Err(error) }).await;
        let failed = result.err().map(ServiceError::from);
        assert!(failed.is_some(), "the step failed");
        (
            steps,
            failed.unwrap_or(ServiceError::Internal(String::new())),
        )
    }

    #[tokio::test]
    async fn a_permanent_failure_is_recorded_and_answered_as_always() {
        let (steps, error) = failing(StepError::Failed("no such role".to_owned())).await;
        assert_eq!(steps.steps[0].details, json!({"error": "no such role"}));
        assert!(!steps.steps[0].ok);
        assert!(
            matches!(&error, ServiceError::Internal(m) if m == "step boundary failed: no such role"),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_temporary_failure_is_marked_and_answered_as_the_stores() {
        let disk_full = std::io::Error::from_raw_os_error(28);
        let (steps, error) = failing(StepError::io("write the SUSPENDED marker", &disk_full)).await;
        assert_eq!(steps.steps[0].details["temporary"], json!(true));
        assert!(error.is_store_unavailable(), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("step boundary failed: write the SUSPENDED marker"),
            "{error}"
        );
    }
}
