//! Provisioning attempts: a callback as received, opening an attempt, what provisioning returns.

#[allow(unused_imports)]
use super::*;

/// A provisioning callback as received: the attempt it answers (`x-companyos-attempt`), its
/// timestamp and signature headers, and the raw body the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct ProvisioningCallback<'a> {
    pub attempt: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// Opens a new provisioning attempt of the webhook driver for `tenant_id` and returns its id;
/// earlier attempts still open are superseded, so only the newest request can be answered.
pub(super) async fn open_provisioning_attempt(
    tx: &mut Tx,
    tenant_id: &str,
    now: time::OffsetDateTime,
) -> Result<String, ServiceError> {
    let now_micros = to_micros(now);
    sqlx::query(
        "UPDATE provisioning_attempts SET answered_at = $1, outcome = 'superseded' \
         WHERE tenant_id = $2 AND answered_at IS NULL",
    )
    .bind(now_micros)
    .bind(tenant_id)
    .execute(&mut **tx)
    .await?;
    let id = new_id("pat", now);
    sqlx::query(
        "INSERT INTO provisioning_attempts (id, tenant_id, requested_at) VALUES ($1, $2, $3)",
    )
    .bind(id.as_str())
    .bind(tenant_id)
    .bind(now_micros)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

pub(super) struct ProvisionOutput {
    pub(super) api_key: String,
    pub(super) dossier: Option<EvidenceRecord>,
    pub(super) credentials: Option<Value>,
}

/// A provisioning run to record (`provisioning_runs`): its outcome and step log.
pub(super) struct NewProvisioningRun<'a> {
    id: &'a str,
    tenant_id: &'a TenantId,
    status: &'static str,
    steps: &'a StepLog,
    started_at: i64,
    finished_at: i64,
}

impl<'a> NewProvisioningRun<'a> {
    /// A run of `tenant_id` that ended in `status` (`succeeded` or `failed`).
    pub(super) fn new(
        id: &'a str,
        tenant_id: &'a TenantId,
        status: &'static str,
        steps: &'a StepLog,
    ) -> Self {
        Self {
            id,
            tenant_id,
            status,
            steps,
            started_at: 0,
            finished_at: 0,
        }
    }

    /// When it started and finished (microseconds).
    pub(super) fn at(self, started_at: i64, finished_at: i64) -> Self {
        Self {
            started_at,
            finished_at,
            ..self
        }
    }
}

/// Records a provisioning run with its step log.
pub(super) async fn insert_provisioning_run(
    conn: &mut AnyConnection,
    run: NewProvisioningRun<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO provisioning_runs (id, tenant_id, status, started_at, finished_at, steps) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(run.id)
    .bind(run.tenant_id.as_str())
    .bind(run.status)
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(json!(run.steps).to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
