//! The tenants repository: the `tenants` row as typed values (`TenantRow`), read (optionally
//! locked), listed, inserted and updated, the few single-column reads other capabilities make of
//! it, and a tenant's workloads. Every column keeps its stored form: ids, plans and regions as
//! their text, the boundary as the JSON text its driver wrote (`BoundarySpec::stored_text`).

use companyos_domain::boundary::{BoundaryDriverKind, BoundarySpec};
use companyos_domain::plan::RetentionPolicy;
use companyos_domain::{PlanName, RegionName, TenantId, TenantStatus};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row as _};

use crate::db::{Db, StoreError};

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    pub id: TenantId,
    pub name: String,
    pub plan: PlanName,
    /// The version of `plan` in force today (a projection of the plan history, `billing`).
    pub plan_version: u32,
    /// The features of that version; `None` on a row written before the catalog.
    pub entitlements: Option<Vec<String>>,
    pub status: TenantStatus,
    pub status_before_delete: Option<TenantStatus>,
    pub home_region: RegionName,
    pub allowed_regions: Vec<RegionName>,
    pub deploy_regions: Vec<RegionName>,
    /// The driver configured when the tenant was created (`boundary_driver`). A retry under
    /// another configuration creates its boundary with the driver of the day, so this and
    /// `boundary`'s own driver are two stored facts, kept apart.
    pub boundary_driver: BoundaryDriverKind,
    /// What the driver created; `None` (stored `{}`) until a provisioning finished one.
    pub boundary: Option<BoundarySpec>,
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

impl TenantRow {
    /// The tenant as an audit target (`tenant:<id>`).
    pub fn target(&self) -> String {
        format!("tenant:{}", self.id)
    }
}

/// A tenant's workload as stored (`suspended_replicas`: what a suspension scaled down from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRow {
    pub name: String,
    pub replicas: i64,
    pub suspended_replicas: Option<i64>,
    pub updated_at: i64,
}

/// Every column, in the order [`bind_tenant`] binds them.
const TENANT_COLUMNS: &str = "id, name, plan, status, status_before_delete, home_region, \
    allowed_regions, deploy_regions, boundary_driver, boundary, policy_text, policy_sha256, \
    tombstone_days, hard_delete_allowed, legal_hold, audit_webhook_url, dossier_evidence_id, \
    created_at, updated_at, suspended_at, deleted_at, purge_after, purged_at, \
    plan_version, entitlements";

/// How many columns [`TENANT_COLUMNS`] names.
const TENANT_COLUMN_COUNT: usize = 25;

type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

fn parse_status(text: &str) -> Result<TenantStatus, StoreError> {
    TenantStatus::parse(text).ok_or_else(|| StoreError::corrupt(format!("tenant status {text:?}")))
}

fn json_list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::corrupt(format!("tenant regions: {e}")))
}

fn region(text: &str) -> Result<RegionName, StoreError> {
    RegionName::parse(text).map_err(|e| StoreError::corrupt(format!("tenant region: {e}")))
}

fn region_list(text: &str) -> Result<Vec<RegionName>, StoreError> {
    json_list(text)?.iter().map(|r| region(r)).collect()
}

/// A list as the row stores it: a JSON array of strings.
fn json_list_text<T: AsRef<str>>(items: &[T]) -> String {
    let texts: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    serde_json::Value::from(texts).to_string()
}

fn tenant_id(text: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(text).map_err(|e| StoreError::corrupt(format!("tenant id {text:?}: {e}")))
}

fn boundary_of(row: &AnyRow) -> Result<(BoundaryDriverKind, Option<BoundarySpec>), StoreError> {
    let driver: String = row.try_get("boundary_driver")?;
    let driver = BoundaryDriverKind::parse(&driver)
        .ok_or_else(|| StoreError::corrupt(format!("tenant boundary driver {driver:?}")))?;
    let boundary: String = row.try_get("boundary")?;
    let spec = BoundarySpec::from_stored(&boundary)
        .map_err(|e| StoreError::corrupt(format!("tenant boundary: {e}")))?;
    Ok((driver, spec))
}

fn retention_of(row: &AnyRow) -> Result<RetentionPolicy, StoreError> {
    Ok(RetentionPolicy {
        tombstone_days: u32::try_from(row.try_get::<i64, _>("tombstone_days")?)
            .map_err(|_| StoreError::corrupt("tombstone days"))?,
        hard_delete_allowed: row.try_get::<i64, _>("hard_delete_allowed")? != 0,
        legal_hold: row.try_get::<i64, _>("legal_hold")? != 0,
    })
}

fn row_to_tenant(row: &AnyRow) -> Result<TenantRow, StoreError> {
    let status: String = row.try_get("status")?;
    let before: Option<String> = row.try_get("status_before_delete")?;
    let plan: String = row.try_get("plan")?;
    let (boundary_driver, boundary) = boundary_of(row)?;
    Ok(TenantRow {
        id: tenant_id(&row.try_get::<String, _>("id")?)?,
        name: row.try_get("name")?,
        plan: PlanName::parse(&plan)
            .map_err(|e| StoreError::corrupt(format!("tenant plan {plan:?}: {e}")))?,
        plan_version: u32::try_from(row.try_get::<i64, _>("plan_version")?)
            .map_err(|_| StoreError::corrupt("tenant plan version"))?,
        entitlements: row
            .try_get::<Option<String>, _>("entitlements")?
            .as_deref()
            .map(json_list)
            .transpose()?,
        status: parse_status(&status)?,
        status_before_delete: before.as_deref().map(parse_status).transpose()?,
        home_region: region(&row.try_get::<String, _>("home_region")?)?,
        allowed_regions: region_list(&row.try_get::<String, _>("allowed_regions")?)?,
        deploy_regions: region_list(&row.try_get::<String, _>("deploy_regions")?)?,
        boundary_driver,
        boundary,
        policy_text: row.try_get("policy_text")?,
        policy_sha256: row.try_get("policy_sha256")?,
        retention: retention_of(row)?,
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

/// Binds every column of a tenant, in `TENANT_COLUMNS` order.
fn bind_tenant<'q>(query: AnyQuery<'q>, t: &'q TenantRow) -> AnyQuery<'q> {
    query
        .bind(t.id.as_str())
        .bind(t.name.as_str())
        .bind(t.plan.as_str())
        .bind(t.status.as_str())
        .bind(t.status_before_delete.map(|s| s.as_str()))
        .bind(t.home_region.as_str())
        .bind(json_list_text(&t.allowed_regions))
        .bind(json_list_text(&t.deploy_regions))
        .bind(t.boundary_driver.as_str())
        .bind(BoundarySpec::stored_text(t.boundary.as_ref()))
        .bind(t.policy_text.as_str())
        .bind(t.policy_sha256.as_str())
        .bind(i64::from(t.retention.tombstone_days))
        .bind(i64::from(t.retention.hard_delete_allowed))
        .bind(i64::from(t.retention.legal_hold))
        .bind(t.audit_webhook_url.as_deref())
        .bind(t.dossier_evidence_id.as_deref())
        .bind(t.created_at)
        .bind(t.updated_at)
        .bind(t.suspended_at)
        .bind(t.deleted_at)
        .bind(t.purge_after)
        .bind(t.purged_at)
        .bind(i64::from(t.plan_version))
        .bind(t.entitlements.as_deref().map(json_list_text))
}

/// `$first, ..., $TENANT_COLUMN_COUNT`.
fn placeholders_from(first: usize) -> String {
    (first..=TENANT_COLUMN_COUNT)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn load_with(
    conn: &mut AnyConnection,
    id: &TenantId,
    for_update: &str,
) -> Result<Option<TenantRow>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1{for_update}"
    ))
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(row_to_tenant).transpose()
}

/// A tenant, if there is one of that id.
pub async fn load(
    conn: &mut AnyConnection,
    id: &TenantId,
) -> Result<Option<TenantRow>, StoreError> {
    load_with(conn, id, "").await
}

/// A tenant, locked for the rest of the transaction on PostgreSQL (the single writer
/// connection serialises writers on SQLite).
pub async fn load_for_update(
    conn: &mut AnyConnection,
    db: &Db,
    id: &TenantId,
) -> Result<Option<TenantRow>, StoreError> {
    load_with(conn, id, db.for_update()).await
}

/// Every tenant, or those in `status`, by id.
pub async fn list(
    conn: &mut AnyConnection,
    status: Option<TenantStatus>,
) -> Result<Vec<TenantRow>, StoreError> {
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
    rows.iter().map(row_to_tenant).collect()
}

/// Inserts a new tenant; a taken id is a unique violation (`StoreError::is_unique_violation`).
pub async fn insert(conn: &mut AnyConnection, tenant: &TenantRow) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ({})",
        placeholders_from(1)
    );
    bind_tenant(sqlx::query(&sql), tenant)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Writes every column of a tenant back (matched on `id`, which never changes).
pub async fn update(conn: &mut AnyConnection, tenant: &TenantRow) -> Result<(), StoreError> {
    // The same columns and binds as the insert (`id` first, matched, not changed).
    let columns = TENANT_COLUMNS.trim_start_matches("id, ");
    let sql = format!(
        "UPDATE tenants SET ({columns}) = ({}) WHERE id = $1",
        placeholders_from(2)
    );
    bind_tenant(sqlx::query(&sql), tenant)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Sets the tenant row's projection of the plan version in force (`billing`): the plan, its
/// version and the version's features.
pub async fn set_plan(
    conn: &mut AnyConnection,
    id: &TenantId,
    plan: (&PlanName, u32),
    features: &[&str],
) -> Result<(), StoreError> {
    let (plan, version) = plan;
    sqlx::query("UPDATE tenants SET plan = $1, plan_version = $2, entitlements = $3 WHERE id = $4")
        .bind(plan.as_str())
        .bind(i64::from(version))
        .bind(json_list_text(features))
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A tenant's status alone, if there is a tenant of that id.
pub async fn status_of(
    conn: &mut AnyConnection,
    id: &TenantId,
) -> Result<Option<TenantStatus>, StoreError> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM tenants WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    status.as_deref().map(parse_status).transpose()
}

/// Every tenant id, in order.
pub async fn ids(conn: &mut AnyConnection) -> Result<Vec<TenantId>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM tenants ORDER BY id")
        .fetch_all(&mut *conn)
        .await?;
    ids.iter().map(|id| tenant_id(id)).collect()
}

/// The audit webhook of every tenant that has one and is not purged.
pub async fn audit_webhooks(
    conn: &mut AnyConnection,
) -> Result<Vec<(TenantId, String)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, audit_webhook_url FROM tenants WHERE audit_webhook_url IS NOT NULL \
         AND status <> 'purged'",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get("id")?;
            Ok((tenant_id(&id)?, row.try_get("audit_webhook_url")?))
        })
        .collect()
}

/// Up to `limit` deleted tenants the purge timer may purge at `now_micros` (tombstone over,
/// no legal hold, hard delete allowed), the longest overdue first.
pub async fn due_for_purge(
    conn: &mut AnyConnection,
    now_micros: i64,
    limit: i64,
) -> Result<Vec<TenantId>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM tenants WHERE status IN ('deleting', 'purge_failed') \
         AND purge_after IS NOT NULL AND purge_after <= $1 AND legal_hold = 0 \
         AND hard_delete_allowed = 1 ORDER BY purge_after LIMIT $2",
    )
    .bind(now_micros)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    ids.iter().map(|id| tenant_id(id)).collect()
}

/// A tenant's workloads, by name.
pub async fn workloads(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
) -> Result<Vec<WorkloadRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, replicas, suspended_replicas, updated_at FROM workloads \
         WHERE tenant_id = $1 ORDER BY name",
    )
    .bind(tenant_id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(WorkloadRow {
                name: row.try_get("name")?,
                replicas: row.try_get("replicas")?,
                suspended_replicas: row.try_get("suspended_replicas")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
}
