//! Quota rows filled when a plan version starts covering them: the group commit keeps a
//! (metric, period) row only while a quota covers it (`quota_usage`), so when an assignment
//! brings a quota into force, the usage the tenant stored before in the periods it now covers
//! is summed from the exact daily rollups (on-time and late) and written to its rows, in the
//! assignment's transaction; the quota answers (forward auth, entitlements, thresholds) stay
//! exact.

use std::collections::{BTreeMap, BTreeSet};

use companyos_domain::catalog::{PlanVersion, QuotaPeriod};
use companyos_domain::time_util::{day_from_number, day_number, day_start, format_day, to_micros};
use rust_decimal::Decimal;
use sqlx::Row as _;
use time::{Date, OffsetDateTime};

use super::quota_usage::{QuantityRow, upsert_quantities};
use crate::app::App;
use crate::db::{Placeholders, StoreError, Tx, list_placeholders};
use crate::ledger_store;
use companyos_domain::{LogId, TenantId};

/// A tenant's stored usage of one metric on one UTC day (day number), on time and late.
type DailyUsage = BTreeMap<(String, i64), Decimal>;

/// Sums the rollup rows (every service and unit, on time and late) of `metrics` from day
/// `from` on.
async fn daily_usage(
    tx: &mut Tx,
    tenant_id: &str,
    metrics: &BTreeSet<&str>,
    from: Date,
) -> Result<DailyUsage, StoreError> {
    let mut usage = DailyUsage::new();
    for table in ["usage_daily", "usage_late"] {
        // Every parameter in the engine's own style: on SQLite, `$n` beside the bare `?` of a
        // generated list binds nothing.
        let style = Placeholders::of(tx);
        let sql = format!(
            "SELECT metric, day, quantity_sum FROM {table} \
             WHERE tenant_id = {} AND day >= {} AND metric IN ({})",
            list_placeholders(style, 1, 1),
            list_placeholders(style, 2, 1),
            list_placeholders(style, 3, metrics.len())
        );
        let mut query = sqlx::query(&sql).bind(tenant_id).bind(day_number(from));
        for metric in metrics {
            query = query.bind(*metric);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let sum: String = row.try_get("quantity_sum")?;
            let sum: Decimal = sum
                .parse()
                .map_err(|_| StoreError::corrupt(format!("rollup quantity_sum {sum:?}")))?;
            let total = usage
                .entry((row.try_get("metric")?, row.try_get("day")?))
                .or_default();
            // Saturating as the group commit does: a period beyond 28 digits is not a real
            // quantity.
            *total = total.checked_add(sum).unwrap_or(Decimal::MAX);
        }
    }
    Ok(usage)
}

impl App {
    /// Writes the quota rows of `version`'s quotas over every period that holds a day from
    /// `effective_from` on (the days the new assignment is in force), recomputed from the
    /// rollups. Rows a quota covered already are rewritten with the same quantity; top-ups are
    /// kept. Takes the tenant's usage ledger head lock first, as the group commit does, so no
    /// group of the tenant commits between the rollups read here and the assignment.
    pub(super) async fn seed_quota_usage(
        &self,
        tx: &mut Tx,
        tenant_id: &str,
        version: &PlanVersion,
        effective_from: Date,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let quotas: BTreeSet<(&str, QuotaPeriod)> = version
            .spec
            .quotas
            .iter()
            .map(|q| (q.metric.as_str(), q.period))
            .collect();
        if !self.settings().quota_state || quotas.is_empty() {
            return Ok(());
        }
        let log_id = TenantId::parse(tenant_id)
            .map(LogId::Usage)
            .map_err(|e| StoreError::corrupt(format!("tenant id {tenant_id:?}: {}", e.message)))?;
        ledger_store::lock_head(self.db(), tx, &log_id).await?;
        let first_of_month = effective_from.replace_day(1).unwrap_or(effective_from);
        let metrics: BTreeSet<&str> = quotas.iter().map(|(metric, _)| *metric).collect();
        let usage = daily_usage(tx, tenant_id, &metrics, first_of_month).await?;
        let mut totals: BTreeMap<(&str, QuotaPeriod, String), Decimal> = BTreeMap::new();
        for ((metric, day), quantity) in &usage {
            for (_, period) in quotas.iter().filter(|(m, _)| m == metric) {
                let bounds = period.bounds(day_start(day_from_number(*day)));
                if bounds.end <= effective_from {
                    // A day before the assignment: not a period it covers.
                    continue;
                }
                let total = totals
                    .entry((metric.as_str(), *period, format_day(bounds.start)))
                    .or_default();
                *total = total.checked_add(*quantity).unwrap_or(Decimal::MAX);
            }
        }
        let rows: Vec<QuantityRow<'_>> = totals
            .iter()
            .map(|((metric, period, start), quantity)| {
                (tenant_id, *metric, *period, start.as_str(), *quantity)
            })
            .collect();
        upsert_quantities(tx, &rows, to_micros(now)).await
    }
}
