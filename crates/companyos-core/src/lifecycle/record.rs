//! The tenant object of CONTRACT §4 and a workload: the shapes the API answers with and that
//! core also writes into signed documents (the dossier) and outbox messages
//! (`workloads.scale`), so they are defined once, here, as `Serialize` types.

use companyos_domain::plan::RetentionPolicy;
use companyos_domain::time_util::{format_rfc3339, from_micros};
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::TenantRow;

/// Who a tenant object is shown to: operators see the boundary's server-side details (paths,
/// database names, the provisioner URL); the tenant itself (its API key) and outside callers
/// (the provisioner's callback) see only what names their own boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantView {
    Operator,
    Tenant,
}

impl TenantView {
    pub fn of(principal: &crate::authz::Principal) -> Self {
        match principal {
            crate::authz::Principal::Operator { .. } => TenantView::Operator,
            _ => TenantView::Tenant,
        }
    }
}

/// The boundary members a tenant may see: an allow-list, so a member a driver adds later stays
/// hidden from tenants until someone decides it is theirs to see.
const TENANT_VISIBLE_BOUNDARY: [&str; 5] = ["driver", "state", "mode", "schema", "role"];

fn boundary_for(view: TenantView, boundary: &Value) -> Value {
    match (view, boundary) {
        (TenantView::Operator, _) => boundary.clone(),
        (TenantView::Tenant, Value::Object(map)) => Value::Object(
            map.iter()
                .filter(|(key, _)| TENANT_VISIBLE_BOUNDARY.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        ),
        (TenantView::Tenant, _) => Value::Object(serde_json::Map::new()),
    }
}

/// A stored instant (microseconds) as RFC 3339, the form of every instant in these shapes.
pub fn rfc3339_micros<S: Serializer>(micros: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_rfc3339(from_micros(*micros)))
}

/// [`rfc3339_micros`] of an instant that may be absent (`null`).
pub fn rfc3339_micros_or_null<S: Serializer>(
    micros: &Option<i64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    micros
        .map(|m| format_rfc3339(from_micros(m)))
        .serialize(serializer)
}

/// The tenant object (CONTRACT §4), without secrets; the boundary as its view may see it.
#[derive(Debug, Serialize)]
pub struct TenantRecord<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub status: &'static str,
    pub plan: &'a str,
    pub plan_version: u32,
    pub home_region: &'a str,
    pub allowed_regions: &'a [String],
    pub deploy_regions: &'a [String],
    #[serde(serialize_with = "rfc3339_micros")]
    pub created_at: i64,
    #[serde(serialize_with = "rfc3339_micros")]
    pub updated_at: i64,
    #[serde(serialize_with = "rfc3339_micros_or_null")]
    pub suspended_at: Option<i64>,
    #[serde(serialize_with = "rfc3339_micros_or_null")]
    pub deleted_at: Option<i64>,
    #[serde(serialize_with = "rfc3339_micros_or_null")]
    pub purge_after: Option<i64>,
    #[serde(serialize_with = "rfc3339_micros_or_null")]
    pub purged_at: Option<i64>,
    pub boundary: Value,
    pub policy_sha256: &'a str,
    pub retention: &'a RetentionPolicy,
    pub audit_webhook_url: Option<&'a str>,
    pub dossier_evidence_id: Option<&'a str>,
}

impl<'a> TenantRecord<'a> {
    pub fn of(tenant: &'a TenantRow, view: TenantView) -> Self {
        Self {
            id: &tenant.id,
            name: &tenant.name,
            status: tenant.status.as_str(),
            plan: &tenant.plan,
            plan_version: tenant.plan_version,
            home_region: &tenant.home_region,
            allowed_regions: &tenant.allowed_regions,
            deploy_regions: &tenant.deploy_regions,
            created_at: tenant.created_at,
            updated_at: tenant.updated_at,
            suspended_at: tenant.suspended_at,
            deleted_at: tenant.deleted_at,
            purge_after: tenant.purge_after,
            purged_at: tenant.purged_at,
            boundary: boundary_for(view, &tenant.boundary),
            policy_sha256: &tenant.policy_sha256,
            retention: &tenant.retention,
            audit_webhook_url: tenant.audit_webhook_url.as_deref(),
            dossier_evidence_id: tenant.dossier_evidence_id.as_deref(),
        }
    }
}

/// A tenant's workload and its replicas (`suspended_replicas`: what a suspension scaled down
/// from, restored on reactivation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub name: String,
    pub replicas: i64,
    pub suspended_replicas: Option<i64>,
    #[serde(serialize_with = "rfc3339_micros")]
    pub updated_at: i64,
}
