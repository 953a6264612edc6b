//! Property test of monthly statements (issue 17) at the store: random streams of usage events
//! for one tenant a case — duplicates, conflicts, events dated ahead of the clock, late events
//! across the month boundary, day closes and mid-month plan changes — ingested through the
//! service; the month closed by its jobs; every statement checked against a recomputation here
//! from the events the service stored and the plan versions assigned; a final statement's bytes
//! never change when late events arrive (they become the next month's adjustments).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use companyos_core::billing::{Effective, PlanChange};
use companyos_core::clock::Clock as _;
use companyos_core::lifecycle::NewTenant;
use companyos_core::{Actor, ServiceError};
use companyos_domain::statement::{Statement, StatementMonth};
use companyos_domain::time_util::{format_rfc3339, utc_day};
use companyos_domain::{PlanName, TenantId};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Value, json};
use time::macros::{date, datetime};
use time::{Date, Duration, OffsetDateTime};

use crate::support::{BACKENDS, Node};

/// Cases per engine: enough variety, and the binary stays well under a minute.
const CASES: u32 = 24;
/// Event ids a stream draws from (so ids repeat: duplicates and conflicts).
const IDS: u8 = 24;
/// Events further ahead than this are rejected (the default `future_tolerance`).
const FUTURE_TOLERANCE: Duration = Duration::minutes(5);
const MARCH: Date = date!(2026 - 03 - 01);
const APRIL: Date = date!(2026 - 04 - 01);
/// The main phase stays inside March; the late phase runs after March's days closed.
const MAIN_PHASE_END: OffsetDateTime = datetime!(2026-03-31 23:00 UTC);
const LATE_PHASE: OffsetDateTime = datetime!(2026-04-03 01:00 UTC);

/// The plans a tenant moves between; `small` has a monthly and a daily quota, `big` a monthly
/// quota only (its storage is not charged).
fn plans() -> [(&'static str, Value); 2] {
    [
        (
            "small",
            json!({"name": "Small", "currency": "EUR", "base_fee": "10.00", "quotas": [
                {"metric": "requests", "period": "month", "included": "20",
                 "thresholds_percent": [100], "overage_unit_price": "0.15"},
                {"metric": "storage_gb_hours", "period": "day", "included": "5",
                 "thresholds_percent": [100], "overage_unit_price": "0.033"}]}),
        ),
        (
            "big",
            json!({"name": "Big", "currency": "EUR", "base_fee": "29.99", "quotas": [
                {"metric": "requests", "period": "month", "included": "50",
                 "thresholds_percent": [100], "overage_unit_price": "0.07"}]}),
        ),
    ]
}

/// The (base fee, quotas by metric: (monthly?, included, unit price)) of a plan, read here
/// from the test's own plan texts.
struct PlanTerms {
    base_fee: Decimal,
    quotas: BTreeMap<String, (bool, Decimal, Decimal)>,
}

fn terms(plan: &str) -> PlanTerms {
    let body = plans()
        .into_iter()
        .find(|(name, _)| *name == plan)
        .unwrap()
        .1;
    let decimal = |v: &Value| v.as_str().unwrap().parse::<Decimal>().unwrap();
    let mut quotas = BTreeMap::new();
    for quota in body["quotas"].as_array().unwrap() {
        quotas.insert(
            quota["metric"].as_str().unwrap().to_owned(),
            (
                quota["period"] == "month",
                decimal(&quota["included"]),
                decimal(&quota["overage_unit_price"]),
            ),
        );
    }
    PlanTerms {
        base_fee: decimal(&body["base_fee"]),
        quotas,
    }
}

/// One step of the main phase: the clock moves, maybe the plan changes, maybe the day-close
/// job runs, then a batch is sent.
#[derive(Debug, Clone)]
struct Step {
    advance_hours: i64,
    plan_change: Option<usize>,
    close_days: bool,
    /// (event id, conflicting content)
    events: Vec<(u8, bool)>,
}

#[derive(Debug, Clone)]
struct Case {
    /// The day of March the tenant is created on.
    created_day: u8,
    steps: Vec<Step>,
    /// Batches sent after March is final.
    late: Vec<Vec<(u8, bool)>>,
}

fn batch() -> impl Strategy<Value = Vec<(u8, bool)>> {
    prop::collection::vec((0..IDS, prop::bool::weighted(0.15)), 1..8)
}

fn case() -> impl Strategy<Value = Case> {
    let step = (
        0i64..60,
        prop::option::of(0usize..2),
        prop::bool::weighted(0.3),
        batch(),
    )
        .prop_map(|(advance_hours, plan_change, close_days, events)| Step {
            advance_hours,
            plan_change,
            close_days,
            events,
        });
    (
        1u8..6,
        prop::collection::vec(step, 1..12),
        prop::collection::vec(batch(), 1..4),
    )
        .prop_map(|(created_day, steps, late)| Case {
            created_day,
            steps,
            late,
        })
}

/// What an event id means: its series, timestamp (from 1 March to 2 April) and quantity; a
/// conflicting send changes the quantity only.
fn content(tenant: &str, id: u8, conflict: bool) -> Value {
    let (service, metric, unit) = match id % 3 {
        0 | 2 => (
            ["api", "search"][usize::from(id % 2)],
            "requests",
            "request",
        ),
        _ => ("api", "storage_gb_hours", "gb_hour"),
    };
    let minutes = (i64::from(id) * (37 * 60 + 13)) % (33 * 24 * 60);
    let at = datetime!(2026-03-01 00:00 UTC) + Duration::minutes(minutes);
    let mut quantity = Decimal::new(i64::from(id % 7 + 1) * 100 + i64::from(id % 4) * 25, 2);
    if conflict {
        quantity += Decimal::TEN;
    }
    json!({"event_id": format!("e{id}"), "tenant_id": tenant, "service": service,
           "metric": metric, "unit": unit, "quantity": quantity.to_string(),
           "timestamp": format_rfc3339(at), "request_id": format!("r{id}")})
}

/// (service, metric, unit)
type Key = (String, String, String);

/// A stored (accepted or late) event as the test saw it sent.
#[derive(Debug, Clone)]
struct Stored {
    day: Date,
    key: Key,
    quantity: Decimal,
}

/// (accepted, duplicates, late, rejected, conflicts) by the event's UTC day.
type DayStatuses = BTreeMap<Date, [u64; 5]>;

/// What the test knows: the events stored (first content wins), the statuses by day and the
/// plan assignments (plan, effective from) in order.
#[derive(Debug, Default)]
struct Model {
    stored: BTreeMap<String, Stored>,
    statuses: DayStatuses,
    assignments: Vec<(String, Date)>,
}

impl Model {
    /// Records one result, checking that the status is what the event and the clock imply.
    fn record(
        &mut self,
        event: &Value,
        status: &str,
        now: OffsetDateTime,
    ) -> Result<(), TestCaseError> {
        let at = companyos_domain::time_util::parse_rfc3339(
            event["timestamp"].as_str().unwrap(),
            "timestamp",
        )
        .unwrap();
        let day = utc_day(at);
        let id = event["event_id"].as_str().unwrap().to_owned();
        let key = (
            event["service"].as_str().unwrap().to_owned(),
            event["metric"].as_str().unwrap().to_owned(),
            event["unit"].as_str().unwrap().to_owned(),
        );
        let quantity: Decimal = event["quantity"].as_str().unwrap().parse().unwrap();
        let expected: &[&str] = match self.stored.get(&id) {
            _ if at > now + FUTURE_TOLERANCE => &["rejected"],
            Some(kept) if kept.quantity == quantity => &["duplicate"],
            Some(_) => &["conflict"],
            None => &["accepted", "late"],
        };
        prop_assert!(expected.contains(&status), "{id} at {now}: {status}");
        let column = ["accepted", "duplicate", "late", "rejected", "conflict"]
            .iter()
            .position(|s| *s == status)
            .unwrap();
        self.statuses.entry(day).or_default()[column] += 1;
        if column == 0 || column == 2 {
            self.stored.insert(id, Stored { day, key, quantity });
        }
        Ok(())
    }
}

/// The expected statement of `month`: lines as (plan, version, key, quantity, included,
/// overage, unit price, amount) sorted, the base fee, and the sum of line amounts.
#[derive(Debug, PartialEq)]
struct Expected {
    lines: Vec<(String, u32, Key, [Decimal; 5])>,
    base_fee: Decimal,
}

fn round_money(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven)
}

/// The periods of `month` from the assignments: (plan, first day, days), adjacent days under
/// the same plan merged; days before the first assignment left out.
fn periods(assignments: &[(String, Date)], month: Date, next: Date) -> Vec<(String, Date, u32)> {
    let mut periods: Vec<(String, Date, u32)> = Vec::new();
    let mut day = month;
    while day < next {
        let in_force = assignments.iter().rev().find(|(_, from)| *from <= day);
        if let Some((plan, _)) = in_force {
            match periods.last_mut() {
                Some(last)
                    if last.0 == *plan && last.1 + Duration::days(i64::from(last.2)) == day =>
                {
                    last.2 += 1;
                }
                _ => periods.push((plan.clone(), day, 1)),
            }
        }
        day = day.next_day().unwrap();
    }
    periods
}

/// Recomputes a month's lines and base fee from the stored events and the assignments,
/// following CONTRACT §10 and ADR 0012, day by day.
fn expected(model: &Model, month: Date, next: Date) -> Expected {
    let days_in_month = (next - month).whole_days();
    let periods = periods(&model.assignments, month, next);
    // (period index, key) -> day -> quantity
    let mut usage: BTreeMap<(usize, Key), BTreeMap<Date, Decimal>> = BTreeMap::new();
    for event in model.stored.values() {
        if event.day < month || event.day >= next {
            continue;
        }
        // The period holding the day, else the last one starting before it, else the first.
        let index = periods
            .iter()
            .rposition(|(_, from, _)| *from <= event.day)
            .unwrap_or(0);
        *usage
            .entry((index, event.key.clone()))
            .or_default()
            .entry(event.day)
            .or_default() += event.quantity;
    }
    let mut lines = Vec::new();
    for ((index, key), days) in usage {
        let (plan, _, days_in_force) = &periods[index];
        let quantity: Decimal = days.values().sum();
        let (included, overage, price) = match terms(plan).quotas.get(&key.1) {
            None => (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO),
            Some((true, included, price)) => {
                let included = if i64::from(*days_in_force) >= days_in_month {
                    *included
                } else {
                    (included * Decimal::from(*days_in_force) / Decimal::from(days_in_month))
                        .round_dp_with_strategy(6, RoundingStrategy::MidpointNearestEven)
                };
                (included, (quantity - included).max(Decimal::ZERO), *price)
            }
            Some((false, per_day, price)) => {
                let overage = days
                    .values()
                    .map(|q| (*q - per_day).max(Decimal::ZERO))
                    .sum();
                (per_day * Decimal::from(*days_in_force), overage, *price)
            }
        };
        let amount = round_money(overage * price);
        lines.push((
            plan.clone(),
            1,
            key,
            [quantity, included, overage, price, amount],
        ));
    }
    lines.sort();
    let base_fee = round_money(
        periods
            .iter()
            .map(|(plan, _, days)| {
                terms(plan).base_fee * Decimal::from(*days) / Decimal::from(days_in_month)
            })
            .sum(),
    );
    Expected { lines, base_fee }
}

/// The same view of a served statement.
fn served(statement: &Statement) -> Expected {
    let mut lines: Vec<_> = statement
        .lines
        .iter()
        .map(|l| {
            (
                l.plan.clone(),
                l.version,
                (
                    l.key.service.to_string(),
                    l.key.metric.to_string(),
                    l.key.unit.to_string(),
                ),
                [l.quantity, l.included, l.overage, l.unit_price, l.amount],
            )
        })
        .collect();
    lines.sort();
    Expected {
        lines,
        base_fee: statement.base_fee,
    }
}

/// The adjustments `final_lines` leave for their month now: per key, quantity and amount now
/// minus final, where either is not zero.
fn expected_adjustments(
    now: &Expected,
    final_lines: &Expected,
) -> BTreeMap<Key, (Decimal, Decimal)> {
    let mut delta: BTreeMap<Key, (Decimal, Decimal)> = BTreeMap::new();
    for (sign, expected) in [(Decimal::ONE, now), (Decimal::NEGATIVE_ONE, final_lines)] {
        for (_, _, key, [quantity, _, _, _, amount]) in &expected.lines {
            let entry = delta.entry(key.clone()).or_default();
            entry.0 += sign * quantity;
            entry.1 += sign * amount;
        }
    }
    delta.retain(|_, (q, a)| !q.is_zero() || !a.is_zero());
    delta
}

struct Context {
    node: Node,
    ingest: Actor,
}

impl Context {
    async fn send(
        &self,
        tenant: &str,
        events: &[(u8, bool)],
        model: &mut Model,
    ) -> Result<(), TestCaseError> {
        let now = self.node.clock.now();
        let values: Vec<Value> = events
            .iter()
            .map(|(id, conflict)| content(tenant, *id, *conflict))
            .collect();
        let outcome = self
            .node
            .app
            .ingest(
                &self.ingest,
                values.iter().map(crate::support::raw_event).collect(),
            )
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (value, result) in values.iter().zip(&outcome.results) {
            model.record(value, result.status.as_str(), now)?;
        }
        Ok(())
    }

    async fn change_plan(&self, tenant: &str, plan: &str) -> Result<(), ServiceError> {
        self.node
            .app
            .billing()
            .change_tenant_plan(
                &self.node.admin,
                &TenantId::parse(tenant).unwrap(),
                PlanChange {
                    plan: PlanName::parse(plan).unwrap(),
                    version: None,
                    effective: Effective::Now,
                    reason: Some("property test".to_owned()),
                },
            )
            .await
            .map(|_| ())
    }

    /// Runs the day-close and month-close jobs until they have nothing left to do.
    async fn close(&self) -> Result<(), TestCaseError> {
        let fail = |e: ServiceError| TestCaseError::fail(e.to_string());
        while self.node.app.metering().close_days().await.map_err(fail)? > 0 {}
        while self
            .node
            .app
            .statements()
            .close_months()
            .await
            .map_err(fail)?
            > 0
        {}
        Ok(())
    }

    async fn statement(
        &self,
        tenant: &str,
        month: Date,
    ) -> Result<(Statement, String, String), TestCaseError> {
        let document = self
            .node
            .app
            .statements()
            .get(
                &self.node.admin,
                &TenantId::parse(tenant).unwrap(),
                StatementMonth::of(month),
            )
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        Ok((document.statement, document.canonical, document.sha256))
    }

    async fn run(&self, tenant: &str, case: &Case) -> Result<(), TestCaseError> {
        let clock = &self.node.clock;
        let created = MARCH.replace_day(case.created_day).unwrap();
        clock.set(time::PrimitiveDateTime::new(created, time::macros::time!(10:00)).assume_utc());
        self.node
            .app
            .lifecycle()
            .create(
                &self.node.admin,
                NewTenant {
                    id: tenant.to_owned(),
                    name: format!("Tenant {tenant}"),
                    plan: Some("small".to_owned()),
                    ..NewTenant::default()
                },
            )
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut model = Model {
            assignments: vec![("small".to_owned(), created)],
            ..Model::default()
        };
        for step in &case.steps {
            let next = clock.now() + Duration::hours(step.advance_hours);
            clock.set(next.min(MAIN_PHASE_END));
            if let Some(index) = step.plan_change {
                let plan = plans()[index].0;
                self.change_plan(tenant, plan)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                model
                    .assignments
                    .push((plan.to_owned(), utc_day(clock.now())));
            }
            if step.close_days {
                self.close().await?;
            }
            self.send(tenant, &step.events, &mut model).await?;
        }
        // March's days close (their late window has passed) and the month becomes final.
        clock.set(LATE_PHASE);
        self.close().await?;
        let (march, bytes, sha256) = self.statement(tenant, MARCH).await?;
        prop_assert_eq!(march.status.as_str(), "final");
        self.check(&march, &model, MARCH, APRIL)?;
        let final_expected = expected(&model, MARCH, APRIL);
        // Late events: March's stay out of its final statement and become April's adjustments.
        for batch in &case.late {
            self.send(tenant, batch, &mut model).await?;
        }
        self.close().await?;
        let (again, bytes_again, sha256_again) = self.statement(tenant, MARCH).await?;
        prop_assert_eq!(again.status.as_str(), "final");
        prop_assert_eq!(
            &bytes_again,
            &bytes,
            "a final statement's bytes never change"
        );
        prop_assert_eq!(&sha256_again, &sha256);
        let (april, _, _) = self.statement(tenant, APRIL).await?;
        prop_assert_eq!(april.status.as_str(), "open");
        self.check(&april, &model, APRIL, date!(2026 - 05 - 01))?;
        let adjustments: BTreeMap<Key, (Decimal, Decimal)> = april
            .adjustments
            .iter()
            .map(|a| {
                prop_assert_eq!(a.for_month, StatementMonth::of(MARCH));
                Ok((
                    (
                        a.key.service.to_string(),
                        a.key.metric.to_string(),
                        a.key.unit.to_string(),
                    ),
                    (a.quantity, a.amount),
                ))
            })
            .collect::<Result<_, TestCaseError>>()?;
        prop_assert_eq!(
            adjustments,
            expected_adjustments(&expected(&model, MARCH, APRIL), &final_expected)
        );
        Ok(())
    }

    /// A statement's lines, base fee, total and counts against the recomputation.
    fn check(
        &self,
        statement: &Statement,
        model: &Model,
        month: Date,
        next: Date,
    ) -> Result<(), TestCaseError> {
        let expected = expected(model, month, next);
        prop_assert_eq!(&served(statement), &expected, "{}", month);
        let lines: Decimal = expected.lines.iter().map(|l| l.3[4]).sum();
        let adjustments: Decimal = statement.adjustments.iter().map(|a| a.amount).sum();
        prop_assert_eq!(statement.total, expected.base_fee + lines + adjustments);
        let mut counts = [0u64; 5];
        for (_, by_status) in model.statuses.range(month..next) {
            for (total, n) in counts.iter_mut().zip(by_status) {
                *total += n;
            }
        }
        let c = &statement.counts;
        prop_assert_eq!(
            [
                c.accepted,
                c.duplicates,
                c.late,
                c.rejected,
                c.conflicts,
                c.missing
            ],
            [counts[0], counts[1], counts[2], counts[3], counts[4], 0],
            "counts of {}",
            month
        );
        Ok(())
    }
}

#[test]
fn statements_equal_a_recomputation_and_final_bytes_never_change() {
    for backend in BACKENDS {
        let runtime = crate::support::runtime();
        let context = runtime.block_on(async {
            let node = Node::open(backend).await;
            crate::support::put_plans(&node, plans()).await;
            let ingest = node.operator("meter", "ingest").await;
            Context { node, ingest }
        });
        let counter = AtomicUsize::new(0);
        let mut runner = crate::support::test_runner(CASES, 64);
        let result = runner.run(&case(), |case| {
            let tenant = format!("stmt-{}", counter.fetch_add(1, Ordering::SeqCst));
            runtime.block_on(context.run(&tenant, &case))
        });
        if let Err(error) = result {
            panic!("{backend:?}: {error}");
        }
        runtime.block_on(context.node.close());
    }
}
