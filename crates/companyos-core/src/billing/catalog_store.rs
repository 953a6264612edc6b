//! The catalog and plan history in the store: plan versions (immutable rows), assignments
//! (appended, never changed), the tenant row's projection of the version in force, and the
//! seed that turns pre-catalog plans and tenants into version 1 and a first assignment.

use std::sync::Arc;

use companyos_domain::catalog::{PlanAssignment, PlanSpec, PlanVersion, legacy_plan_versions};
use companyos_domain::time_util::{format_day, from_micros, parse_day, to_micros, utc_day};
use companyos_domain::{PlanName, TenantId};
use sqlx::{AnyConnection, Row as _};
use time::{Date, OffsetDateTime};

use super::{AssignmentRecord, StoredPlanVersion};
use crate::app::App;
use crate::db::{Db, StoreError};

/// Versions of one plan at most (a bound on the catalog and on a listing).
pub const PLAN_VERSIONS_MAX: u32 = 10_000;
/// Plans listed at most.
pub const PLANS_LISTED_MAX: i64 = 1_000;
/// Assignments of one tenant returned at most by a history read.
pub const ASSIGNMENTS_READ_MAX: i64 = 10_000;

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::corrupt(format!("{what}: {error}"))
}

fn to_u32(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|e| corrupt(what, e))
}

pub(super) fn stored_version_of(row: &sqlx::any::AnyRow) -> Result<StoredPlanVersion, StoreError> {
    let plan: String = row.try_get("plan")?;
    let plan = PlanName::parse(&plan).map_err(|e| corrupt("plan name", e))?;
    let version = to_u32(row.try_get("version")?, "plan version")?;
    let spec: String = row.try_get("spec")?;
    let spec = PlanSpec::from_canonical_json(&spec).map_err(|e| corrupt("plan spec", e))?;
    if version == 0 {
        return Err(StoreError::corrupt("plan version 0"));
    }
    Ok(StoredPlanVersion {
        version: PlanVersion::new(plan, version, spec),
        sha256: row.try_get("sha256")?,
        created_at: from_micros(row.try_get("created_at")?),
        created_by: row.try_get("created_by")?,
    })
}

const VERSION_COLUMNS: &str = "plan, version, sha256, spec, created_at, created_by";

/// The latest version of a plan.
pub(super) async fn latest_version(
    conn: &mut AnyConnection,
    plan: &str,
) -> Result<Option<StoredPlanVersion>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS} FROM plan_versions WHERE plan = $1 \
         ORDER BY version DESC LIMIT 1"
    ))
    .bind(plan)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(stored_version_of).transpose()
}

/// Version `version` of a plan.
pub(super) async fn version(
    conn: &mut AnyConnection,
    plan: &str,
    version: u32,
) -> Result<Option<StoredPlanVersion>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS} FROM plan_versions WHERE plan = $1 AND version = $2"
    ))
    .bind(plan)
    .bind(i64::from(version))
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(stored_version_of).transpose()
}

/// The latest version of every plan, by plan name.
pub(super) async fn latest_versions(
    conn: &mut AnyConnection,
) -> Result<Vec<StoredPlanVersion>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {VERSION_COLUMNS} FROM plan_versions p WHERE version = \
         (SELECT MAX(version) FROM plan_versions q WHERE q.plan = p.plan) \
         ORDER BY plan LIMIT $1"
    ))
    .bind(PLANS_LISTED_MAX)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(stored_version_of).collect()
}

/// Writes a new version; `false` when another writer took the number first.
pub(super) async fn insert_version(
    conn: &mut AnyConnection,
    version: &PlanVersion,
    now: OffsetDateTime,
    created_by: &str,
) -> Result<bool, StoreError> {
    let written = sqlx::query(
        "INSERT INTO plan_versions (plan, version, sha256, spec, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (plan, version) DO NOTHING",
    )
    .bind(version.plan.as_str())
    .bind(i64::from(version.version))
    .bind(version.sha256_hex())
    .bind(version.spec.canonical_json())
    .bind(to_micros(now))
    .bind(created_by)
    .execute(&mut *conn)
    .await?;
    Ok(written.rows_affected() == 1)
}

pub(super) fn assignment_of(row: &sqlx::any::AnyRow) -> Result<AssignmentRecord, StoreError> {
    let tenant: String = row.try_get("tenant_id")?;
    let plan: String = row.try_get("plan")?;
    let day: String = row.try_get("effective_from")?;
    Ok(AssignmentRecord {
        tenant_id: TenantId::parse(&tenant).map_err(|e| corrupt("assignment tenant", e))?,
        seq: u64::try_from(row.try_get::<i64, _>("seq")?).map_err(|e| corrupt("seq", e))?,
        plan: PlanName::parse(&plan).map_err(|e| corrupt("assignment plan", e))?,
        version: to_u32(row.try_get("version")?, "assignment version")?,
        effective_from: parse_day(&day, "effective_from")
            .map_err(|e| corrupt("effective_from", e))?,
        assigned_at: from_micros(row.try_get("assigned_at")?),
        assigned_by: row.try_get("assigned_by")?,
        reason: row.try_get("reason")?,
    })
}

/// A tenant's plan history, oldest first.
pub(super) async fn assignments(
    conn: &mut AnyConnection,
    tenant_id: &str,
) -> Result<Vec<AssignmentRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT tenant_id, seq, plan, version, effective_from, assigned_at, assigned_by, reason \
         FROM tenant_plan_assignments WHERE tenant_id = $1 ORDER BY seq LIMIT $2",
    )
    .bind(tenant_id)
    .bind(ASSIGNMENTS_READ_MAX)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(assignment_of).collect()
}

impl AssignmentRecord {
    pub(super) fn as_assignment(&self) -> PlanAssignment {
        PlanAssignment {
            seq: self.seq,
            plan: self.plan.clone(),
            version: self.version,
            effective_from: self.effective_from,
        }
    }
}

/// Appends an assignment with the next `seq` of the tenant (the caller holds the tenant row's
/// lock, or the tenant is being created in this transaction).
pub(super) async fn append_assignment(
    conn: &mut AnyConnection,
    record: &AssignmentRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tenant_plan_assignments (tenant_id, seq, plan, version, effective_from, \
         assigned_at, assigned_by, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(record.tenant_id.as_str())
    .bind(i64::try_from(record.seq).map_err(|e| corrupt("seq", e))?)
    .bind(record.plan.as_str())
    .bind(i64::from(record.version))
    .bind(format_day(record.effective_from))
    .bind(to_micros(record.assigned_at))
    .bind(record.assigned_by.as_str())
    .bind(record.reason.as_deref())
    .execute(&mut *conn)
    .await?;
    bump_history_revision(conn).await
}

/// Marks every node's in-memory plan histories stale (`HistoryCache`): called in the
/// transaction of every assignment written, so a reader that sees the assignment sees the new
/// revision. On PostgreSQL the row lock orders plan changes among themselves until commit;
/// group commits only read the row and never wait on it.
async fn bump_history_revision(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let updated =
        sqlx::query("UPDATE plan_history_revision SET revision = revision + 1 WHERE id = 1")
            .execute(&mut *conn)
            .await?;
    if updated.rows_affected() != 1 {
        return Err(StoreError::corrupt("plan_history_revision has no row"));
    }
    Ok(())
}

/// The current revision of all plan histories (see [`bump_history_revision`]).
pub(super) async fn history_revision(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let revision: Option<i64> =
        sqlx::query_scalar("SELECT revision FROM plan_history_revision WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await?;
    revision.ok_or_else(|| StoreError::corrupt("plan_history_revision has no row"))
}

/// The tenant row's projection of the version in force: plan, version and its features.
pub(super) async fn project_onto_tenant(
    conn: &mut AnyConnection,
    tenant_id: &str,
    version: &PlanVersion,
) -> Result<(), StoreError> {
    // An id that does not parse names no tenant: there is no row to project onto.
    let Ok(tenant_id) = companyos_domain::TenantId::parse(tenant_id) else {
        return Ok(());
    };
    let features: Vec<&str> = version.spec.features.iter().map(|f| f.as_str()).collect();
    let plan = (&version.plan, version.version);
    companyos_store::tenants::set_plan(conn, &tenant_id, plan, &features).await
}

/// Makes the catalog whole at start, changing nothing that exists: version 1 of every
/// configured plan that has no version yet, and for every tenant without a plan history an
/// assignment to the latest version of its plan from the day it was created. Idempotent, and
/// safe with several nodes starting at once (insert-if-absent).
pub(crate) async fn seed(app: &App) -> Result<(), StoreError> {
    let db: &Db = app.db();
    let now = app.now();
    let mut tx = db.begin().await?;
    for version in legacy_plan_versions(app.settings().plans.clone()) {
        if latest_version(&mut tx, version.plan.as_str())
            .await?
            .is_none()
        {
            insert_version(&mut tx, &version, now, "system:seed").await?;
        }
    }
    // In id order: quota rows are seeded under each tenant's ledger head lock, which every
    // writer takes in that order.
    let rows = sqlx::query(
        "SELECT id, plan, created_at FROM tenants t WHERE NOT EXISTS \
         (SELECT 1 FROM tenant_plan_assignments a WHERE a.tenant_id = t.id) ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in rows {
        let id: String = row.try_get("id")?;
        let plan: String = row.try_get("plan")?;
        let created: Date = utc_day(from_micros(row.try_get("created_at")?));
        let (Ok(tenant_id), Some(stored)) =
            (TenantId::parse(&id), latest_version(&mut tx, &plan).await?)
        else {
            tracing::warn!(tenant = %id, %plan, "tenant's plan is not in the catalog; left without a plan history");
            continue;
        };
        let record = AssignmentRecord {
            tenant_id,
            seq: 1,
            plan: stored.version.plan.clone(),
            version: stored.version.version,
            effective_from: created,
            assigned_at: now,
            assigned_by: "system:seed".to_owned(),
            reason: Some("the plan the tenant had before the catalog".to_owned()),
        };
        let written = sqlx::query(
            "INSERT INTO tenant_plan_assignments (tenant_id, seq, plan, version, effective_from, \
             assigned_at, assigned_by, reason) VALUES ($1, 1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, seq) DO NOTHING",
        )
        .bind(record.tenant_id.as_str())
        .bind(record.plan.as_str())
        .bind(i64::from(record.version))
        .bind(format_day(record.effective_from))
        .bind(to_micros(now))
        .bind(record.assigned_by.as_str())
        .bind(record.reason.as_deref())
        .execute(&mut *tx)
        .await?;
        if written.rows_affected() == 1 {
            bump_history_revision(&mut tx).await?;
            // Usage stored before the catalog counts towards the quotas it now has.
            app.seed_quota_usage(&mut tx, &id, &stored.version, created, now)
                .await?;
        }
        project_onto_tenant(&mut tx, &id, &stored.version).await?;
    }
    tx.commit().await?;
    Ok(())
}

impl App {
    /// A plan version, from memory when it was read before (versions never change).
    pub(crate) async fn plan_version_cached(
        &self,
        conn: &mut AnyConnection,
        plan: &str,
        number: u32,
    ) -> Result<Option<Arc<PlanVersion>>, StoreError> {
        let cache = &self.inner.plan_versions;
        if let Some(found) = cache.get(plan, number) {
            return Ok(Some(found));
        }
        let Some(stored) = version(conn, plan, number).await? else {
            return Ok(None);
        };
        let found = Arc::new(stored.version);
        cache.put(found.clone());
        Ok(Some(found))
    }
}
