//! Usage reports (MET-3; CONTRACT §6): daily rollups, the reconciliation report (accepted,
//! duplicates, late, invalid, conflicts, missing from `source_seq` gaps), day close, and the
//! signed integrity report that proves the rollups equal what the ledger holds.

use std::collections::BTreeMap;
use std::str::FromStr as _;

use companyos_domain::metering::{Aggregation, MeteringDeclaration};
use companyos_domain::time_util::{
    day_from_number, day_number, format_day, format_rfc3339, parse_day,
};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::json;
use sqlx::Row as _;
use time::Date;

use crate::app::{Actor, Metering};
use crate::db::StoreError;
use crate::error::ServiceError;
use crate::evidence::{EvidenceRecord, NewArtifact};
use crate::ledger_store;
use companyos_domain::Action;
use companyos_domain::LogId;

pub mod integrity;

pub use integrity::{IntegrityReport, ReconciliationRow, decimal_number};

/// A report covers at most this many days.
pub const REPORT_DAYS_MAX: i64 = 400;
/// The sprint's target: under 1% missing events.
pub const MISSING_RATIO_TARGET: &str = "0.01";

/// One row of `GET /v1/tenants/{id}/usage/daily`: the day's sealed (on-time) usage, and beside
/// it the late usage of the same day (events that arrived after the day closed: adjustments
/// that never change the sealed rollup, but that statements count).
#[derive(Debug, Clone, PartialEq)]
pub struct DailyUsage {
    pub date: String,
    pub service: String,
    pub metric: String,
    pub unit: String,
    pub quantity: Decimal,
    pub events: i64,
    pub late_quantity: Decimal,
    pub late_events: i64,
}

/// One source_seq gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub source: String,
    pub from_seq: u64,
    pub to_seq: u64,
}

/// One row (day) of the reconciliation report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconciliationDay {
    pub date: String,
    pub accepted: i64,
    pub duplicates: i64,
    pub late: i64,
    pub invalid: i64,
    pub conflicts: i64,
    pub missing: i64,
    pub unsigned: i64,
    pub undeclared: i64,
    pub gaps: Vec<Gap>,
    pub closed: bool,
}

impl ReconciliationDay {
    /// A day with nothing counted yet.
    pub fn empty(date: String) -> Self {
        Self {
            date,
            accepted: 0,
            duplicates: 0,
            late: 0,
            invalid: 0,
            conflicts: 0,
            missing: 0,
            unsigned: 0,
            undeclared: 0,
            gaps: Vec::new(),
            closed: false,
        }
    }

    /// missing / (accepted + late + missing), six decimals rounded half away from zero (as SQL
    /// `round` and spreadsheets do, so anyone recomputing it gets the same digits); 0 when
    /// nothing was expected.
    pub fn missing_ratio(&self) -> Decimal {
        let expected = self.accepted + self.late + self.missing;
        if expected == 0 {
            return Decimal::ZERO;
        }
        (Decimal::from(self.missing) / Decimal::from(expected))
            .round_dp_with_strategy(6, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
            .normalize()
    }
}

/// Parses and bounds a `from`/`to` range of days.
pub fn day_range(from: &str, to: &str) -> Result<(Date, Date), ServiceError> {
    let mut c = companyos_domain::error::Collector::new();
    let from = c.take(parse_day(from, "from"));
    let to = c.take(parse_day(to, "to"));
    c.finish()?;
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ServiceError::invalid("from", "is required"));
    };
    if from > to {
        return Err(ServiceError::invalid("from", "must not be after to"));
    }
    if day_number(to) - day_number(from) >= REPORT_DAYS_MAX {
        return Err(ServiceError::invalid(
            "to",
            format!("a report covers at most {REPORT_DAYS_MAX} days"),
        ));
    }
    Ok((from, to))
}

impl Metering<'_> {
    /// Daily usage rows of a tenant: on-time usage, and the late usage of each day beside it.
    pub async fn daily_usage(
        &self,
        actor: &Actor,
        tenant_id: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<DailyUsage>, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let tenant = self
            .readable_tenant(&mut conn, actor, tenant_id, Action::UsageRead)
            .await?;
        let mut stored = Vec::with_capacity(2);
        for table in ["usage_daily", "usage_late"] {
            stored.push(
                sqlx::query(&format!(
                    "SELECT day, service, metric, unit, quantity_sum, quantity_max, events \
                     FROM {table} WHERE tenant_id = $1 AND day >= $2 AND day <= $3"
                ))
                .bind(tenant.id.as_str())
                .bind(day_number(from))
                .bind(day_number(to))
                .fetch_all(&mut *conn)
                .await?,
            );
        }
        drop(conn);
        let mut declarations: BTreeMap<String, Option<MeteringDeclaration>> = BTreeMap::new();
        let mut rows: BTreeMap<(i64, String, String, String), DailyUsage> = BTreeMap::new();
        for (late, stored) in [false, true].into_iter().zip(&stored) {
            for row in stored {
                let day: i64 = row.try_get("day")?;
                let service: String = row.try_get("service")?;
                let metric: String = row.try_get("metric")?;
                let unit: String = row.try_get("unit")?;
                if !declarations.contains_key(&service) {
                    declarations.insert(service.clone(), self.declaration(&service).await?);
                }
                let aggregation = declarations
                    .get(&service)
                    .and_then(Option::as_ref)
                    .and_then(|d| d.metrics.iter().find(|m| m.name.as_str() == metric))
                    .map_or(Aggregation::Sum, |m| m.aggregation);
                let events: i64 = row.try_get("events")?;
                let quantity = match aggregation {
                    Aggregation::Sum => decimal_column(row, "quantity_sum")?,
                    Aggregation::Max => decimal_column(row, "quantity_max")?,
                    Aggregation::Count => Decimal::from(events),
                };
                let entry = rows
                    .entry((day, service.clone(), metric.clone(), unit.clone()))
                    .or_insert_with(|| DailyUsage {
                        date: format_day(day_from_number(day)),
                        service,
                        metric,
                        unit,
                        quantity: Decimal::ZERO,
                        events: 0,
                        late_quantity: Decimal::ZERO,
                        late_events: 0,
                    });
                if late {
                    (entry.late_quantity, entry.late_events) = (quantity, events);
                } else {
                    (entry.quantity, entry.events) = (quantity, events);
                }
            }
        }
        Ok(rows.into_values().collect())
    }

    /// The reconciliation report of a tenant, a row per day of the range.
    pub async fn reconciliation(
        &self,
        actor: &Actor,
        tenant_id: &str,
        from: Date,
        to: Date,
    ) -> Result<Vec<ReconciliationDay>, ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let tenant = self
            .readable_tenant(&mut conn, actor, tenant_id, Action::UsageRead)
            .await?;
        let (first, last) = (day_number(from), day_number(to));
        let mut days: BTreeMap<i64, ReconciliationDay> = (first..=last)
            .map(|d| (d, ReconciliationDay::empty(format_day(day_from_number(d)))))
            .collect();
        let rows = sqlx::query(
            "SELECT day, accepted, duplicates, late, invalid, conflicts, unsigned_events, undeclared \
             FROM usage_counters WHERE tenant_id = $1 AND day >= $2 AND day <= $3",
        )
        .bind(tenant.id.as_str())
        .bind(first)
        .bind(last)
        .fetch_all(&mut *conn)
        .await?;
        for row in &rows {
            if let Some(day) = days.get_mut(&row.try_get::<i64, _>("day")?) {
                day.accepted = row.try_get("accepted")?;
                day.duplicates = row.try_get("duplicates")?;
                day.late = row.try_get("late")?;
                day.invalid = row.try_get("invalid")?;
                day.conflicts = row.try_get("conflicts")?;
                day.unsigned = row.try_get("unsigned_events")?;
                day.undeclared = row.try_get("undeclared")?;
            }
        }
        let closed: Vec<i64> = sqlx::query_scalar(
            "SELECT day FROM usage_days_closed WHERE tenant_id = $1 AND day >= $2 AND day <= $3",
        )
        .bind(tenant.id.as_str())
        .bind(first)
        .bind(last)
        .fetch_all(&mut *conn)
        .await?;
        for day in closed {
            if let Some(row) = days.get_mut(&day) {
                row.closed = true;
            }
        }
        for (day, gap) in gaps_of(&mut conn, tenant.id.as_str()).await? {
            if let Some(row) = days.get_mut(&day) {
                row.missing += i64::try_from(gap.to_seq - gap.from_seq + 1).unwrap_or(i64::MAX);
                row.gaps.push(gap);
            }
        }
        Ok(days.into_values().collect())
    }

    /// Builds, signs and stores the integrity report of a tenant and period.
    pub async fn integrity_report(
        &self,
        actor: &Actor,
        tenant_id: &str,
        from: Date,
        to: Date,
    ) -> Result<(IntegrityReport, EvidenceRecord), ServiceError> {
        let mut conn = self.db().readers().acquire().await?;
        let tenant = self
            .readable_tenant(&mut conn, actor, tenant_id, Action::UsageRead)
            .await?;
        drop(conn);
        let days = (day_number(from), day_number(to));
        let reconciliation = self
            .reconciliation(actor, tenant.id.as_str(), from, to)
            .await?;
        let log_id = LogId::Usage(tenant.id.clone());
        let origin = self.settings().tenant_origin(tenant.id.as_str());
        let checkpoint = self.ledger().sign_checkpoint(&log_id, &origin).await?;
        let (stored, rollups, tree) = self
            .snapshot_checks(tenant.id.as_str(), &log_id, &origin, days)
            .await?;
        let totals = integrity::Totals::of(&reconciliation);
        let ratio = totals.missing_ratio();
        let target = Decimal::from_str(MISSING_RATIO_TARGET).unwrap_or(Decimal::ONE);
        let missing = integrity::MissingRatioCheck {
            pass: ratio < target,
            missing_ratio: ratio,
            target,
        };
        let pass = rollups.pass && tree.pass && missing.pass;
        let report = IntegrityReport {
            kind: "integrity-report",
            version: 1,
            tenant_id: tenant.id.as_str().to_owned(),
            from: format_day(from),
            to: format_day(to),
            generated_at: format_rfc3339(self.now()),
            generated_by: actor.principal.actor_name(),
            result: if pass { "pass" } else { "fail" },
            checks: integrity::Checks {
                rollups_equal_ledger: rollups,
                tree_verifies_against_checkpoint: tree,
                missing_ratio_below_target: missing,
            },
            totals,
            checkpoint: checkpoint.map(|c| c.note),
            ledger_verifier_key: self.ledger().verifier_key(),
            rollups: integrity::rollup_rows(&stored),
            reconciliation,
        };
        let record = self
            .store_integrity_report(actor, tenant.id.as_str(), (from, to), &report)
            .await?;
        Ok((report, record))
    }

    /// The rollups (as stored, and checked against the payloads) and the tree check, from one
    /// snapshot, so ingestion running meanwhile is never reported as a mismatch.
    async fn snapshot_checks(
        &self,
        tenant_id: &str,
        log_id: &LogId,
        origin: &str,
        days: (i64, i64),
    ) -> Result<
        (
            crate::ledger::RollupMap,
            integrity::RollupCheck,
            integrity::TreeCheck,
        ),
        ServiceError,
    > {
        let mut snapshot = self.db().begin_snapshot().await?;
        let conn = &mut *snapshot;
        let recomputed = crate::ledger::recompute_rollups(conn, tenant_id, Some(days)).await?;
        let stored = crate::ledger::stored_rollups(conn, tenant_id, Some(days)).await?;
        let rollups = integrity::rollup_check(&stored, &recomputed);
        let tree_problems = ledger_store::verify_log(
            conn,
            log_id,
            &self.keys().checkpoint_verifier(),
            origin,
            |_, _| None,
        )
        .await?;
        snapshot.rollback().await.map_err(StoreError::from)?;
        Ok((stored, rollups, integrity::tree_check(&tree_problems)))
    }

    /// Stores a tenant's integrity report as signed evidence, audited as `evidence.create`.
    async fn store_integrity_report(
        &self,
        actor: &Actor,
        tenant_id: &str,
        (from, to): (Date, Date),
        report: &IntegrityReport,
    ) -> Result<EvidenceRecord, ServiceError> {
        let bytes =
            serde_json::to_vec_pretty(report).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let mut entry = self
            .entry(actor, "evidence.create", &format!("tenant:{tenant_id}"))
            .tenant(tenant_id)
            .details(json!({"kind": "integrity-report", "from": format_day(from), "to": format_day(to), "result": report.result}));
        let mut tx = self.db().begin().await?;
        let result = async {
            self.require(
                actor,
                Action::EvidenceCreate,
                crate::authz::Resource::Deployment,
                &[],
                &mut entry,
            )?;
            let record = self
                .evidence().store_in(
                    &mut tx,
                    actor,
                    NewArtifact {
                        kind: "integrity-report",
                        tenant_id: Some(tenant_id.to_owned()),
                        file_name: format!(
                            "integrity-report-{}-{}-{}.json",
                            tenant_id,
                            format_day(from),
                            format_day(to)
                        ),
                        content_type: "application/json",
                        bytes,
                        metadata: json!({"result": report.result, "from": format_day(from), "to": format_day(to)}),
                    },
                )
                .await?;
            entry.target = format!("evidence:{}", record.id);
            Ok(record)
        }
        .await;
        self.finish(tx, entry, result).await
    }
}

fn decimal_column(row: &sqlx::any::AnyRow, column: &str) -> Result<Decimal, ServiceError> {
    let text: String = row.try_get(column)?;
    Ok(text
        .parse()
        .map_err(|_| StoreError::corrupt(format!("stored {column}")))?)
}

/// Every gap of a tenant's sources with the day it is reported on.
pub(crate) async fn gaps_of(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
) -> Result<Vec<(i64, Gap)>, ServiceError> {
    let rows = sqlx::query(
        "SELECT source, from_seq, to_seq, first_day FROM source_seq_ranges WHERE tenant_id = $1 \
         ORDER BY source, from_seq",
    )
    .bind(tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut gaps = Vec::new();
    let mut previous: Option<(String, u64)> = None;
    for row in &rows {
        let source: String = row.try_get("source")?;
        let from = u64::try_from(row.try_get::<i64, _>("from_seq")?)
            .map_err(|_| StoreError::corrupt("seq"))?;
        let to = u64::try_from(row.try_get::<i64, _>("to_seq")?)
            .map_err(|_| StoreError::corrupt("seq"))?;
        let day: i64 = row.try_get("first_day")?;
        let expected_next = match &previous {
            Some((prev_source, prev_to)) if *prev_source == source => prev_to + 1,
            _ => 1,
        };
        if from > expected_next {
            gaps.push((
                day,
                Gap {
                    source: source.clone(),
                    from_seq: expected_next,
                    to_seq: from - 1,
                },
            ));
        }
        previous = Some((source, to));
    }
    Ok(gaps)
}
