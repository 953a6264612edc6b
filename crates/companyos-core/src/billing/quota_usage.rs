//! Quota state kept inside the ingestion group commit (BILL-2): each group adds its stored
//! events (accepted and late, by their timestamp's UTC day and month) to one row per (tenant,
//! metric, period) that a quota covers (a version of the tenant's plan in force on a day of the
//! period has a quota on that metric and period; `quota_seed` fills a row when a plan change
//! starts covering it), read and written once per group, never per event; and every threshold
//! the group's usage crosses becomes one quota event (insert-if-absent on a unique key, so
//! exactly once across nodes and restarts), an audit record and an outbox webhook.

use std::collections::{BTreeMap, HashMap};

use companyos_domain::catalog::{
    PeriodBounds, PlanAssignment, QuotaPeriod, assignment_intervals, assignment_on,
};
use companyos_domain::time_util::{day_from_number, day_start, format_day, format_rfc3339};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::Row as _;
use time::OffsetDateTime;

use super::catalog_store;
use super::history_cache::History;
use crate::app::App;
use crate::audit::NewAudit;
use crate::authz::Principal;
use crate::db::{Placeholders, StoreError, Tx, list_placeholders, values_placeholders};
use crate::error::ServiceError;
use crate::util::new_id;

/// Tenants per lookup statement.
const TENANTS_PER_LOOKUP: usize = 256;
/// Rows per upsert statement (7 parameters each).
const ROWS_PER_UPSERT: usize = 1024;

/// A group's added usage of one metric by one tenant on one UTC day (day number).
#[derive(Debug, Clone)]
pub(crate) struct GroupUsage<'a> {
    pub tenant_id: &'a str,
    pub metric: &'a str,
    pub day: i64,
    pub quantity: Decimal,
}

/// (tenant, metric, period, period start day "YYYY-MM-DD").
type UsageKey<'a> = (&'a str, &'a str, QuotaPeriod, String);

/// A quota row's change in this group.
#[derive(Debug, Clone)]
struct UsageChange {
    bounds: PeriodBounds,
    /// The latest day of the group's events in the period: its plan decides the thresholds.
    last_day: i64,
    added: Decimal,
    before: Decimal,
}

fn period_bounds(period: QuotaPeriod, day: i64) -> PeriodBounds {
    period.bounds(day_start(day_from_number(day)))
}

/// Sums the group's usage into one change per (tenant, metric, period).
fn changes<'a>(usage: &[GroupUsage<'a>]) -> BTreeMap<UsageKey<'a>, UsageChange> {
    let mut changes: BTreeMap<UsageKey<'a>, UsageChange> = BTreeMap::new();
    for item in usage.iter().filter(|u| !u.quantity.is_zero()) {
        for period in [QuotaPeriod::Day, QuotaPeriod::Month] {
            let bounds = period_bounds(period, item.day);
            let key = (
                item.tenant_id,
                item.metric,
                period,
                format_day(bounds.start),
            );
            let change = changes.entry(key).or_insert(UsageChange {
                bounds,
                last_day: item.day,
                added: Decimal::ZERO,
                before: Decimal::ZERO,
            });
            change.last_day = change.last_day.max(item.day);
            // Each day's total was already summed exactly by the rollups; a month of them
            // beyond 28 digits is not a real quantity, and saturating keeps the group going.
            change.added = change
                .added
                .checked_add(item.quantity)
                .unwrap_or(Decimal::MAX);
        }
    }
    changes
}

/// The stored quantities of the rows the group changes, into `before`: one joined text value
/// per statement (`Placeholders::joined_rows`; every field is an id, a period, a day or a
/// decimal, none holds `,` or `;`).
async fn load_before(
    tx: &mut Tx,
    changes: &mut BTreeMap<UsageKey<'_>, UsageChange>,
) -> Result<(), StoreError> {
    let mut tenants: Vec<&str> = changes.keys().map(|k| k.0).collect();
    tenants.dedup();
    // Only the periods the group touches: a tenant's rows are its metrics times its days and
    // months, so the filter on the start keeps the read small.
    let mut starts: Vec<&str> = changes.keys().map(|k| k.3.as_str()).collect();
    starts.sort_unstable();
    starts.dedup();
    let mut joined_values: Vec<String> = Vec::new();
    for chunk in tenants.chunks(TENANTS_PER_LOOKUP) {
        let style = Placeholders::of(tx);
        let sql = format!(
            "SELECT {} FROM quota_usage WHERE tenant_id IN ({}) AND period_start IN ({})",
            style.joined_rows(
                "tenant_id || ',' || metric || ',' || period || ',' || period_start || ',' \
                 || quantity"
            ),
            list_placeholders(style, 1, chunk.len()),
            list_placeholders(style, chunk.len() + 1, starts.len())
        );
        let mut query = sqlx::query_scalar::<_, Option<String>>(&sql);
        for tenant in chunk {
            query = query.bind(*tenant);
        }
        for start in &starts {
            query = query.bind(*start);
        }
        joined_values.extend(query.fetch_one(&mut **tx).await?);
    }
    let mut stored: HashMap<StoredKey<'_>, Decimal> = HashMap::new();
    for row in joined_values.iter().flat_map(|joined| joined.split(';')) {
        let (key, quantity) = stored_row(row)?;
        stored.insert(key, quantity);
    }
    // The filter is tenants times starts, so it may return rows of periods the group does not
    // change (a day start that is another tenant's month start): those are not looked up.
    for ((tenant, metric, period, start), change) in changes.iter_mut() {
        if let Some(quantity) = stored.get(&(*tenant, *metric, *period, start.as_str())) {
            change.before = *quantity;
        }
    }
    Ok(())
}

/// A stored quota row's key: (tenant, metric, period, period start day).
type StoredKey<'r> = (&'r str, &'r str, QuotaPeriod, &'r str);

/// One joined quota row, `tenant,metric,period,period_start,quantity`.
fn stored_row(row: &str) -> Result<(StoredKey<'_>, Decimal), StoreError> {
    let corrupt = || StoreError::corrupt(format!("quota usage row {row:?}"));
    let mut fields = row.split(',');
    let (Some(tenant), Some(metric), Some(period), Some(start), Some(quantity), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(corrupt());
    };
    let period = QuotaPeriod::parse_field(period, "period").map_err(|_| corrupt())?;
    let quantity: Decimal = quantity.parse().map_err(|_| corrupt())?;
    Ok(((tenant, metric, period, start), quantity))
}

/// A quota row's new quantity: (tenant, metric, period, period start day, quantity).
pub(super) type QuantityRow<'a> = (&'a str, &'a str, QuotaPeriod, &'a str, Decimal);

/// Sets the quantity of quota rows (in key order), leaving their top-ups as they are.
pub(super) async fn upsert_quantities(
    tx: &mut Tx,
    rows: &[QuantityRow<'_>],
    now_micros: i64,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_UPSERT) {
        let sql = format!(
            "INSERT INTO quota_usage (tenant_id, metric, period, period_start, quantity, top_up, \
             updated_at) VALUES {} ON CONFLICT (tenant_id, metric, period, period_start) \
             DO UPDATE SET quantity = excluded.quantity, updated_at = excluded.updated_at",
            values_placeholders(Placeholders::of(tx), chunk.len(), 7)
        );
        let mut query = sqlx::query(&sql);
        for (tenant, metric, period, start, quantity) in chunk {
            query = query
                .bind(*tenant)
                .bind(*metric)
                .bind(period.as_str())
                .bind(*start)
                .bind(quantity.normalize().to_string())
                .bind("0")
                .bind(now_micros);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

fn after(change: &UsageChange) -> Decimal {
    change
        .before
        .checked_add(change.added)
        .unwrap_or(Decimal::MAX)
}

async fn write_after(
    tx: &mut Tx,
    changes: &BTreeMap<UsageKey<'_>, UsageChange>,
    now_micros: i64,
) -> Result<(), StoreError> {
    let rows: Vec<QuantityRow<'_>> = changes
        .iter()
        .map(|((tenant, metric, period, start), change)| {
            (*tenant, *metric, *period, start.as_str(), after(change))
        })
        .collect();
    upsert_quantities(tx, &rows, now_micros).await
}

/// The plan histories of `tenants` (in `seq` order; empty for a tenant without one), read
/// from the store only for tenants this node has not read since the last plan change anywhere
/// (`HistoryCache`). Runs under the tenants' head locks, which every assignment of a tenant
/// with usage takes too, so the histories read here hold for the whole group.
async fn load_histories(
    tx: &mut Tx,
    tenants: &[&str],
) -> Result<HashMap<String, History>, StoreError> {
    let mut histories: HashMap<String, Vec<PlanAssignment>> = tenants
        .iter()
        .map(|tenant| ((*tenant).to_owned(), Vec::new()))
        .collect();
    for chunk in tenants.chunks(TENANTS_PER_LOOKUP) {
        let sql = format!(
            "SELECT tenant_id, seq, plan, version, effective_from, assigned_at, assigned_by, \
             reason FROM tenant_plan_assignments WHERE tenant_id IN ({}) ORDER BY tenant_id, seq",
            list_placeholders(Placeholders::of(tx), 1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for tenant in chunk {
            query = query.bind(*tenant);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let record = catalog_store::assignment_of(&row)?;
            if let Some(history) = histories.get_mut(record.tenant_id.as_str()) {
                history.push(record.as_assignment());
            }
        }
    }
    Ok(histories
        .into_iter()
        .map(|(tenant, history)| (tenant, History::from(history)))
        .collect())
}

/// The audit webhooks of the tenants that crossed a threshold.
async fn webhooks(
    tx: &mut Tx,
    crossings: &[Crossing<'_>],
) -> Result<HashMap<String, String>, StoreError> {
    let mut tenants: Vec<&str> = crossings.iter().map(|c| c.tenant_id).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut found = HashMap::new();
    for chunk in tenants.chunks(TENANTS_PER_LOOKUP) {
        let sql = format!(
            "SELECT id, audit_webhook_url FROM tenants WHERE id IN ({})",
            list_placeholders(Placeholders::of(tx), 1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for tenant in chunk {
            query = query.bind(*tenant);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let url: Option<String> = row.try_get("audit_webhook_url")?;
            if let Some(url) = url {
                found.insert(row.try_get("id")?, url);
            }
        }
    }
    Ok(found)
}

/// A threshold crossing to record.
#[derive(Debug)]
struct Crossing<'a> {
    tenant_id: &'a str,
    metric: &'a str,
    bounds: PeriodBounds,
    threshold_percent: u32,
    plan: String,
    version: u32,
    usage: Decimal,
    included: Decimal,
    overage: Decimal,
}

impl App {
    /// Adds a group's stored usage to the quota rows and records every threshold it crosses.
    /// Runs inside the group commit's transaction, under its tenants' ledger head locks, so
    /// two nodes never interleave on one tenant's rows, and a plan change (which takes the
    /// same lock to fill the rows it starts covering) runs wholly before or after it. Returns
    /// the audit records to append.
    pub(crate) async fn record_quota_usage(
        &self,
        tx: &mut Tx,
        usage: &[GroupUsage<'_>],
        now: OffsetDateTime,
    ) -> Result<Vec<NewAudit>, ServiceError> {
        if !self.settings().quota_state {
            return Ok(Vec::new());
        }
        let mut changes = changes(usage);
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        // The plan histories are read under the head locks: a plan change that committed
        // before them is seen, one that waits for them sees this group's rollups.
        let mut tenants: Vec<&str> = changes.keys().map(|k| k.0).collect();
        tenants.dedup();
        let histories = self.plan_histories(tx, &tenants).await?;
        self.keep_covered_changes(tx, &mut changes, &histories)
            .await?;
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        load_before(tx, &mut changes).await?;
        write_after(tx, &changes, companyos_domain::time_util::to_micros(now)).await?;
        let crossings = self.crossings(tx, &changes, &histories).await?;
        if crossings.is_empty() {
            return Ok(Vec::new());
        }
        let webhooks = webhooks(tx, &crossings).await?;
        let mut audits = Vec::new();
        for crossing in crossings {
            let webhook = webhooks.get(crossing.tenant_id).map(String::as_str);
            if let Some(entry) = record_crossing(tx, &crossing, webhook, now).await? {
                audits.push(entry);
            }
        }
        Ok(audits)
    }

    /// The plan histories of `tenants`, from this node's memory while the shared revision
    /// read in this transaction is the one they were read at.
    async fn plan_histories(
        &self,
        tx: &mut Tx,
        tenants: &[&str],
    ) -> Result<HashMap<String, History>, StoreError> {
        let revision = catalog_store::history_revision(tx).await?;
        let cache = &self.inner.plan_histories;
        let (mut histories, missing) = cache.lookup(revision, tenants);
        if !missing.is_empty() {
            let loaded = load_histories(tx, &missing).await?;
            cache.keep(revision, &loaded);
            histories.extend(loaded);
        }
        Ok(histories)
    }

    /// Drops the changes of rows no quota covers. Their usage is in the rollups, from which a
    /// plan change that starts covering them fills them (`quota_seed`); nothing reads them
    /// before that, so writing them would cost every group page writes for nothing.
    async fn keep_covered_changes(
        &self,
        tx: &mut Tx,
        changes: &mut BTreeMap<UsageKey<'_>, UsageChange>,
        histories: &HashMap<String, History>,
    ) -> Result<(), StoreError> {
        for (key, change) in std::mem::take(changes) {
            let covered = match histories.get(key.0) {
                Some(history) => self.quota_covers(tx, history, key.1, change.bounds).await?,
                None => false,
            };
            if covered {
                changes.insert(key, change);
            }
        }
        Ok(())
    }

    /// Whether a plan version in force on some day of `bounds` has a quota on `metric` over
    /// that kind of period: the rule for which quota rows are kept.
    async fn quota_covers(
        &self,
        conn: &mut sqlx::AnyConnection,
        assignments: &[PlanAssignment],
        metric: &str,
        bounds: PeriodBounds,
    ) -> Result<bool, StoreError> {
        for (assignment, _, _) in assignment_intervals(assignments, bounds.start, bounds.end) {
            let version = self
                .plan_version_cached(conn, assignment.plan.as_str(), assignment.version)
                .await?;
            if version.is_some_and(|v| {
                v.spec
                    .quotas
                    .iter()
                    .any(|q| q.metric.as_str() == metric && q.period == bounds.period)
            }) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The thresholds the group's changes cross, each under the quota of the plan version in
    /// force on the latest day of the group's events in its period.
    async fn crossings<'a>(
        &self,
        tx: &mut Tx,
        changes: &'a BTreeMap<UsageKey<'a>, UsageChange>,
        histories: &HashMap<String, History>,
    ) -> Result<Vec<Crossing<'a>>, StoreError> {
        let mut crossings = Vec::new();
        for ((tenant_id, metric, period, _), change) in changes {
            let Some(history) = histories.get(*tenant_id) else {
                continue;
            };
            let day = day_from_number(change.last_day);
            let Some(assignment) = assignment_on(history, day) else {
                continue;
            };
            let Some(version) = self
                .plan_version_cached(tx, assignment.plan.as_str(), assignment.version)
                .await?
            else {
                continue;
            };
            let Some(quota) = version
                .spec
                .quotas
                .iter()
                .find(|q| q.metric.as_str() == *metric && q.period == *period)
            else {
                continue;
            };
            let after = after(change);
            for threshold_percent in quota.thresholds_crossed(change.before, after) {
                crossings.push(Crossing {
                    tenant_id,
                    metric,
                    bounds: change.bounds,
                    threshold_percent,
                    plan: assignment.plan.as_str().to_owned(),
                    version: assignment.version,
                    usage: after,
                    included: quota.included,
                    overage: quota.overage(after),
                });
            }
        }
        Ok(crossings)
    }
}

/// Inserts the quota event unless one exists for its (tenant, metric, period, threshold); when
/// this call wrote it, queues its webhook and returns its audit record.
async fn record_crossing(
    tx: &mut Tx,
    crossing: &Crossing<'_>,
    webhook: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<NewAudit>, StoreError> {
    let id = new_id("qev", now);
    let start = format_day(crossing.bounds.start);
    let written = sqlx::query(
        "INSERT INTO quota_events (id, tenant_id, metric, period, period_start, \
         threshold_percent, plan, version, quantity, included, overage, occurred_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (tenant_id, metric, period, period_start, threshold_percent) DO NOTHING",
    )
    .bind(id.as_str())
    .bind(crossing.tenant_id)
    .bind(crossing.metric)
    .bind(crossing.bounds.period.as_str())
    .bind(start.as_str())
    .bind(i64::from(crossing.threshold_percent))
    .bind(crossing.plan.as_str())
    .bind(i64::from(crossing.version))
    .bind(crossing.usage.normalize().to_string())
    .bind(crossing.included.normalize().to_string())
    .bind(crossing.overage.normalize().to_string())
    .bind(companyos_domain::time_util::to_micros(now))
    .execute(&mut **tx)
    .await?;
    if written.rows_affected() != 1 {
        return Ok(None);
    }
    let payload = json!({
        "id": id,
        "tenant_id": crossing.tenant_id,
        "metric": crossing.metric,
        "period": crossing.bounds.label(),
        "period_kind": crossing.bounds.period.as_str(),
        "period_start": start,
        "period_end": format_day(crossing.bounds.end),
        "threshold_percent": crossing.threshold_percent,
        "usage": crossing.usage.normalize().to_string(),
        "included": crossing.included.normalize().to_string(),
        "overage": crossing.overage.normalize().to_string(),
        "plan": crossing.plan,
        "version": crossing.version,
        "occurred_at": format_rfc3339(now),
    });
    if let Some(url) = webhook {
        crate::jobs::outbox::enqueue(
            tx,
            now,
            "quota.threshold",
            Some(crossing.tenant_id),
            url,
            payload.clone(),
        )
        .await?;
    }
    let entry = NewAudit::new(
        &Principal::System {
            job: "quota".to_owned(),
        },
        None,
        "quota.threshold",
        &format!("tenant:{}", crossing.tenant_id),
    )
    .tenant(crossing.tenant_id)
    .details(payload);
    Ok(Some(entry))
}
