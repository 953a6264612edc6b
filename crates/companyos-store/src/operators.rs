//! The operators table as typed rows, and the bearer-credential lookups of authentication
//! (operator tokens and tenant API keys, found by the SHA-256 of the token, never the token).
//! Each function runs on the caller's connection or transaction; the service in
//! `companyos-core` decides who may do what.

use companyos_domain::{OperatorName, Role, TenantId};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::db::StoreError;

/// One row of `operators`, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRow {
    pub id: String,
    pub name: OperatorName,
    pub role: Role,
    pub created_at_micros: i64,
    pub revoked_at_micros: Option<i64>,
}

/// An operator whose token is not revoked: what a principal is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveOperator {
    pub id: String,
    pub name: OperatorName,
    pub role: Role,
}

/// Who created an operator and when (the two-person rule follows this chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorOrigin {
    /// The creator's actor name (an operator's name, `system:init`, `local:reset-admin`, ...).
    pub created_by: Option<String>,
    pub created_at_micros: i64,
}

/// A new operator row; the token itself is never stored.
#[derive(Debug, Clone, Copy)]
pub struct NewOperator<'a> {
    pub id: &'a str,
    pub name: &'a OperatorName,
    pub role: Role,
    pub token_sha256: &'a str,
    pub created_at_micros: i64,
    pub created_by: &'a str,
}

/// What [`insert`] does when the name is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnNameTaken {
    /// Write nothing and answer `false`.
    Skip,
    /// Fail with the database's unique violation.
    Fail,
}

/// A tenant API key that is not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveTenantKey {
    pub id: String,
    pub tenant_id: TenantId,
}

fn role_of(row: &AnyRow) -> Result<Role, StoreError> {
    let role: String = row.try_get("role")?;
    Role::parse(&role).map_err(|_| StoreError::corrupt(format!("operator role {role:?}")))
}

fn name_of(row: &AnyRow) -> Result<OperatorName, StoreError> {
    let name: String = row.try_get("name")?;
    OperatorName::parse(&name).map_err(|_| StoreError::corrupt(format!("operator name {name:?}")))
}

fn active_operator(row: &AnyRow) -> Result<ActiveOperator, StoreError> {
    Ok(ActiveOperator {
        id: row.try_get("id")?,
        name: name_of(row)?,
        role: role_of(row)?,
    })
}

/// How many operators exist, revoked ones included.
pub async fn count(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM operators")
        .fetch_one(&mut *conn)
        .await?)
}

/// Writes a new operator; whether it was written (`false` only with [`OnNameTaken::Skip`]
/// and a taken name).
pub async fn insert(
    conn: &mut AnyConnection,
    operator: &NewOperator<'_>,
    on_name_taken: OnNameTaken,
) -> Result<bool, StoreError> {
    let on_conflict = match on_name_taken {
        OnNameTaken::Skip => " ON CONFLICT (name) DO NOTHING",
        OnNameTaken::Fail => "",
    };
    let inserted = sqlx::query(&format!(
        "INSERT INTO operators (id, name, role, token_sha256, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6){on_conflict}"
    ))
    .bind(operator.id)
    .bind(operator.name.as_str())
    .bind(operator.role.as_str())
    .bind(operator.token_sha256)
    .bind(operator.created_at_micros)
    .bind(operator.created_by)
    .execute(&mut *conn)
    .await?;
    Ok(inserted.rows_affected() > 0)
}

/// The id of the operator named `name`, revoked or not.
pub async fn id_by_name(
    conn: &mut AnyConnection,
    name: &OperatorName,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM operators WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Gives the operator a new token hash and role and lifts any revocation (the old token stops
/// working: the row holds one hash).
pub async fn replace_token(
    conn: &mut AnyConnection,
    id: &str,
    token_sha256: &str,
    role: Role,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE operators SET token_sha256 = $1, role = $2, revoked_at = NULL WHERE id = $3",
    )
    .bind(token_sha256)
    .bind(role.as_str())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every operator, oldest first.
pub async fn list(conn: &mut AnyConnection) -> Result<Vec<OperatorRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, name, role, created_at, revoked_at FROM operators ORDER BY created_at",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(OperatorRow {
                id: row.try_get("id")?,
                name: name_of(row)?,
                role: role_of(row)?,
                created_at_micros: row.try_get("created_at")?,
                revoked_at_micros: row.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// Revokes the operator's token at `now_micros`; whether an active operator was revoked.
pub async fn revoke(
    conn: &mut AnyConnection,
    id: &str,
    now_micros: i64,
) -> Result<bool, StoreError> {
    let updated =
        sqlx::query("UPDATE operators SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_micros)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    Ok(updated.rows_affected() > 0)
}

/// The active operator with this id.
pub async fn active_by_id(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<ActiveOperator>, StoreError> {
    let row =
        sqlx::query("SELECT id, name, role FROM operators WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    row.as_ref().map(active_operator).transpose()
}

/// The active operator whose token hashes to `token_sha256`.
pub async fn active_by_token(
    conn: &mut AnyConnection,
    token_sha256: &str,
) -> Result<Option<ActiveOperator>, StoreError> {
    let row = sqlx::query(
        "SELECT id, name, role FROM operators WHERE token_sha256 = $1 AND revoked_at IS NULL",
    )
    .bind(token_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(active_operator).transpose()
}

/// Who created the operator named `name`, and when.
pub async fn origin_by_name(
    conn: &mut AnyConnection,
    name: &str,
) -> Result<Option<OperatorOrigin>, StoreError> {
    let row = sqlx::query("SELECT created_by, created_at FROM operators WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| {
        Ok(OperatorOrigin {
            created_by: row.try_get("created_by")?,
            created_at_micros: row.try_get("created_at")?,
        })
    })
    .transpose()
}

/// The active tenant API key whose token hashes to `token_sha256`.
pub async fn active_tenant_key_by_token(
    conn: &mut AnyConnection,
    token_sha256: &str,
) -> Result<Option<ActiveTenantKey>, StoreError> {
    let row = sqlx::query(
        "SELECT id, tenant_id FROM tenant_keys WHERE token_sha256 = $1 AND revoked_at IS NULL",
    )
    .bind(token_sha256)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let tenant_id: String = row.try_get("tenant_id")?;
    Ok(Some(ActiveTenantKey {
        id: row.try_get("id")?,
        tenant_id: TenantId::parse(&tenant_id)
            .map_err(|_| StoreError::corrupt(format!("tenant key's tenant {tenant_id:?}")))?,
    }))
}
