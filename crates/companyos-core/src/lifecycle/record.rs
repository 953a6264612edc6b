//! The tenant object of CONTRACT §4 and a workload: the shapes the API answers with and that
//! core also writes into signed documents (the dossier) and outbox messages
//! (`workloads.scale`), so they are defined once, here, as `Serialize` types.

use companyos_domain::RegionName;
use companyos_domain::boundary::BoundarySpec;
use companyos_domain::plan::RetentionPolicy;
use companyos_domain::time_util::{format_rfc3339, from_micros};
use companyos_store::tenants::WorkloadRow;
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

/// A stored boundary as the JSON object the tenant row holds (`{}` for none).
pub fn boundary_value(boundary: Option<&BoundarySpec>) -> Value {
    match boundary.map(serde_json::to_value) {
        Some(Ok(value)) => value,
        // A spec of strings, numbers and JSON values always serializes.
        Some(Err(error)) => unreachable!("a boundary spec serializes: {error}"),
        None => Value::Object(serde_json::Map::new()),
    }
}

fn boundary_for(view: TenantView, boundary: Option<&BoundarySpec>) -> Value {
    match (view, boundary_value(boundary)) {
        (TenantView::Operator, value) => value,
        (TenantView::Tenant, Value::Object(map)) => Value::Object(
            map.into_iter()
                .filter(|(key, _)| TENANT_VISIBLE_BOUNDARY.contains(&key.as_str()))
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
    pub allowed_regions: &'a [RegionName],
    pub deploy_regions: &'a [RegionName],
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
            id: tenant.id.as_str(),
            name: &tenant.name,
            status: tenant.status.as_str(),
            plan: tenant.plan.as_str(),
            plan_version: tenant.plan_version,
            home_region: tenant.home_region.as_str(),
            allowed_regions: &tenant.allowed_regions,
            deploy_regions: &tenant.deploy_regions,
            created_at: tenant.created_at,
            updated_at: tenant.updated_at,
            suspended_at: tenant.suspended_at,
            deleted_at: tenant.deleted_at,
            purge_after: tenant.purge_after,
            purged_at: tenant.purged_at,
            boundary: boundary_for(view, tenant.boundary.as_ref()),
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

impl From<WorkloadRow> for Workload {
    fn from(row: WorkloadRow) -> Self {
        Self {
            name: row.name,
            replicas: row.replicas,
            suspended_replicas: row.suspended_replicas,
            updated_at: row.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A webhook boundary after a callback, with the provisioner's details in the order it
    /// sent them: in this crate (through Cedar) serde_json keeps that order, so the stored
    /// text reads and writes back byte for byte, unsorted.
    const ANSWERED_WEBHOOK: &str = r#"{"driver":"webhook","provisioner":"https://p.example","state":"ready","provisioner_details":{"zone":"b","cluster":"eu-1","nodes":[3,1.50]}}"#;

    #[test]
    fn provisioner_details_keep_their_order() -> Result<(), Box<dyn std::error::Error>> {
        let spec = BoundarySpec::from_stored(ANSWERED_WEBHOOK)?;
        assert_eq!(BoundarySpec::stored_text(spec.as_ref()), ANSWERED_WEBHOOK);
        Ok(())
    }

    #[test]
    fn tenants_see_only_the_allowed_boundary_members() -> Result<(), Box<dyn std::error::Error>> {
        let spec = BoundarySpec::from_stored(ANSWERED_WEBHOOK)?;
        assert_eq!(
            boundary_for(TenantView::Tenant, spec.as_ref()),
            json!({"driver": "webhook", "state": "ready"})
        );
        assert_eq!(
            boundary_for(TenantView::Operator, spec.as_ref()).to_string(),
            ANSWERED_WEBHOOK
        );
        assert_eq!(boundary_for(TenantView::Tenant, None), json!({}));
        assert_eq!(boundary_for(TenantView::Operator, None), json!({}));
        Ok(())
    }
}
