//! Monthly statements (BILL-3, CONTRACT §10, ADR 0012): a tenant's months, open or final, their
//! computation from the counted events and the plan versions in force, final statements stored
//! byte for byte with their SHA-256, and the month-close job. Reached through
//! [`App::statements`].

mod close;
mod compute;
mod disclosure;
pub mod events;
mod pack;
mod render;
pub mod verify;

use companyos_domain::Action;
use companyos_domain::TenantId;
use companyos_domain::statement::{Statement, StatementMonth, StatementStatus};
use sqlx::{AnyConnection, Row as _};

use crate::app::{Actor, App};
use crate::db::StoreError;
use crate::error::ServiceError;
use crate::lifecycle::TenantRow;

pub use close::{MONTH_CLOSE_JOB, STATEMENT_MONTHS_PER_RUN_MAX};
pub use pack::{PACK_AUDIT_RECORDS_MAX, PACK_EVENTS_MAX};
pub use render::{statement_csv, statement_pdf};

/// Months looked back for final months whose usage changed (adjustments).
pub const ADJUSTMENT_LOOKBACK_MONTHS: u32 = 12;
/// Months a statement list covers at most (the newest ones).
pub const STATEMENT_LIST_MONTHS_MAX: usize = 120;

/// The statements capability of an [`App`].
#[derive(Debug, Clone, Copy)]
pub struct Statements<'a> {
    app: &'a App,
}

impl App {
    /// Monthly statements and their month-close job.
    pub fn statements(&self) -> Statements<'_> {
        Statements { app: self }
    }
}

/// One month of a tenant's statement list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementSummary {
    pub month: StatementMonth,
    pub status: StatementStatus,
}

/// A statement with its exact bytes: the stored ones for a final statement.
#[derive(Debug, Clone)]
pub struct StatementDocument {
    pub statement: Statement,
    /// The canonical JSON (RFC 8785): what is served and hashed.
    pub canonical: String,
    /// Lower-case hex SHA-256 of `canonical`.
    pub sha256: String,
}

impl StatementDocument {
    pub(crate) fn of(statement: Statement) -> Self {
        let canonical = statement.canonical_json();
        let sha256 = companyos_ledger::hash::sha256(canonical.as_bytes()).to_hex();
        Self {
            statement,
            canonical,
            sha256,
        }
    }
}

impl Statements<'_> {
    /// The months of a tenant from its creation month to this month, newest first.
    pub async fn list(
        &self,
        actor: &Actor,
        tenant_id: &TenantId,
    ) -> Result<Vec<StatementSummary>, ServiceError> {
        let app = self.app;
        let mut conn = app.db().readers().acquire().await?;
        let tenant = app
            .readable_tenant(&mut conn, actor, tenant_id.as_str(), Action::StatementRead)
            .await?;
        let finals = final_months(&mut conn, tenant_id.as_str()).await?;
        let first = creation_month(&tenant);
        let mut month = StatementMonth::of(companyos_domain::time_util::utc_day(app.now()));
        let mut list = Vec::new();
        while month >= first && list.len() < STATEMENT_LIST_MONTHS_MAX {
            let status = if finals.contains(&month) {
                StatementStatus::Final
            } else {
                StatementStatus::Open
            };
            list.push(StatementSummary { month, status });
            month = month.previous();
        }
        Ok(list)
    }

    /// The statement of one month: the stored bytes once final, else computed now.
    pub async fn get(
        &self,
        actor: &Actor,
        tenant_id: &TenantId,
        month: StatementMonth,
    ) -> Result<StatementDocument, ServiceError> {
        let app = self.app;
        let mut conn = app.db().readers().acquire().await?;
        let tenant = app
            .readable_tenant(&mut conn, actor, tenant_id.as_str(), Action::StatementRead)
            .await?;
        self.document(&mut conn, &tenant, month).await
    }

    /// The document of a readable tenant's month (authorized by the caller).
    pub(crate) async fn document(
        &self,
        conn: &mut AnyConnection,
        tenant: &TenantRow,
        month: StatementMonth,
    ) -> Result<StatementDocument, ServiceError> {
        let today = StatementMonth::of(companyos_domain::time_util::utc_day(self.app.now()));
        if month < creation_month(tenant) || month > today {
            return Err(ServiceError::NotFound(format!(
                "statement {month} of tenant {}",
                tenant.id
            )));
        }
        if let Some(stored) = stored_final(conn, tenant.id.as_str(), month).await? {
            return Ok(stored);
        }
        let statement = self
            .compute(conn, tenant, month, StatementStatus::Open)
            .await?;
        Ok(StatementDocument::of(statement))
    }
}

fn creation_month(tenant: &TenantRow) -> StatementMonth {
    StatementMonth::of(companyos_domain::time_util::utc_day(
        companyos_domain::time_util::from_micros(tenant.created_at),
    ))
}

/// The months of a tenant whose statement is final.
pub(crate) async fn final_months(
    conn: &mut AnyConnection,
    tenant_id: &str,
) -> Result<Vec<StatementMonth>, StoreError> {
    let months: Vec<String> =
        sqlx::query_scalar("SELECT month FROM statements WHERE tenant_id = $1 ORDER BY month")
            .bind(tenant_id)
            .fetch_all(&mut *conn)
            .await?;
    months
        .iter()
        .map(|m| StatementMonth::parse(m).map_err(|_| StoreError::corrupt("statement month")))
        .collect()
}

/// A final statement as stored, checked against its recorded SHA-256.
pub(crate) async fn stored_final(
    conn: &mut AnyConnection,
    tenant_id: &str,
    month: StatementMonth,
) -> Result<Option<StatementDocument>, StoreError> {
    let row =
        sqlx::query("SELECT document, sha256 FROM statements WHERE tenant_id = $1 AND month = $2")
            .bind(tenant_id)
            .bind(month.label())
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let canonical: String = row.try_get("document")?;
    let sha256: String = row.try_get("sha256")?;
    if companyos_ledger::hash::sha256(canonical.as_bytes()).to_hex() != sha256 {
        return Err(StoreError::corrupt(format!(
            "final statement {month} of {tenant_id} does not match its SHA-256"
        )));
    }
    let statement: Statement = serde_json::from_str(&canonical)
        .map_err(|e| StoreError::corrupt(format!("final statement does not parse: {e}")))?;
    Ok(Some(StatementDocument {
        statement,
        canonical,
        sha256,
    }))
}
