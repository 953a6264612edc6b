//! Reading quota state (BILL-2): a tenant's entitlements (features and the current period of
//! each quota: usage, remaining, overage, access), its quota events, an operator's one-off
//! top-up of the current period, and forward auth by feature and metric.

use companyos_domain::Action;
use std::collections::BTreeSet;

use companyos_domain::catalog::{
    Enforcement, FeatureName, PeriodBounds, PlanVersion, QuotaPeriod, QuotaSpec, assignment_on,
};
use companyos_domain::time_util::{format_day, from_micros, parse_day, utc_day};
use companyos_domain::{PlanName, TenantId};
use rust_decimal::Decimal;
use sqlx::{AnyConnection, Row as _};
use time::OffsetDateTime;

use super::Billing;
use super::catalog_store;
use crate::app::App;
use crate::db::StoreError;
use crate::error::ServiceError;

/// Quota events returned by one read at most.
pub const QUOTA_EVENTS_READ_MAX: i64 = 10_000;

/// One quota of the plan in force, over its current period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaState {
    pub quota: QuotaSpec,
    pub bounds: PeriodBounds,
    /// Accepted and late events of the period, by their timestamp.
    pub usage: Decimal,
    /// Operators' one-off top-ups of this period (hard quotas).
    pub top_up: Decimal,
}

impl QuotaState {
    /// What the period allows: included plus top-ups.
    pub fn allowance(&self) -> Decimal {
        self.quota.included + self.top_up
    }

    pub fn remaining(&self) -> Decimal {
        (self.allowance() - self.usage).max(Decimal::ZERO)
    }

    pub fn overage(&self) -> Decimal {
        (self.usage - self.allowance()).max(Decimal::ZERO)
    }

    /// Usage as a percentage of the allowance, two decimals (100 when nothing is allowed and
    /// something was used).
    pub fn percent_used(&self) -> Decimal {
        let allowance = self.allowance();
        if allowance.is_zero() {
            return if self.usage.is_zero() {
                Decimal::ZERO
            } else {
                Decimal::ONE_HUNDRED
            };
        }
        (self.usage * Decimal::ONE_HUNDRED / allowance).round_dp(2)
    }

    /// Usage above the allowance (what `X-Quota-Exceeded` reports for a soft quota).
    pub fn is_over(&self) -> bool {
        self.usage > self.allowance()
    }

    /// False only for a used-up hard quota.
    pub fn has_access(&self) -> bool {
        !(self.quota.enforcement == Enforcement::Hard
            && self.quota.is_used_up(self.usage, self.top_up))
    }
}

/// A tenant's entitlements: the plan version in force, its features (and the catalog's other
/// features, without access), and its quotas over their current periods.
#[derive(Debug, Clone)]
pub struct Entitlements {
    pub tenant_id: TenantId,
    pub plan: PlanName,
    pub version: u32,
    pub features: Vec<(FeatureName, bool)>,
    pub quotas: Vec<QuotaState>,
}

/// A stored quota event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaEvent {
    pub id: String,
    pub tenant_id: String,
    pub metric: String,
    pub bounds: PeriodBounds,
    pub threshold_percent: u32,
    pub plan: String,
    pub version: u32,
    pub usage: Decimal,
    pub included: Decimal,
    pub overage: Decimal,
    pub occurred_at: OffsetDateTime,
}

fn decimal(text: &str, what: &str) -> Result<Decimal, StoreError> {
    text.parse()
        .map_err(|_| StoreError::corrupt(format!("{what} {text:?}")))
}

/// The stored usage and top-up of each quota over the period that holds `now`.
pub(super) async fn quota_states(
    conn: &mut AnyConnection,
    tenant_id: &str,
    quotas: &[QuotaSpec],
    now: OffsetDateTime,
) -> Result<Vec<QuotaState>, StoreError> {
    if quotas.is_empty() {
        return Ok(Vec::new());
    }
    let today = utc_day(now);
    let day = format_day(today);
    let month = format_day(today.replace_day(1).unwrap_or(today));
    let rows = sqlx::query(
        "SELECT metric, period, period_start, quantity, top_up FROM quota_usage \
         WHERE tenant_id = $1 AND period_start IN ($2, $3)",
    )
    .bind(tenant_id)
    .bind(day.as_str())
    .bind(month.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let mut states = Vec::with_capacity(quotas.len());
    for quota in quotas {
        let bounds = quota.period.bounds(now);
        let start = format_day(bounds.start);
        let mut state = QuotaState {
            quota: quota.clone(),
            bounds,
            usage: Decimal::ZERO,
            top_up: Decimal::ZERO,
        };
        for row in &rows {
            let metric: String = row.try_get("metric")?;
            let period: String = row.try_get("period")?;
            let period_start: String = row.try_get("period_start")?;
            if metric == quota.metric.as_str()
                && period == quota.period.as_str()
                && period_start == start
            {
                state.usage = decimal(&row.try_get::<String, _>("quantity")?, "quota usage")?;
                state.top_up = decimal(&row.try_get::<String, _>("top_up")?, "quota top-up")?;
            }
        }
        states.push(state);
    }
    Ok(states)
}

fn event_of(row: &sqlx::any::AnyRow) -> Result<QuotaEvent, StoreError> {
    let period: String = row.try_get("period")?;
    let period = QuotaPeriod::parse_field(&period, "period")
        .map_err(|_| StoreError::corrupt(format!("quota event period {period:?}")))?;
    let start: String = row.try_get("period_start")?;
    let start = parse_day(&start, "period_start")
        .map_err(|_| StoreError::corrupt("quota event period start"))?;
    let bounds = period.bounds(companyos_domain::time_util::day_start(start));
    let to_u32 =
        |value: i64| u32::try_from(value).map_err(|_| StoreError::corrupt("quota event number"));
    Ok(QuotaEvent {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        metric: row.try_get("metric")?,
        bounds,
        threshold_percent: to_u32(row.try_get("threshold_percent")?)?,
        plan: row.try_get("plan")?,
        version: to_u32(row.try_get("version")?)?,
        usage: decimal(&row.try_get::<String, _>("quantity")?, "quota event usage")?,
        included: decimal(
            &row.try_get::<String, _>("included")?,
            "quota event included",
        )?,
        overage: decimal(&row.try_get::<String, _>("overage")?, "quota event overage")?,
        occurred_at: from_micros(row.try_get("occurred_at")?),
    })
}

/// A tenant's quota events whose period lies in `[from, to)` (by period start), oldest first.
pub(super) async fn stored_quota_events(
    conn: &mut AnyConnection,
    tenant_id: &str,
    from: time::Date,
    to_exclusive: time::Date,
) -> Result<Vec<QuotaEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, metric, period, period_start, threshold_percent, plan, version, \
         quantity, included, overage, occurred_at FROM quota_events \
         WHERE tenant_id = $1 AND period_start >= $2 AND period_start < $3 \
         ORDER BY occurred_at, id LIMIT $4",
    )
    .bind(tenant_id)
    .bind(format_day(from))
    .bind(format_day(to_exclusive))
    .bind(QUOTA_EVENTS_READ_MAX)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(event_of).collect()
}

impl App {
    /// The plan version in force for a tenant today, from its history.
    pub(super) async fn version_in_force(
        &self,
        conn: &mut AnyConnection,
        tenant_id: &str,
    ) -> Result<Option<std::sync::Arc<PlanVersion>>, StoreError> {
        let history = catalog_store::assignments(conn, tenant_id).await?;
        let plain: Vec<_> = history.iter().map(|a| a.as_assignment()).collect();
        let Some(current) = assignment_on(&plain, utc_day(self.now())) else {
            return Ok(None);
        };
        self.plan_version_cached(conn, current.plan.as_str(), current.version)
            .await
    }
}

impl Billing<'_> {
    /// A tenant's entitlements (`GET /v1/tenants/{id}/entitlements`): operators who may read
    /// the tenant, and the tenant's own key. One call the console can render.
    pub async fn entitlements(
        &self,
        actor: &crate::app::Actor,
        tenant_id: &TenantId,
    ) -> Result<Entitlements, ServiceError> {
        let app = self.app;
        let mut conn = app.db().readers().acquire().await?;
        app.readable_tenant(&mut conn, actor, tenant_id.as_str(), Action::TenantRead)
            .await?;
        let version = app
            .version_in_force(&mut conn, tenant_id.as_str())
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("a plan of tenant {tenant_id}")))?;
        let mut known: BTreeSet<FeatureName> = BTreeSet::new();
        for stored in catalog_store::latest_versions(&mut conn).await? {
            known.extend(stored.version.spec.features.iter().cloned());
        }
        known.extend(version.spec.features.iter().cloned());
        let features = known
            .into_iter()
            .map(|f| {
                let has = version.spec.has_feature(&f);
                (f, has)
            })
            .collect();
        let quotas = quota_states(
            &mut conn,
            tenant_id.as_str(),
            &version.spec.quotas,
            app.now(),
        )
        .await?;
        for state in &quotas {
            app.metrics().set_quota_ratio(tenant_id.as_str(), state);
        }
        Ok(Entitlements {
            tenant_id: tenant_id.clone(),
            plan: version.plan.clone(),
            version: version.version,
            features,
            quotas,
        })
    }

    /// A tenant's quota events, optionally of one period: `YYYY-MM` (the month's events and
    /// its days') or `YYYY-MM-DD` (that day's).
    pub async fn quota_events(
        &self,
        actor: &crate::app::Actor,
        tenant_id: &TenantId,
        period: Option<&str>,
    ) -> Result<Vec<QuotaEvent>, ServiceError> {
        let app = self.app;
        let (from, to) = match period {
            None => (time::Date::MIN, time::Date::MAX),
            Some(text) => period_range(text)?,
        };
        let mut conn = app.db().readers().acquire().await?;
        app.readable_tenant(&mut conn, actor, tenant_id.as_str(), Action::TenantRead)
            .await?;
        Ok(stored_quota_events(&mut conn, tenant_id.as_str(), from, to).await?)
    }

    /// The quota events of one period label (`YYYY-MM` or `YYYY-MM-DD`), for the service
    /// layer (statements); callers authorize.
    pub async fn quota_events_of_period(
        &self,
        tenant_id: &TenantId,
        period: &str,
    ) -> Result<Vec<QuotaEvent>, ServiceError> {
        let (from, to) = period_range(period)?;
        let mut conn = self.app.db().readers().acquire().await?;
        Ok(stored_quota_events(&mut conn, tenant_id.as_str(), from, to).await?)
    }
}

/// The days `[from, to)` of a period label.
fn period_range(text: &str) -> Result<(time::Date, time::Date), ServiceError> {
    let bad = || ServiceError::invalid("period", "must be YYYY-MM or YYYY-MM-DD");
    match text.len() {
        7 => {
            let first = parse_day(&format!("{text}-01"), "period").map_err(|_| bad())?;
            Ok((first, companyos_domain::catalog::first_of_next_month(first)))
        }
        10 => {
            let day = parse_day(text, "period").map_err(|_| bad())?;
            Ok((day, day.next_day().unwrap_or(day)))
        }
        _ => Err(bad()),
    }
}
