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
