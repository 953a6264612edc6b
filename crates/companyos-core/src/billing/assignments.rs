//! Each tenant's plan history: changing a tenant's plan (now or from the next period, audited
//! as `tenant.plan_change` with the old and new plan and version), reading the history, the
//! plan versions in force over a range of days (what statements prorate by), and the job that
//! moves the tenant row's projection to a scheduled version when its day comes.

use companyos_domain::catalog::{
    PlanAssignment, assignment_intervals, assignment_on, first_of_next_month,
};
use companyos_domain::time_util::{format_day, utc_day};
use companyos_domain::{PlanName, TenantId, TenantStatus};
use serde_json::json;
use sqlx::Row as _;
use time::Date;

use super::catalog_store;
use super::{AssignmentRecord, Billing, PlanInForce, StoredPlanVersion};
use crate::app::{Actor, App};
use crate::authz::Resource;
use crate::error::ServiceError;
use crate::lifecycle::TenantRow;
use companyos_domain::Action;

/// Characters of a plan change's reason at most.
pub const PLAN_CHANGE_REASON_CHARS_MAX: usize = 1000;
/// Tenants whose scheduled plan change one run of the job applies at most.
pub const DUE_ASSIGNMENTS_PER_RUN_MAX: i64 = 1000;

/// When a plan change applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effective {
    /// From today (UTC): today is billed under the new version.
    Now,
    /// From the first day of the next UTC calendar month.
    NextPeriod,
}

impl Effective {
    pub fn parse_field(text: &str, field: &str) -> Result<Self, companyos_domain::FieldError> {
        match text {
            "now" => Ok(Self::Now),
            "next_period" => Ok(Self::NextPeriod),
            _ => Err(companyos_domain::FieldError::new(
                field,
                "must be \"now\" or \"next_period\"",
            )),
        }
    }
}

/// A requested plan change.
#[derive(Debug, Clone)]
pub struct PlanChange {
    pub plan: PlanName,
    /// A given version; the latest when `None`.
    pub version: Option<u32>,
    pub effective: Effective,
    pub reason: Option<String>,
}

/// A tenant's assignment in force today and its whole history (oldest first).
#[derive(Debug, Clone)]
pub struct TenantPlan {
    pub current: Option<AssignmentRecord>,
    pub history: Vec<AssignmentRecord>,
}

impl Effective {
    fn as_str(self) -> &'static str {
        match self {
            Effective::Now => "now",
            Effective::NextPeriod => "next_period",
        }
    }

    /// The first day a change made on `today` applies to.
    fn first_day(self, today: Date) -> Date {
        match self {
            Effective::Now => today,
            Effective::NextPeriod => first_of_next_month(today.replace_day(1).unwrap_or(today)),
        }
    }
}

fn check_change(change: &PlanChange, tenant: &TenantRow) -> Result<(), ServiceError> {
    if change
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > PLAN_CHANGE_REASON_CHARS_MAX)
    {
        return Err(ServiceError::invalid(
            "reason",
            format!("at most {PLAN_CHANGE_REASON_CHARS_MAX} characters"),
        ));
    }
    if tenant.status == TenantStatus::Purged {
        return Err(ServiceError::Conflict {
            message: format!("tenant {} is purged; its plan cannot change", tenant.id),
            current_status: Some(tenant.status.as_str().to_owned()),
        });
    }
    Ok(())
}

/// The version a change names: a given one, or the latest; a 400 naming the field otherwise.
async fn resolve_version(
    conn: &mut sqlx::AnyConnection,
    change: &PlanChange,
) -> Result<StoredPlanVersion, ServiceError> {
    let stored = match change.version {
        Some(number) => catalog_store::version(conn, change.plan.as_str(), number).await?,
        None => catalog_store::latest_version(conn, change.plan.as_str()).await?,
    };
    stored.ok_or_else(|| match change.version {
        Some(number) => ServiceError::invalid(
            "version",
            format!("plan {} has no version {number}", change.plan),
        ),
        None => ServiceError::invalid(
            "plan",
            format!("{} is not a plan of the catalog", change.plan),
        ),
    })
}

impl App {
    /// Loads a tenant row for update and authorizes `action` on it; an unknown tenant is
    /// decided by policy first (so a role that may not act learns nothing), then 404.
    pub(super) async fn lock_and_authorize(
        &self,
        tx: &mut crate::db::Tx,
        actor: &Actor,
        tenant_id: &TenantId,
        action: Action,
        entry: &mut crate::audit::NewAudit,
    ) -> Result<TenantRow, ServiceError> {
        let found = companyos_store::tenants::load_for_update(tx, self.db(), tenant_id).await?;
        let attributes = match &found {
            Some(tenant) => self.attributes_of(tenant),
            None => crate::lifecycle::placeholder_attributes(tenant_id.as_str()),
        };
        self.require(actor, action, Resource::Tenant(&attributes), &[], entry)?;
        found.ok_or_else(|| ServiceError::NotFound(format!("tenant {tenant_id}")))
    }
}

impl Billing<'_> {
    /// Assigns a plan version to a tenant from today or the next period.
    pub async fn change_tenant_plan(
        &self,
        actor: &Actor,
        tenant_id: &TenantId,
        change: PlanChange,
    ) -> Result<AssignmentRecord, ServiceError> {
        let app = self.app;
        let mut entry = app
            .entry(actor, "tenant.plan_change", &format!("tenant:{tenant_id}"))
            .reason(change.reason.as_deref())
            .details(json!({"plan": change.plan.as_str(), "version": change.version}));
        entry.tenant_id = Some(tenant_id.as_str().to_owned());
        let mut tx = app.db().begin().await?;
        let result = async {
            let tenant = app
                .lock_and_authorize(
                    &mut tx,
                    actor,
                    tenant_id,
                    Action::TenantPlanChange,
                    &mut entry,
                )
                .await?;
            check_change(&change, &tenant)?;
            let stored = resolve_version(&mut tx, &change).await?;
            let now = app.now();
            let today = utc_day(now);
            let effective_from = change.effective.first_day(today);
            let history = catalog_store::assignments(&mut tx, tenant_id.as_str()).await?;
            let plain: Vec<PlanAssignment> = history.iter().map(|a| a.as_assignment()).collect();
            let old = assignment_on(&plain, today);
            let record = AssignmentRecord {
                tenant_id: tenant_id.clone(),
                seq: history.last().map_or(1, |a| a.seq + 1),
                plan: stored.version.plan.clone(),
                version: stored.version.version,
                effective_from,
                assigned_at: now,
                assigned_by: actor.principal.actor_name(),
                reason: change.reason.clone(),
            };
            catalog_store::append_assignment(&mut tx, &record).await?;
            app.seed_quota_usage(
                &mut tx,
                tenant_id.as_str(),
                &stored.version,
                effective_from,
                now,
            )
            .await?;
            if effective_from <= today {
                catalog_store::project_onto_tenant(&mut tx, tenant_id.as_str(), &stored.version)
                    .await?;
            }
            let details = &mut entry.details;
            details["old_plan"] = json!(old.map(|a| a.plan.as_str()));
            details["old_version"] = json!(old.map(|a| a.version));
            details["version"] = json!(record.version);
            details["sha256"] = json!(stored.sha256);
            details["effective"] = json!(change.effective.as_str());
            details["effective_from"] = json!(format_day(effective_from));
            details["seq"] = json!(record.seq);
            Ok(record)
        }
        .await;
        app.finish(tx, entry, result).await
    }

    /// A tenant's plan in force today and its history; anyone who may read the tenant.
    pub async fn tenant_plan(
        &self,
        actor: &Actor,
        tenant_id: &TenantId,
    ) -> Result<TenantPlan, ServiceError> {
        let mut conn = self.app.db().readers().acquire().await?;
        self.app
            .readable_tenant(&mut conn, actor, tenant_id.as_str(), Action::TenantRead)
            .await?;
        let history = catalog_store::assignments(&mut conn, tenant_id.as_str()).await?;
        let today = utc_day(self.app.now());
        let current = history
            .iter()
            .filter(|a| a.effective_from <= today)
            .max_by_key(|a| a.seq)
            .cloned();
        Ok(TenantPlan { current, history })
    }

    /// The plan versions in force for a tenant over `[from, to_exclusive)`, split where the
    /// version changes, in day order. Days before the tenant's first assignment (its creation
    /// day) are left out. For the service layer (statements); callers authorize.
    pub async fn plans_in_force(
        &self,
        tenant_id: &TenantId,
        from: Date,
        to_exclusive: Date,
    ) -> Result<Vec<PlanInForce>, ServiceError> {
        let mut conn = self.app.db().readers().acquire().await?;
        let history = catalog_store::assignments(&mut conn, tenant_id.as_str()).await?;
        let plain: Vec<PlanAssignment> = history.iter().map(|a| a.as_assignment()).collect();
        let mut in_force = Vec::new();
        for (assignment, start, end) in assignment_intervals(&plain, from, to_exclusive) {
            let version = self
                .app
                .plan_version_cached(&mut conn, assignment.plan.as_str(), assignment.version)
                .await?
                .ok_or_else(|| {
                    crate::db::StoreError::corrupt(format!(
                        "tenant {tenant_id} is assigned plan {} version {}, which is not stored",
                        assignment.plan, assignment.version
                    ))
                })?;
            in_force.push(PlanInForce {
                version: (*version).clone(),
                from: start,
                to: end,
            });
        }
        Ok(in_force)
    }

    /// Moves each tenant row's projection (plan, version, features) to the assignment in
    /// force today where a scheduled change has come due. Returns the tenants changed.
    pub async fn apply_due_plan_changes(&self) -> Result<usize, ServiceError> {
        let app = self.app;
        let today = format_day(utc_day(app.now()));
        let rows = sqlx::query(
            "SELECT a.tenant_id, a.plan, a.version FROM tenant_plan_assignments a \
             JOIN tenants t ON t.id = a.tenant_id \
             WHERE a.seq = (SELECT MAX(b.seq) FROM tenant_plan_assignments b \
                            WHERE b.tenant_id = a.tenant_id AND b.effective_from <= $1) \
               AND (t.plan <> a.plan OR t.plan_version <> a.version) \
             ORDER BY a.tenant_id LIMIT $2",
        )
        .bind(today.as_str())
        .bind(DUE_ASSIGNMENTS_PER_RUN_MAX)
        .fetch_all(app.db().readers())
        .await?;
        let mut changed = 0;
        for row in rows {
            let tenant_id: String = row.try_get("tenant_id")?;
            // Decided again under the tenant row's lock: a plan change may have committed
            // since the read above.
            let mut tx = app.db().begin().await?;
            if crate::lifecycle::tenant_named_for_update(&mut tx, app.db(), &tenant_id)
                .await?
                .is_none()
            {
                continue;
            }
            let history = catalog_store::assignments(&mut tx, &tenant_id).await?;
            let plain: Vec<PlanAssignment> = history.iter().map(|a| a.as_assignment()).collect();
            let Some(due) = assignment_on(&plain, utc_day(app.now())) else {
                continue;
            };
            let Some(version) = app
                .plan_version_cached(&mut tx, due.plan.as_str(), due.version)
                .await?
            else {
                continue;
            };
            catalog_store::project_onto_tenant(&mut tx, &tenant_id, &version).await?;
            tx.commit().await?;
            changed += 1;
        }
        Ok(changed)
    }
}

impl Billing<'_> {
    /// The latest catalog version of a plan named by text (`None`: no such plan).
    pub(crate) async fn latest_plan_version(
        &self,
        conn: &mut sqlx::AnyConnection,
        plan: &str,
    ) -> Result<Option<companyos_domain::catalog::PlanVersion>, ServiceError> {
        Ok(catalog_store::latest_version(conn, plan)
            .await?
            .map(|stored| stored.version))
    }

    /// A provisioned tenant's first assignment: the latest version of its plan from the day it
    /// was created, unless it has a history already (a retried provisioning). Sets the row's
    /// projection in `tenant` too, since the caller writes the row afterwards.
    pub(crate) async fn assign_initial_plan(
        &self,
        tx: &mut crate::db::Tx,
        actor: &Actor,
        tenant: &mut crate::lifecycle::TenantRow,
    ) -> Result<(), ServiceError> {
        if !catalog_store::assignments(tx, tenant.id.as_str())
            .await?
            .is_empty()
        {
            return Ok(());
        }
        let Some(version) = self.latest_plan_version(tx, tenant.plan.as_str()).await? else {
            return Err(ServiceError::invalid(
                "plan",
                format!("{} is not a plan of the catalog", tenant.plan),
            ));
        };
        let tenant_id = tenant.id.clone();
        let record = AssignmentRecord {
            tenant_id,
            seq: 1,
            plan: version.plan.clone(),
            version: version.version,
            effective_from: utc_day(companyos_domain::time_util::from_micros(tenant.created_at)),
            assigned_at: self.app.now(),
            assigned_by: actor.principal.actor_name(),
            reason: Some("tenant created".to_owned()),
        };
        catalog_store::append_assignment(tx, &record).await?;
        catalog_store::project_onto_tenant(tx, tenant.id.as_str(), &version).await?;
        tenant.plan_version = version.version;
        tenant.entitlements = Some(
            version
                .spec
                .features
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
        );
        Ok(())
    }
}
