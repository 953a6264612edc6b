//! Tenants (CONTRACT §4): provisioning with a recorded step log and a signed dossier (LIFE-1),
//! suspend and reactivate on every access path (LIFE-2), delete with retention, restore and
//! purge with a signed deletion certificate (LIFE-3), regions, workloads and forward auth.

use std::collections::BTreeSet;

use companyos_domain::error::Collector;
use companyos_domain::plan::{RetentionPolicy, TOMBSTONE_DAYS_MAX};
use companyos_domain::tenant::{IllegalTransition, transition};
use companyos_domain::time_util::{format_rfc3339, from_micros, to_micros};
use companyos_domain::{
    FieldError, LifecycleAction, PlanName, Reason, RegionName, TenantId, TenantStatus, WorkloadName,
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
use crate::jobs::outbound::OutboundPolicy;
use crate::ledger_store;
use crate::lifecycle::boundary::StepLog;
use crate::settings::BoundaryDriverSettings;
use crate::util::{new_id, new_token, token_fingerprint, token_hash};
use companyos_domain::Action;

mod attempts;
pub mod boundary;
mod callbacks;
mod placement;
mod provision;
mod purge;
mod record;
mod rows;
mod transitions;

pub use attempts::*;
pub use callbacks::ProvisioningRun;
pub use record::{TenantRecord, TenantView, Workload};
pub(crate) use rows::*;

/// Upper bound on a tenant's display name.
pub const TENANT_NAME_CHARS_MAX: usize = 200;
/// Upper bound on replicas of one workload.
pub const WORKLOAD_REPLICAS_MAX: i64 = 1000;

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub plan: String,
    /// The version of `plan` in force today (a projection of the plan history, `billing`).
    pub plan_version: u32,
    /// The features of that version; `None` on a row written before the catalog.
    pub entitlements: Option<Vec<String>>,
    pub status: TenantStatus,
    pub status_before_delete: Option<TenantStatus>,
    pub home_region: String,
    pub allowed_regions: Vec<String>,
    pub deploy_regions: Vec<String>,
    pub boundary_driver: String,
    pub boundary: Value,
    pub policy_text: String,
    pub policy_sha256: String,
    pub retention: RetentionPolicy,
    pub audit_webhook_url: Option<String>,
    pub dossier_evidence_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub suspended_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub purge_after: Option<i64>,
    pub purged_at: Option<i64>,
}

const TENANT_COLUMNS: &str = "id, name, plan, status, status_before_delete, home_region, \
    allowed_regions, deploy_regions, boundary_driver, boundary, policy_text, policy_sha256, \
    tombstone_days, hard_delete_allowed, legal_hold, audit_webhook_url, dossier_evidence_id, \
    created_at, updated_at, suspended_at, deleted_at, purge_after, purged_at, \
    plan_version, entitlements";

fn parse_status(text: &str) -> Result<TenantStatus, StoreError> {
    TenantStatus::parse(text).ok_or_else(|| StoreError::corrupt(format!("tenant status {text:?}")))
}

fn json_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(format!("tenant regions: {e}")))
}

fn row_to_tenant(row: &sqlx::any::AnyRow) -> Result<TenantRow, StoreError> {
    let status: String = row.try_get("status")?;
    let before: Option<String> = row.try_get("status_before_delete")?;
    let boundary: String = row.try_get("boundary")?;
    Ok(TenantRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        plan: row.try_get("plan")?,
        plan_version: u32::try_from(row.try_get::<i64, _>("plan_version")?)
            .map_err(|_| StoreError::corrupt("tenant plan version"))?,
        entitlements: row
            .try_get::<Option<String>, _>("entitlements")?
            .as_deref()
            .map(json_list)
            .transpose()?,
        status: parse_status(&status)?,
        status_before_delete: before.as_deref().map(parse_status).transpose()?,
        home_region: row.try_get("home_region")?,
        allowed_regions: json_list(&row.try_get::<String, _>("allowed_regions")?)?,
        deploy_regions: json_list(&row.try_get::<String, _>("deploy_regions")?)?,
        boundary_driver: row.try_get("boundary_driver")?,
        boundary: serde_json::from_str(&boundary)
            .map_err(|e| StoreError::corrupt(format!("tenant boundary: {e}")))?,
        policy_text: row.try_get("policy_text")?,
        policy_sha256: row.try_get("policy_sha256")?,
        retention: RetentionPolicy {
            tombstone_days: u32::try_from(row.try_get::<i64, _>("tombstone_days")?)
                .map_err(|_| StoreError::corrupt("tombstone days"))?,
            hard_delete_allowed: row.try_get::<i64, _>("hard_delete_allowed")? != 0,
            legal_hold: row.try_get::<i64, _>("legal_hold")? != 0,
        },
        audit_webhook_url: row.try_get("audit_webhook_url")?,
        dossier_evidence_id: row.try_get("dossier_evidence_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        suspended_at: row.try_get("suspended_at")?,
        deleted_at: row.try_get("deleted_at")?,
        purge_after: row.try_get("purge_after")?,
        purged_at: row.try_get("purged_at")?,
    })
}

fn time_or_null(micros: Option<i64>) -> Value {
    micros.map_or(Value::Null, |m| json!(format_rfc3339(from_micros(m))))
}

impl TenantRow {
    pub fn target(&self) -> String {
        format!("tenant:{}", self.id)
    }
}

/// Input of tenant creation, as received.
#[derive(Debug, Clone, Default)]
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

struct ValidTenant {
    id: TenantId,
    name: String,
    plan: PlanName,
    home_region: RegionName,
    allowed_regions: Vec<RegionName>,
    deploy_regions: Vec<RegionName>,
    audit_webhook_url: Option<String>,
    retention: RetentionPolicy,
}

fn parse_region_list(
    c: &mut Collector,
    field: &str,
    values: &[String],
    catalog: &[RegionName],
) -> Vec<RegionName> {
    let mut out: Vec<RegionName> = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        if let Some(region) = c.take(RegionName::parse_field(value, &item_field)) {
            if !catalog.contains(&region) {
                c.push(FieldError::new(
                    item_field,
                    format!("{region} is not in the region catalog"),
                ));
            } else if out.contains(&region) {
                c.push(FieldError::new(item_field, "is listed twice"));
            } else {
                out.push(region);
            }
        }
    }
    out
}

/// An audit webhook must be an http(s) URL the outbound policy lets deliveries reach (no
/// loopback, private or metadata address, in any spelling, unless allowed).
fn check_webhook_url(url: &str, policy: &OutboundPolicy) -> Result<(), FieldError> {
    policy
        .check_url(url)
        .map(|_| ())
        .map_err(|why| FieldError::new("audit_webhook_url", why))
}

impl App {
    /// Validates a new tenant; `catalog_plan` is the latest catalog version of the plan it
    /// names (`None`: not in the catalog, or not looked up on a failure path, where the
    /// configured plans stand in).
    fn validate_new_tenant(
        &self,
        input: &NewTenant,
        catalog_plan: Option<&companyos_domain::catalog::PlanSpec>,
    ) -> Result<ValidTenant, ServiceError> {
        let settings = self.settings();
        let mut c = Collector::new();
        let id = c.take(TenantId::parse(&input.id));
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > TENANT_NAME_CHARS_MAX {
            c.push(FieldError::new(
                "name",
                format!("must be 1 to {TENANT_NAME_CHARS_MAX} characters"),
            ));
        }
        let plan_text = input.plan.clone().unwrap_or_else(|| "standard".to_owned());
        let plan = c.take(PlanName::parse(&plan_text));
        if let Some(plan) = &plan {
            if catalog_plan.is_none() && settings.plan(plan).is_none() {
                let names: Vec<&str> = settings.plans.iter().map(|p| p.name.as_str()).collect();
                c.push(FieldError::new(
                    "plan",
                    format!("must be one of the catalog's plans: {}", names.join(", ")),
                ));
            }
        }
        let catalog = &settings.regions;
        let allowed = match &input.allowed_regions {
            Some(list) if list.is_empty() => {
                c.push(FieldError::new("allowed_regions", "must not be empty"));
                Vec::new()
            }
            Some(list) => parse_region_list(&mut c, "allowed_regions", list, catalog),
            None => Vec::new(),
        };
        let home = match &input.home_region {
            Some(text) => c.take(RegionName::parse_field(text, "home_region")),
            None => allowed
                .first()
                .cloned()
                .or_else(|| catalog.first().cloned()),
        };
        let allowed = if input.allowed_regions.is_none() {
            home.iter().cloned().collect()
        } else {
            allowed
        };
        if let Some(home) = &home {
            if !catalog.contains(home) {
                c.push(FieldError::new(
                    "home_region",
                    format!("{home} is not in the region catalog"),
                ));
            } else if !allowed.contains(home) && input.allowed_regions.is_some() {
                c.push(FieldError::new(
                    "home_region",
                    "must be one of allowed_regions",
                ));
            }
        }
        let deploy = match &input.deploy_regions {
            Some(list) => {
                let parsed = parse_region_list(&mut c, "deploy_regions", list, catalog);
                for (i, region) in parsed.iter().enumerate() {
                    if !allowed.contains(region) {
                        c.push(FieldError::new(
                            format!("deploy_regions[{i}]"),
                            "must be one of allowed_regions (residency)",
                        ));
                    }
                }
                parsed
            }
            None => home.iter().cloned().collect(),
        };
        if let Some(url) = &input.audit_webhook_url {
            c.take(check_webhook_url(url, &settings.outbound));
        }
        let plan_retention = match catalog_plan {
            Some(spec) => spec.retention.clone(),
            None => plan
                .as_ref()
                .and_then(|p| settings.plan(p))
                .map(|p| p.retention.clone())
                .unwrap_or_default(),
        };
        let tombstone_days = input
            .tombstone_days
            .unwrap_or(plan_retention.tombstone_days);
        if tombstone_days > TOMBSTONE_DAYS_MAX {
            c.push(FieldError::new(
                "tombstone_days",
                format!("must be at most {TOMBSTONE_DAYS_MAX}"),
            ));
        }
        c.finish()?;
        match (id, plan, home) {
            (Some(id), Some(plan), Some(home_region)) => Ok(ValidTenant {
                id,
                name,
                plan,
                home_region,
                allowed_regions: allowed,
                deploy_regions: deploy,
                audit_webhook_url: input.audit_webhook_url.clone(),
                retention: RetentionPolicy {
                    tombstone_days,
                    hard_delete_allowed: input
                        .hard_delete_allowed
                        .unwrap_or(plan_retention.hard_delete_allowed),
                    legal_hold: input.legal_hold.unwrap_or(false),
                },
            }),
            _ => Err(ServiceError::invalid("id", "is required")),
        }
    }

    /// The policy attributes of a tenant row.
    pub(crate) fn attributes_of(&self, tenant: &TenantRow) -> TenantAttributes {
        // The features of the version in force (billing); a row from before the catalog
        // falls back to the configured plan's.
        let entitlements = tenant.entitlements.clone().unwrap_or_else(|| {
            PlanName::parse(&tenant.plan)
                .ok()
                .and_then(|p| self.settings().plan(&p).map(|p| p.entitlements.clone()))
                .unwrap_or_default()
        });
        TenantAttributes {
            id: tenant.id.clone(),
            status: tenant.status.as_str().to_owned(),
            plan: tenant.plan.clone(),
            home_region: tenant.home_region.clone(),
            allowed_regions: tenant.allowed_regions.clone(),
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
        Ok(load_tenant(conn, tenant_id, "")
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
        let tenant = load_tenant(conn, id, "").await?;
        match tenant {
            Some(tenant) => {
                let attributes = self.attributes_of(&tenant);
                self.authorize_read(
                    actor,
                    action,
                    Resource::Tenant(&attributes),
                    &tenant.target(),
                    Some(&tenant.id),
                )
                .await?;
                Ok(tenant)
            }
            None => {
                let attributes = TenantAttributes {
                    id: id.to_owned(),
                    ..placeholder_tenant()
                };
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
        load_tenant(tx, tenant_id, self.db().for_update())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("tenant {tenant_id}")))
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
            let row = load_tenant(&mut conn, &tenant.id, "").await?;
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
        let rows = match status {
            Some(status) => {
                sqlx::query(&format!(
                    "SELECT {TENANT_COLUMNS} FROM tenants WHERE status = $1 ORDER BY id"
                ))
                .bind(status.as_str())
                .fetch_all(&mut *conn)
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id"))
                    .fetch_all(&mut *conn)
                    .await?
            }
        };
        Ok(rows
            .iter()
            .map(row_to_tenant)
            .collect::<Result<Vec<_>, _>>()?)
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
