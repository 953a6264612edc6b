//! Tenant rows in the store: load (optionally locked), insert, update, and a tenant's workloads.

#[allow(unused_imports)]
use super::*;

pub(crate) async fn load_tenant(
    conn: &mut AnyConnection,
    id: &str,
    for_update: &str,
) -> Result<Option<TenantRow>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1{for_update}"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(row_to_tenant).transpose()
}

/// Binds every column of a tenant, in `TENANT_COLUMNS` order.
pub(super) fn bind_tenant<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    t: &'q TenantRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(t.id.as_str())
        .bind(t.name.as_str())
        .bind(t.plan.as_str())
        .bind(t.status.as_str())
        .bind(t.status_before_delete.map(|s| s.as_str()))
        .bind(t.home_region.as_str())
        .bind(json!(t.allowed_regions).to_string())
        .bind(json!(t.deploy_regions).to_string())
        .bind(t.boundary_driver.as_str())
        .bind(t.boundary.to_string())
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
        .bind(
            t.entitlements
                .as_ref()
                .map(|features| json!(features).to_string()),
        )
}

pub(super) fn tenant_placeholders() -> String {
    (1..=25)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) async fn insert_tenant(
    conn: &mut AnyConnection,
    t: &TenantRow,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO tenants ({TENANT_COLUMNS}) VALUES ({})",
        tenant_placeholders()
    );
    bind_tenant(sqlx::query(&sql), t)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn update_tenant(
    conn: &mut AnyConnection,
    t: &TenantRow,
) -> Result<(), StoreError> {
    // The same columns and binds as the insert (`id` first, matched, not changed).
    let columns = TENANT_COLUMNS.trim_start_matches("id, ");
    let values: Vec<String> = (2..=25).map(|i| format!("${i}")).collect();
    let sql = format!(
        "UPDATE tenants SET ({columns}) = ({}) WHERE id = $1",
        values.join(", ")
    );
    bind_tenant(sqlx::query(&sql), t)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn workloads_of(
    conn: &mut AnyConnection,
    tenant_id: &str,
) -> Result<Vec<Workload>, StoreError> {
    let rows = sqlx::query(
        "SELECT name, replicas, suspended_replicas, updated_at FROM workloads \
         WHERE tenant_id = $1 ORDER BY name",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Workload {
                name: row.try_get("name")?,
                replicas: row.try_get("replicas")?,
                suspended_replicas: row.try_get("suspended_replicas")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
}

/// Attributes used to authorize listing (no particular tenant).
/// The policy attributes of a tenant id that names no tenant (so policy decides first).
pub(crate) fn placeholder_attributes(id: &str) -> TenantAttributes {
    TenantAttributes {
        id: id.to_owned(),
        ..placeholder_tenant()
    }
}

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
