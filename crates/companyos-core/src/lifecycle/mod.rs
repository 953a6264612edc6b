//! Tenants (CONTRACT §4): provisioning with a recorded step log and a signed dossier (LIFE-1),
//! suspend and reactivate on every access path (LIFE-2), delete with retention, restore and
//! purge with a signed deletion certificate (LIFE-3), regions, workloads and forward auth.

use std::collections::BTreeSet;

use companyos_domain::error::Collector;
use companyos_domain::plan::TOMBSTONE_DAYS_MAX;
use companyos_domain::tenant::{IllegalTransition, transition};
use companyos_domain::time_util::{format_rfc3339, from_micros, to_micros};
use companyos_domain::{
    FieldError, LifecycleAction, Reason, RegionName, TenantId, TenantStatus, WorkloadName,
};
use companyos_ledger::hash::sha256;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row as _};
use time::Duration;

use crate::app::{Actor, App, Lifecycle, TENANT_KEY_PREFIX};
use crate::approvals::ApprovalView;
use crate::audit::NewAudit;
use crate::authz::{Principal, Resource, TenantAttributes, tenant_baseline_policies};
use crate::db::{StoreError, Tx};
use crate::error::ServiceError;
use crate::evidence::{EvidenceRecord, NewArtifact};
use crate::ledger_store;
use crate::lifecycle::boundary::StepLog;
use crate::settings::BoundaryDriverSettings;
use crate::util::{new_id, new_token, token_fingerprint, token_hash};
use companyos_domain::Action;
use companyos_store::tenants;

mod attempts;
pub mod boundary;
mod callbacks;
mod placement;
mod provision;
mod purge;
mod record;
mod transitions;
mod validate;

pub use attempts::*;
pub use callbacks::ProvisioningRun;
pub use companyos_store::tenants::TenantRow;
pub use record::{TenantRecord, TenantView, Workload};
use validate::ValidTenant;

/// Upper bound on a tenant's display name.
pub const TENANT_NAME_CHARS_MAX: usize = 200;
/// Upper bound on replicas of one workload.
pub const WORKLOAD_REPLICAS_MAX: i64 = 1000;

fn time_or_null(micros: Option<i64>) -> Value {
    micros.map_or(Value::Null, |m| json!(format_rfc3339(from_micros(m))))
}

/// Input of tenant creation, as received: the body of `POST /v1/tenants` (CONTRACT §4), which
/// the HTTP adapter reads straight into this type (unknown members refused), so the request shape
/// is written once. Every member is validated by the service, naming the field.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub id: String,
    pub name: String,
    pub plan: Option<String>,
    pub home_region: Option<String>,
    pub allowed_regions: Option<Vec<String>>,
    pub deploy_regions: Option<Vec<String>>,
    pub audit_webhook_url: Option<String>,
    pub tombstone_days: Option<u32>,
    pub hard_delete_allowed: Option<bool>,
    pub legal_hold: Option<bool>,
}

/// The provisioning run a creation or a retry carried out (it succeeded: a failed one is an
/// error).
#[derive(Debug, Clone)]
pub struct ProvisioningOutcome {
    /// The run's id (`provisioning_runs`); `None` after a retry, whose answer never named it.
    pub run_id: Option<String>,
    pub steps: StepLog,
}

/// A created tenant: its API key and any boundary credentials are shown only here.
#[derive(Debug, Clone)]
pub struct CreatedTenant {
    pub tenant: TenantRow,
    pub api_key: String,
    pub provisioning: ProvisioningOutcome,
    pub dossier: Option<EvidenceRecord>,
    pub boundary_credentials: Option<Value>,
}

/// A lifecycle action's request body.
#[derive(Debug, Clone, Default)]
pub struct LifecycleRequest {
    pub reason: Option<String>,
    pub confirm: Option<String>,
}

/// What a lifecycle request did.
#[derive(Debug, Clone)]
pub enum LifecycleOutcome {
    Done {
        tenant: Box<TenantRow>,
        /// False when the tenant was already in the target state.
        changed: bool,
        warnings: Vec<String>,
        evidence: Option<EvidenceRecord>,
    },
    PendingApproval(ApprovalView),
}

impl App {
    /// The policy attributes of a tenant row.
    pub(crate) fn attributes_of(&self, tenant: &TenantRow) -> TenantAttributes {
        // The features of the version in force (billing); a row from before the catalog
        // falls back to the configured plan's.
        let entitlements = tenant.entitlements.clone().unwrap_or_else(|| {
            self.settings()
                .plan(&tenant.plan)
                .map(|p| p.entitlements.clone())
                .unwrap_or_default()
        });
        TenantAttributes {
            id: tenant.id.as_str().to_owned(),
            status: tenant.status.as_str().to_owned(),
            plan: tenant.plan.as_str().to_owned(),
            home_region: tenant.home_region.as_str().to_owned(),
            allowed_regions: region_texts(&tenant.allowed_regions),
            entitlements,
            plan_version: tenant.plan_version,
            quotas_used_up: Vec::new(),
            legal_hold: tenant.retention.legal_hold,
            hard_delete_allowed: tenant.retention.hard_delete_allowed,
            policy_text: Some(tenant.policy_text.clone()),
        }
    }

    /// The policy attributes of a tenant, read now.
    pub(crate) async fn tenant_attributes(
        &self,
        conn: &mut AnyConnection,
        tenant_id: &str,
    ) -> Result<Option<TenantAttributes>, StoreError> {
        Ok(tenant_named(conn, tenant_id)
            .await?
            .map(|t| self.attributes_of(&t)))
    }

    /// Loads a tenant and authorizes `action` on it; an unknown tenant is 404 for operators and
    /// 403 for a tenant key (which must not learn which other tenants exist).
    pub(crate) async fn readable_tenant(
        &self,
        conn: &mut AnyConnection,
        actor: &Actor,
        id: &str,
        action: Action,
    ) -> Result<TenantRow, ServiceError> {
        let tenant = tenant_named(conn, id).await?;
        match tenant {
            Some(tenant) => {
                let attributes = self.attributes_of(&tenant);
                self.authorize_read(
                    actor,
                    action,
                    Resource::Tenant(&attributes),
                    &tenant.target(),
                    Some(tenant.id.as_str()),
                )
                .await?;
                Ok(tenant)
            }
            None => {
                let attributes = placeholder_attributes(id);
                self.authorize_read(
                    actor,
                    action,
                    Resource::Tenant(&attributes),
                    &format!("tenant:{id}"),
                    None,
                )
                .await?;
                Err(ServiceError::NotFound(format!("tenant {id}")))
            }
        }
    }

    pub(crate) async fn lock_tenant(
        &self,
        tx: &mut Tx,
        tenant_id: &str,
    ) -> Result<TenantRow, ServiceError> {
        tenant_named_for_update(tx, self.db(), tenant_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("tenant {tenant_id}")))
    }
}

/// Regions as the policy attributes and wire shapes spell them.
pub(crate) fn region_texts(regions: &[RegionName]) -> Vec<String> {
    regions.iter().map(|r| r.as_str().to_owned()).collect()
}

/// A tenant's workloads, in the shape the API and the `workloads.scale` message show.
pub(crate) async fn workloads_of(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
) -> Result<Vec<Workload>, StoreError> {
    let rows = tenants::workloads(conn, tenant_id).await?;
    Ok(rows.into_iter().map(Workload::from).collect())
}

/// A tenant by an id as received: an id that does not parse names no tenant (ids are parsed
/// when created, so none is stored), as unknown as one that parses and is not there.
pub(crate) async fn tenant_named(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<TenantRow>, StoreError> {
    match TenantId::parse(id) {
        Ok(id) => tenants::load(conn, &id).await,
        Err(_) => Ok(None),
    }
}

/// [`tenant_named`], locked for the rest of the transaction.
pub(crate) async fn tenant_named_for_update(
    conn: &mut AnyConnection,
    db: &crate::db::Db,
    id: &str,
) -> Result<Option<TenantRow>, StoreError> {
    match TenantId::parse(id) {
        Ok(id) => tenants::load_for_update(conn, db, &id).await,
        Err(_) => Ok(None),
    }
}

impl Lifecycle<'_> {
    /// Lists tenants, optionally by status.
    pub async fn list(
        &self,
        actor: &Actor,
        status: Option<&str>,
    ) -> Result<Vec<TenantRow>, ServiceError> {
        let status = match status {
            Some(text) => Some(TenantStatus::parse(text).ok_or_else(|| {
                ServiceError::invalid(
                    "status",
                    "must be one of provisioning, provisioning_failed, active, suspended, deleting, purge_failed, purged",
                )
            })?),
            None => None,
        };
        let mut conn = self.db().readers().acquire().await?;
        if let Principal::TenantKey { tenant, .. } = &actor.principal {
            // A tenant key lists exactly its own tenant.
            self.authorize_read(
                actor,
                Action::TenantRead,
                Resource::Tenant(tenant),
                &format!("tenant:{}", tenant.id),
                Some(&tenant.id),
            )
            .await?;
            let row = tenant_named(&mut conn, &tenant.id).await?;
            return Ok(row
                .into_iter()
                .filter(|t| status.is_none_or(|s| t.status == s))
                .collect());
        }
        self.authorize_read(
            actor,
            Action::TenantRead,
            Resource::Tenant(&placeholder_tenant()),
            "tenants",
            None,
        )
        .await?;
        Ok(tenants::list(&mut conn, status).await?)
    }

    /// One tenant; a tenant key reads only its own.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<TenantRow, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let tenant = self
            .readable_tenant(&mut conn, actor, id, Action::TenantRead)
            .await?;
        Ok(tenant)
    }

    /// Forward auth (CONTRACT §4): the tenant of an active tenant key; 403 otherwise. With a
    /// feature or a metric to check, see `Billing::forward_auth`.
    pub async fn forward_auth(&self, actor: &Actor) -> Result<String, ServiceError> {
        Ok(self
            .billing()
            .forward_auth(actor, None, None)
            .await?
            .tenant_id)
    }
}

/// A deleted tenant is purged by the purge timer, without a purge approval, once its tombstone
/// period is over, unless a legal hold is set or hard delete is not allowed: the approver of
/// the delete was told which of these applied. So while the tenant is deleting, a retention
/// change that would let the timer purge sooner than that approver was told (lifting the
/// hold, shortening the tombstone, allowing hard delete) is refused: restore the tenant and
/// delete it again, or request a purge, each of which goes through its approvals with the
/// new facts in front of the approver. Tightening is always allowed.
fn refuse_loosening_while_deleting(
    tenant: &TenantRow,
    tombstone_days: Option<u32>,
    legal_hold: Option<bool>,
    hard_delete_allowed: Option<bool>,
) -> Result<(), ServiceError> {
    if !matches!(
        tenant.status,
        TenantStatus::Deleting | TenantStatus::PurgeFailed
    ) {
        return Ok(());
    }
    let current = &tenant.retention;
    let loosened = if tombstone_days.is_some_and(|days| days < current.tombstone_days) {
        Some("shortening the tombstone period")
    } else if legal_hold == Some(false) && current.legal_hold {
        Some("lifting the legal hold")
    } else if hard_delete_allowed == Some(true) && !current.hard_delete_allowed {
        Some("allowing hard delete")
    } else {
        None
    };
    match loosened {
        None => Ok(()),
        Some(change) => Err(ServiceError::Conflict {
            message: format!(
                "tenant {} is {}: {change} would let the purge timer purge it without the \
                 approval a purge needs; restore the tenant and delete it again, or request \
                 a purge, so that an approver sees the new retention",
                tenant.id, tenant.status
            ),
            current_status: Some(tenant.status.as_str().to_owned()),
        }),
    }
}

/// The policy attributes of a tenant id that names no tenant (so policy decides first).
pub(crate) fn placeholder_attributes(id: &str) -> TenantAttributes {
    TenantAttributes {
        id: id.to_owned(),
        ..placeholder_tenant()
    }
}

/// Attributes used to authorize listing (no particular tenant).
pub(crate) fn placeholder_tenant() -> TenantAttributes {
    TenantAttributes {
        id: "*".to_owned(),
        status: "active".to_owned(),
        plan: String::new(),
        home_region: String::new(),
        allowed_regions: Vec::new(),
        entitlements: Vec::new(),
        plan_version: 1,
        quotas_used_up: Vec::new(),
        legal_hold: false,
        hard_delete_allowed: true,
        policy_text: None,
    }
}
