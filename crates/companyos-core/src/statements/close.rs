//! The month-close job: a tenant's month becomes final once every one of its days is closed
//! (the day-close watermark has passed its last day). The final statement is stored with its
//! SHA-256 and never changed, audited as `statement.finalize`, and announced as
//! `statement.final` through the outbox (the tenant's webhook, HMAC-signed).

use companyos_domain::statement::{StatementMonth, StatementStatus};
use companyos_domain::time_util::{day_from_number, from_micros, utc_day};
use serde_json::json;
use sqlx::Row as _;

use super::{StatementDocument, Statements, final_months};
use crate::app::Actor;
use crate::authz::Resource;
use crate::error::ServiceError;
use crate::lifecycle::TenantRow;
use companyos_domain::Action;

/// Statements finalised per run of the job (the rest in the next run).
pub const STATEMENT_MONTHS_PER_RUN_MAX: usize = 100;
/// Tenants read per page while the job walks every tenant's watermark.
const TENANTS_PER_PAGE_MAX: i64 = 1000;
/// The job's name (its lease) and the audit actor of what it does.
pub const MONTH_CLOSE_JOB: &str = "month-close";

impl Statements<'_> {
    /// Finalises every month whose days are all closed. Returns the statements finalised.
    /// Tenants are walked in pages by id, so tenants past the first page are reached too.
    pub async fn close_months(&self) -> Result<usize, ServiceError> {
        let app = self.app;
        let mut finalised = 0;
        let mut after = String::new();
        loop {
            let rows = sqlx::query(
                "SELECT w.tenant_id, w.day, (SELECT MAX(s.month) FROM statements s \
                 WHERE s.tenant_id = w.tenant_id) AS last_final FROM usage_days_closed_through w \
                 WHERE w.tenant_id > $1 ORDER BY w.tenant_id LIMIT $2",
            )
            .bind(after.as_str())
            .bind(TENANTS_PER_PAGE_MAX)
            .fetch_all(app.db().readers())
            .await?;
            for row in &rows {
                let tenant_id: String = row.try_get("tenant_id")?;
                let closed_through = day_from_number(row.try_get::<i64, _>("day")?);
                let last_final: Option<String> = row.try_get("last_final")?;
                after.clone_from(&tenant_id);
                // Months are finalised in order: a tenant whose last closed month is final
                // has nothing due (and costs no further query).
                if last_final.is_some_and(|m| m >= last_closed_month(closed_through).label()) {
                    continue;
                }
                let due = self.due_months(&tenant_id, closed_through).await?;
                for month in due {
                    if finalised >= STATEMENT_MONTHS_PER_RUN_MAX {
                        return Ok(finalised);
                    }
                    if self.finalise(&tenant_id, month).await?.is_some() {
                        finalised += 1;
                    }
                }
            }
            if rows.len() < usize::try_from(TENANTS_PER_PAGE_MAX).unwrap_or(usize::MAX) {
                return Ok(finalised);
            }
        }
    }

    /// Months of a tenant, from its creation, whose last day is closed and that are not final.
    async fn due_months(
        &self,
        tenant_id: &str,
        closed_through: time::Date,
    ) -> Result<Vec<StatementMonth>, ServiceError> {
        let mut conn = self.app.db().readers().acquire().await?;
        let Some(tenant) = crate::lifecycle::tenant_named(&mut conn, tenant_id).await? else {
            return Ok(Vec::new());
        };
        let finals = final_months(&mut conn, tenant_id).await?;
        let mut month = StatementMonth::of(utc_day(from_micros(tenant.created_at)));
        let mut due = Vec::new();
        while month.last_day() <= closed_through && due.len() < STATEMENT_MONTHS_PER_RUN_MAX {
            if !finals.contains(&month) {
                due.push(month);
            }
            month = month.next();
        }
        Ok(due)
    }

    /// Computes, stores and announces the final statement of one month; `None` when another
    /// node finalised it first (the stored one stands).
    pub async fn finalise(
        &self,
        tenant_id: &str,
        month: StatementMonth,
    ) -> Result<Option<StatementDocument>, ServiceError> {
        let app = self.app;
        let actor = Actor::system(MONTH_CLOSE_JOB);
        let mut conn = app.db().readers().acquire().await?;
        let Some(tenant) = crate::lifecycle::tenant_named(&mut conn, tenant_id).await? else {
            return Ok(None);
        };
        let statement = self
            .compute(&mut conn, &tenant, month, StatementStatus::Final)
            .await?;
        drop(conn);
        let document = StatementDocument::of(statement);
        let mut entry = app
            .entry(&actor, "statement.finalize", &tenant.target())
            .tenant(tenant.id.as_str())
            .details(json!({
                "month": month.label(),
                "sha256": document.sha256,
                "total": document.statement.total.to_string(),
                "currency": document.statement.currency,
            }));
        let mut tx = app.db().begin().await?;
        let result = async {
            let attributes = app.attributes_of(&tenant);
            app.require(
                &actor,
                Action::StatementCreate,
                Resource::Tenant(&attributes),
                &[],
                &mut entry,
            )?;
            let inserted = sqlx::query(
                "INSERT INTO statements (tenant_id, month, sha256, document, finalized_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, month) DO NOTHING",
            )
            .bind(tenant.id.as_str())
            .bind(month.label())
            .bind(document.sha256.as_str())
            .bind(document.canonical.as_str())
            .bind(app.now_micros())
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Ok(false);
            }
            announce(app, &mut tx, &tenant, &document).await?;
            Ok(true)
        }
        .await;
        match result {
            Ok(false) => Ok(None),
            other => app.finish(tx, entry, other).await.map(|_| Some(document)),
        }
    }
}

/// The last month all of whose days are closed when days are closed through `closed_through`.
fn last_closed_month(closed_through: time::Date) -> StatementMonth {
    let month = StatementMonth::of(closed_through);
    if month.last_day() == closed_through {
        month
    } else {
        month.previous()
    }
}

/// Queues `statement.final` for the tenant's webhook, when it has one.
async fn announce(
    app: &crate::App,
    tx: &mut crate::db::Tx,
    tenant: &TenantRow,
    document: &StatementDocument,
) -> Result<(), ServiceError> {
    let Some(url) = &tenant.audit_webhook_url else {
        return Ok(());
    };
    crate::jobs::outbox::enqueue(
        tx,
        app.now(),
        "statement.final",
        Some(tenant.id.as_str()),
        url,
        json!({
            "type": "statement.final",
            "tenant_id": tenant.id,
            "month": document.statement.month.label(),
            "sha256": document.sha256,
            "currency": document.statement.currency,
            "total": document.statement.total.to_string(),
        }),
    )
    .await?;
    Ok(())
}
