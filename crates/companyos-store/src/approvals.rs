//! The approvals table as typed rows: a lifecycle action waiting for a second person, and what
//! became of it. The service in `companyos-core` decides; this module only reads and writes the
//! rows, inside the caller's transaction, in the stored shape (JSON texts for the parameters,
//! warnings and result; instants as microseconds since the epoch).

use companyos_domain::{LifecycleAction, TenantId};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row as _};

use crate::db::{Db, StoreError};

/// Upper bound on the approvals one listing reads, newest first.
pub const APPROVALS_LISTED_MAX: i64 = 1000;

const APPROVAL_COLUMNS: &str = "id, action, tenant_id, params, warnings, status, requested_by, \
    requested_by_name, requested_reason, requested_at, expires_at, decided_by, decided_by_name, \
    decided_at, comment, result";

/// Where an approval stands, as stored. A pending approval past its expiry is still stored as
/// `Pending` until the expiry job (or a decision) marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalStatus {
    Pending,
    /// Approved, and its action ran in the same transaction.
    Executed,
    Rejected,
    Expired,
    /// The tenant facts it was requested on changed; it can never be approved.
    Lapsed,
}

impl ApprovalStatus {
    pub const ALL: [ApprovalStatus; 5] = [
        ApprovalStatus::Pending,
        ApprovalStatus::Executed,
        ApprovalStatus::Rejected,
        ApprovalStatus::Expired,
        ApprovalStatus::Lapsed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Executed => "executed",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Expired => "expired",
            ApprovalStatus::Lapsed => "lapsed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// One row of `approvals`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRow {
    pub id: String,
    /// Stored as its Cedar action (`tenant.suspend`, ...).
    pub action: LifecycleAction,
    pub tenant_id: TenantId,
    /// The tenant facts the requester saw (`params.facts`); `None` for an approval stored
    /// before facts were recorded.
    pub facts: Option<Value>,
    pub warnings: Vec<String>,
    pub status: ApprovalStatus,
    /// The requesting operator's id.
    pub requested_by: String,
    pub requested_by_name: String,
    pub requested_reason: Option<String>,
    pub requested_at_micros: i64,
    pub expires_at_micros: i64,
    /// The decider's operator id (or actor name when it is not an operator).
    pub decided_by: Option<String>,
    pub decided_by_name: Option<String>,
    pub decided_at_micros: Option<i64>,
    pub comment: Option<String>,
    pub result: Option<Value>,
}

fn corrupt_json(column: &str, error: serde_json::Error) -> StoreError {
    StoreError::corrupt(format!("approval {column}: {error}"))
}

fn row_to_approval(row: &AnyRow) -> Result<ApprovalRow, StoreError> {
    let action: String = row.try_get("action")?;
    let tenant_id: String = row.try_get("tenant_id")?;
    let status: String = row.try_get("status")?;
    let params: String = row.try_get("params")?;
    let params: Value = serde_json::from_str(&params).map_err(|e| corrupt_json("params", e))?;
    let warnings: String = row.try_get("warnings")?;
    let result: Option<String> = row.try_get("result")?;
    Ok(ApprovalRow {
        id: row.try_get("id")?,
        action: action
            .strip_prefix("tenant.")
            .and_then(LifecycleAction::parse)
            .ok_or_else(|| StoreError::corrupt(format!("approval action {action:?}")))?,
        tenant_id: TenantId::parse(&tenant_id)
            .map_err(|_| StoreError::corrupt(format!("approval tenant {tenant_id:?}")))?,
        facts: params.get("facts").cloned(),
        warnings: serde_json::from_str(&warnings).map_err(|e| corrupt_json("warnings", e))?,
        status: ApprovalStatus::parse(&status)
            .ok_or_else(|| StoreError::corrupt(format!("approval status {status:?}")))?,
        requested_by: row.try_get("requested_by")?,
        requested_by_name: row.try_get("requested_by_name")?,
        requested_reason: row.try_get("requested_reason")?,
        requested_at_micros: row.try_get("requested_at")?,
        expires_at_micros: row.try_get("expires_at")?,
        decided_by: row.try_get("decided_by")?,
        decided_by_name: row.try_get("decided_by_name")?,
        decided_at_micros: row.try_get("decided_at")?,
        comment: row.try_get("comment")?,
        result: result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| corrupt_json("result", e))?,
    })
}

async fn select_one(
    conn: &mut AnyConnection,
    id: &str,
    for_update: &str,
) -> Result<Option<ApprovalRow>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1{for_update}"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(row_to_approval).transpose()
}

/// One approval by id.
pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
    select_one(conn, id, "").await
}

/// One approval by id, its row locked until the transaction ends (on PostgreSQL; SQLite's one
/// writer serialises anyway).
pub async fn lock(
    db: &Db,
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<ApprovalRow>, StoreError> {
    select_one(conn, id, db.for_update()).await
}

/// The newest approvals, up to [`APPROVALS_LISTED_MAX`].
pub async fn list_newest(conn: &mut AnyConnection) -> Result<Vec<ApprovalRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals ORDER BY requested_at DESC LIMIT {APPROVALS_LISTED_MAX}"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(row_to_approval).collect()
}

/// The newest pending approvals not yet expired at `now_micros`, up to
/// [`APPROVALS_LISTED_MAX`].
pub async fn pending_newest(
    conn: &mut AnyConnection,
    now_micros: i64,
) -> Result<Vec<ApprovalRow>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE status = 'pending' \
         AND expires_at > $1 ORDER BY requested_at DESC LIMIT {APPROVALS_LISTED_MAX}"
    ))
    .bind(now_micros)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(row_to_approval).collect()
}

/// The id of a pending approval of `action` on `tenant_id` not yet expired at `now_micros`.
pub async fn pending_id(
    conn: &mut AnyConnection,
    tenant_id: &TenantId,
    action: LifecycleAction,
    now_micros: i64,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM approvals WHERE tenant_id = $1 AND action = $2 AND status = 'pending' \
         AND expires_at > $3",
    )
    .bind(tenant_id.as_str())
    .bind(action.cedar_action().as_str())
    .bind(now_micros)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Ids of pending approvals whose expiry is at or before `now_micros`, up to
/// [`APPROVALS_LISTED_MAX`].
pub async fn due_for_expiry(
    conn: &mut AnyConnection,
    now_micros: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= $1 \
         LIMIT {APPROVALS_LISTED_MAX}"
    ))
    .bind(now_micros)
    .fetch_all(&mut *conn)
    .await?)
}

/// Writes a new approval. Its parameters are stored as `{"facts": ..., "reason": ...}`.
pub async fn insert(conn: &mut AnyConnection, approval: &ApprovalRow) -> Result<(), StoreError> {
    let params = json!({"reason": approval.requested_reason, "facts": approval.facts});
    sqlx::query(&format!(
        "INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
         $9, $10, $11, $12, $13, $14, $15, $16)"
    ))
    .bind(approval.id.as_str())
    .bind(approval.action.cedar_action().as_str())
    .bind(approval.tenant_id.as_str())
    .bind(params.to_string())
    .bind(json!(approval.warnings).to_string())
    .bind(approval.status.as_str())
    .bind(approval.requested_by.as_str())
    .bind(approval.requested_by_name.as_str())
    .bind(approval.requested_reason.as_deref())
    .bind(approval.requested_at_micros)
    .bind(approval.expires_at_micros)
    .bind(approval.decided_by.as_deref())
    .bind(approval.decided_by_name.as_deref())
    .bind(approval.decided_at_micros)
    .bind(approval.comment.as_deref())
    .bind(approval.result.as_ref().map(Value::to_string))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes the approval's status and decision (decider, instant, comment, result) over its
/// stored row.
pub async fn record_decision(
    conn: &mut AnyConnection,
    approval: &ApprovalRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE approvals SET status = $1, decided_by = $2, decided_by_name = $3, \
         decided_at = $4, comment = $5, result = $6 WHERE id = $7",
    )
    .bind(approval.status.as_str())
    .bind(approval.decided_by.as_deref())
    .bind(approval.decided_by_name.as_deref())
    .bind(approval.decided_at_micros)
    .bind(approval.comment.as_deref())
    .bind(approval.result.as_ref().map(Value::to_string))
    .bind(approval.id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks the approval expired if it is pending and its expiry is at or before `now_micros`;
/// whether it did.
pub async fn expire_if_due(
    conn: &mut AnyConnection,
    id: &str,
    now_micros: i64,
) -> Result<bool, StoreError> {
    let updated = sqlx::query(
        "UPDATE approvals SET status = 'expired' WHERE id = $1 AND status = 'pending' \
         AND expires_at <= $2",
    )
    .bind(id)
    .bind(now_micros)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(updated > 0)
}

/// Marks the approval lapsed if it is still pending.
pub async fn lapse(conn: &mut AnyConnection, id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE approvals SET status = 'lapsed' WHERE id = $1 AND status = 'pending'")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
