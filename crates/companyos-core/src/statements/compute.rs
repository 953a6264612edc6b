//! Computing one month's statement from the store: the plan versions in force (billing), the
//! counted events of the month and of the final months before it (adjustments), the ingestion
//! counts, the ledger range and its signed checkpoint, the policies and quota events.

use std::collections::BTreeMap;

use companyos_domain::TenantId;
use companyos_domain::statement::{
    ComputedAdjustment, PlanInForce, Statement, StatementCounts, StatementFacts, StatementLedger,
    StatementMonth, StatementPolicy, StatementStatus, adjustments_for, compute_month,
};
use companyos_domain::time_util::{day_number, format_rfc3339, from_micros};
use serde_json::json;
use sqlx::{AnyConnection, Row as _};

use super::events::{CountedEvent, events_by_month};
use super::{ADJUSTMENT_LOOKBACK_MONTHS, Statements, final_months, stored_final};
use crate::db::StoreError;
use crate::error::ServiceError;
use crate::lifecycle::TenantRow;
use companyos_domain::LogId;

/// Quota events listed in one statement at most.
const QUOTA_EVENTS_PER_STATEMENT_MAX: i64 = 1000;

impl Statements<'_> {
    /// Computes the statement of `month` as of now, with the status given.
    pub(crate) async fn compute(
        &self,
        conn: &mut AnyConnection,
        tenant: &TenantRow,
        month: StatementMonth,
        status: StatementStatus,
    ) -> Result<Statement, ServiceError> {
        let app = self.app;
        let tenant_id = tenant.id.clone();
        let log_id = LogId::Usage(tenant.id.clone());
        let origin = app.settings().tenant_origin(tenant.id.as_str());
        // Signed first: the events counted are exactly those the checkpoint covers.
        let checkpoint = app.ledger().sign_checkpoint(&log_id, &origin).await?;
        let tree_size = checkpoint.as_ref().map_or(0, |c| c.tree_size);
        let oldest = (0..ADJUSTMENT_LOOKBACK_MONTHS).fold(month, |m, _| m.previous());
        let mut events = events_by_month(conn, tenant.id.as_str(), tree_size, &|m| {
            m >= oldest && m <= month
        })
        .await?;
        let this_month = events.remove(&month).unwrap_or_default();
        let plans = self.plans_for_month(&tenant_id, month).await?;
        let usage: Vec<_> = this_month.iter().map(|e| e.usage.clone()).collect();
        let money = compute_month(month, &plans, &usage)
            .map_err(|e| ServiceError::Internal(format!("statement {month}: {e}")))?;
        let adjustments = self
            .adjustments(conn, &tenant_id, month, oldest, &events)
            .await?;
        let facts = StatementFacts {
            tenant_id,
            month,
            status,
            counts: counts(conn, tenant.id.as_str(), month).await?,
            ledger: StatementLedger {
                from_seq: this_month.iter().map(|e| e.seq).min(),
                to_seq: this_month.iter().map(|e| e.seq).max(),
                checkpoint: checkpoint.map(|c| c.note).unwrap_or_default(),
            },
            policies: vec![
                StatementPolicy {
                    scope: "global".to_owned(),
                    sha256: app.authorizer().policy_sha256().to_owned(),
                },
                StatementPolicy {
                    scope: "tenant".to_owned(),
                    sha256: tenant.policy_sha256.clone(),
                },
            ],
            quota_events: quota_events(conn, tenant.id.as_str(), month).await?,
            generated_at: format_rfc3339(app.now()),
        };
        Ok(Statement::assemble(facts, &plans, &money, &adjustments))
    }

    /// The plan versions in force in `month` (from the tenant's plan history, `billing`).
    pub(crate) async fn plans_for_month(
        &self,
        tenant_id: &TenantId,
        month: StatementMonth,
    ) -> Result<Vec<PlanInForce>, ServiceError> {
        let in_force = self
            .app
            .billing()
            .plans_in_force(tenant_id, month.first_day(), month.end())
            .await?;
        if in_force.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "a plan of tenant {tenant_id} in {month}"
            )));
        }
        Ok(in_force
            .into_iter()
            .map(|p| PlanInForce {
                version: p.version,
                from: p.from,
                to: p.to,
            })
            .collect())
    }

    /// Changes to final months since they were final, not yet carried by a final statement
    /// between them and `month`.
    async fn adjustments(
        &self,
        conn: &mut AnyConnection,
        tenant_id: &TenantId,
        month: StatementMonth,
        oldest: StatementMonth,
        events: &BTreeMap<StatementMonth, Vec<CountedEvent>>,
    ) -> Result<Vec<ComputedAdjustment>, ServiceError> {
        let finals: Vec<StatementMonth> = final_months(conn, tenant_id.as_str())
            .await?
            .into_iter()
            .filter(|m| *m >= oldest && *m < month)
            .collect();
        let mut stored = BTreeMap::new();
        for final_month in &finals {
            if let Some(document) = stored_final(conn, tenant_id.as_str(), *final_month).await? {
                stored.insert(*final_month, document.statement);
            }
        }
        let carried: Vec<ComputedAdjustment> = stored
            .values()
            .flat_map(|s| s.computed_adjustments())
            .collect();
        let mut adjustments = Vec::new();
        for (for_month, statement) in &stored {
            let plans = self.plans_for_month(tenant_id, *for_month).await?;
            let usage: Vec<_> = events
                .get(for_month)
                .map(|list| list.iter().map(|e| e.usage.clone()).collect())
                .unwrap_or_default();
            let now = compute_month(*for_month, &plans, &usage)
                .map_err(|e| ServiceError::Internal(format!("statement {for_month}: {e}")))?;
            adjustments.extend(adjustments_for(
                *for_month,
                &statement.line_totals(),
                &now,
                &carried,
            ));
        }
        Ok(adjustments)
    }
}

/// Ingestion counts of the month's days, and the events missing from its sources.
async fn counts(
    conn: &mut AnyConnection,
    tenant_id: &str,
    month: StatementMonth,
) -> Result<StatementCounts, ServiceError> {
    let (first, last) = (day_number(month.first_day()), day_number(month.last_day()));
    let row = sqlx::query(
        "SELECT CAST(COALESCE(SUM(accepted), 0) AS BIGINT) AS accepted, CAST(COALESCE(SUM(duplicates), 0) AS BIGINT) AS duplicates, \
         CAST(COALESCE(SUM(late), 0) AS BIGINT) AS late, CAST(COALESCE(SUM(invalid), 0) AS BIGINT) AS invalid, \
         CAST(COALESCE(SUM(conflicts), 0) AS BIGINT) AS conflicts \
         FROM usage_counters WHERE tenant_id = $1 AND day >= $2 AND day <= $3",
    )
    .bind(tenant_id)
    .bind(first)
    .bind(last)
    .fetch_one(&mut *conn)
    .await?;
    let count = |column: &str| -> Result<u64, StoreError> {
        let value: i64 = row.try_get(column)?;
        u64::try_from(value).map_err(|_| StoreError::corrupt(format!("negative {column}")))
    };
    let missing = crate::metering::reports::gaps_of(conn, tenant_id)
        .await?
        .iter()
        .filter(|(day, _)| (first..=last).contains(day))
        .map(|(_, gap)| gap.to_seq - gap.from_seq + 1)
        .sum();
    Ok(StatementCounts {
        accepted: count("accepted")?,
        duplicates: count("duplicates")?,
        late: count("late")?,
        rejected: count("invalid")?,
        conflicts: count("conflicts")?,
        missing,
    })
}

/// The quota events of the month's periods (monthly ones and the days of the month).
async fn quota_events(
    conn: &mut AnyConnection,
    tenant_id: &str,
    month: StatementMonth,
) -> Result<Vec<serde_json::Value>, ServiceError> {
    let rows = sqlx::query(
        "SELECT id, metric, period, period_start, threshold_percent, quantity, included, overage, \
         occurred_at FROM quota_events WHERE tenant_id = $1 AND period_start >= $2 \
         AND period_start < $3 ORDER BY occurred_at, id LIMIT $4",
    )
    .bind(tenant_id)
    .bind(companyos_domain::time_util::format_day(month.first_day()))
    .bind(companyos_domain::time_util::format_day(month.end()))
    .bind(QUOTA_EVENTS_PER_STATEMENT_MAX)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(json!({
                "id": row.try_get::<String, _>("id")?,
                "metric": row.try_get::<String, _>("metric")?,
                "period": row.try_get::<String, _>("period")?,
                "period_start": row.try_get::<String, _>("period_start")?,
                "threshold_percent": row.try_get::<i64, _>("threshold_percent")?,
                "usage": row.try_get::<String, _>("quantity")?,
                "included": row.try_get::<String, _>("included")?,
                "overage": row.try_get::<String, _>("overage")?,
                "occurred_at": format_rfc3339(from_micros(row.try_get::<i64, _>("occurred_at")?)),
            }))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(|e| ServiceError::Store(e.into()))
}
