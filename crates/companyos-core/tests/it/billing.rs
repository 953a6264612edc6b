//! Quotas kept by ingestion (issue 16): a property test of random streams with duplicates,
//! conflicts, late and refused events and plan changes against a recomputation from the stored
//! events, a plan change that brings a quota into force mid-period, and two nodes on one
//! database crossing a threshold together; both engines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use companyos_core::billing::{Effective, PlanChange};
use companyos_core::clock::{Clock as _, ManualClock};
use companyos_core::metering::ingest::RawEvent;
use companyos_core::{Actor, App};
use companyos_domain::catalog::{
    PlanAssignment, QuotaPeriod, RawPlanSpec, assignment_intervals, assignment_on,
};
use companyos_domain::time_util::{day_start, format_day, format_rfc3339, parse_day, utc_day};
use companyos_domain::{PlanName, TenantId};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::Row as _;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::support::{BACKENDS, Backend, Node, START, settings_for};

const CASES: u32 = 12;
const METRICS: [&str; 2] = ["requests", "storage_gb_hours"];

fn plans() -> [(&'static str, Value); 2] {
    [
        (
            "tight",
            json!({"name": "Tight", "currency": "USD", "quotas": [
                {"metric": "requests", "period": "month", "included": "20", "thresholds_percent": [50, 100, 150], "enforcement": "hard"},
                {"metric": "storage_gb_hours", "period": "day", "included": "5", "thresholds_percent": [100]}]}),
        ),
        (
            "loose",
            json!({"name": "Loose", "currency": "USD", "quotas": [
                {"metric": "requests", "period": "month", "included": "8", "thresholds_percent": [25, 100]},
                {"metric": "requests", "period": "day", "included": "3", "thresholds_percent": [100], "enforcement": "hard"},
                {"metric": "storage_gb_hours", "period": "month", "included": "10", "thresholds_percent": [90]}]}),
        ),
    ]
}

async fn put_plans(node: &Node) {
    crate::support::put_plans(node, plans()).await;
}

async fn change_plan(node: &Node, tenant: &str, plan: &str) {
    node.app
        .billing()
        .change_tenant_plan(
            &node.admin,
            &TenantId::parse(tenant).unwrap(),
            PlanChange {
                plan: PlanName::parse(plan).unwrap(),
                version: None,
                effective: Effective::Now,
                reason: None,
            },
        )
        .await
        .unwrap();
}

/// One step of a stream: maybe a day passes, maybe the plan changes, then a batch is sent.
#[derive(Debug, Clone)]
struct Step {
    advance_day: bool,
    plan_change: Option<usize>,
    /// (event id 0..16, conflicting content)
    events: Vec<(u8, bool)>,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = (
        any::<bool>(),
        prop::option::of(0usize..2),
        prop::collection::vec((0u8..16, prop::bool::weighted(0.15)), 1..7),
    )
        .prop_map(|(advance_day, plan_change, events)| Step {
            advance_day,
            plan_change,
            events,
        });
    prop::collection::vec(step, 1..9)
}

/// The content of event `id`: its metric, day (2026-03-02 to 03-07, at 10:00) and quantity;
/// a conflicting send changes the quantity only.
fn content(tenant: &str, id: u8, conflict: bool) -> (Value, &'static str, OffsetDateTime, Decimal) {
    let metric = METRICS[usize::from(id % 2)];
    let at = datetime!(2026-03-02 10:00 UTC) + Duration::days(i64::from(id % 6));
    let quantity = Decimal::from(id % 5 + 1)
        + if conflict {
            Decimal::TEN
        } else {
            Decimal::ZERO
        };
    let event = json!({
        "event_id": format!("e{id}"), "tenant_id": tenant, "service": "api", "metric": metric,
        "quantity": quantity.to_string(), "unit": "unit", "timestamp": format_rfc3339(at),
        "request_id": format!("req-{id}"),
    });
    (event, metric, at, quantity)
}

/// (metric, period, period start)
type Key = (String, QuotaPeriod, String);

/// The model: which ids are stored, and the thresholds crossed group by group under the plan
/// in force on each period's latest day of the group.
#[derive(Default)]
struct Model {
    stored: BTreeSet<u8>,
    usage: BTreeMap<Key, Decimal>,
    crossed: BTreeSet<(Key, u32)>,
    history: Vec<PlanAssignment>,
}

impl Model {
    fn apply_batch(&mut self, tenant: &str, batch: &[(u8, bool)], now: OffsetDateTime) {
        let mut added: BTreeMap<Key, (Decimal, time::Date)> = BTreeMap::new();
        for (id, conflict) in batch {
            let (_, metric, at, quantity) = content(tenant, *id, *conflict);
            // In the future (beyond 5 minutes): refused, never counted; a stored id is a
            // duplicate or a conflict, never counted twice.
            if at > now + Duration::minutes(5) || !self.stored.insert(*id) {
                continue;
            }
            for period in [QuotaPeriod::Day, QuotaPeriod::Month] {
                let bounds = period.bounds(at);
                let key = (metric.to_owned(), period, format_day(bounds.start));
                let entry = added.entry(key).or_insert((Decimal::ZERO, bounds.start));
                entry.0 += quantity;
                entry.1 = entry.1.max(utc_day(at));
            }
        }
        for (key, (quantity, last_day)) in added {
            let before = self.usage.get(&key).copied().unwrap_or_default();
            let after = before + quantity;
            self.usage.insert(key.clone(), after);
            let Some(assignment) = assignment_on(&self.history, last_day) else {
                continue;
            };
            let spec = spec_of(assignment.plan.as_str());
            if let Some(quota) = spec.quota(&key.0.parse_metric(), key.1) {
                for threshold in quota.thresholds_crossed(before, after) {
                    self.crossed.insert((key.clone(), threshold));
                }
            }
        }
    }
}

trait ParseMetric {
    fn parse_metric(&self) -> companyos_domain::MetricName;
}

impl ParseMetric for String {
    fn parse_metric(&self) -> companyos_domain::MetricName {
        companyos_domain::MetricName::parse(self).unwrap()
    }
}

fn spec_of(plan: &str) -> companyos_domain::catalog::PlanSpec {
    let body = plans()
        .into_iter()
        .find(|(name, _)| *name == plan)
        .map(|(_, body)| body);
    match body {
        Some(body) => serde_json::from_value::<RawPlanSpec>(body)
            .unwrap()
            .parse(&|_| true)
            .unwrap(),
        // The built-in standard plan the tenant starts on.
        None => {
            companyos_domain::catalog::builtin_plan_versions()
                .into_iter()
                .find(|v| v.plan.as_str() == plan)
                .unwrap()
                .spec
        }
    }
}

/// Whether a quota covers `key`: a plan version in force on a day of its period has a quota
/// on its metric and period. Only such rows are kept (and must be exact).
fn covered(history: &[PlanAssignment], (metric, period, start): &Key) -> bool {
    let bounds = period.bounds(day_start(parse_day(start, "period_start").unwrap()));
    assignment_intervals(history, bounds.start, bounds.end)
        .iter()
        .any(|(assignment, _, _)| {
            spec_of(assignment.plan.as_str())
                .quota(&metric.parse_metric(), *period)
                .is_some()
        })
}

/// The quota rows of `tenant` in `table`, each as its key and the text of `value_column`.
async fn stored_rows(
    app: &App,
    table: &str,
    value_column: &str,
    tenant: &str,
) -> Vec<(Key, sqlx::any::AnyRow)> {
    let rows = sqlx::query(&format!(
        "SELECT metric, period, period_start, {value_column} FROM {table} WHERE tenant_id = $1"
    ))
    .bind(tenant)
    .fetch_all(app.db().readers())
    .await
    .unwrap();
    rows.into_iter()
        .map(|row| {
            let period: String = row.try_get("period").unwrap();
            let key = (
                row.try_get::<String, _>("metric").unwrap(),
                QuotaPeriod::parse_field(&period, "period").unwrap(),
                row.try_get::<String, _>("period_start").unwrap(),
            );
            (key, row)
        })
        .collect()
}

async fn stored_usage(app: &App, tenant: &str) -> BTreeMap<Key, Decimal> {
    stored_rows(app, "quota_usage", "quantity", tenant)
        .await
        .into_iter()
        .map(|(key, row)| {
            let quantity: String = row.try_get("quantity").unwrap();
            (key, quantity.parse::<Decimal>().unwrap())
        })
        .filter(|(_, quantity)| !quantity.is_zero())
        .collect()
}

/// Usage recomputed from the tenant's stored events (their canonical JSON).
async fn recomputed_usage(app: &App, tenant: &str) -> BTreeMap<Key, Decimal> {
    let mut conn = app.db().readers().acquire().await.unwrap();
    let rows = companyos_core::bundles::read_events(&mut conn, tenant, 0, u64::MAX)
        .await
        .unwrap();
    let mut usage: BTreeMap<Key, Decimal> = BTreeMap::new();
    for row in rows {
        let event: Value = serde_json::from_str(&row.canonical).unwrap();
        let at =
            companyos_domain::time_util::parse_rfc3339(event["timestamp"].as_str().unwrap(), "t")
                .unwrap();
        let quantity: Decimal = event["quantity"].as_str().unwrap().parse().unwrap();
        for period in [QuotaPeriod::Day, QuotaPeriod::Month] {
            let bounds = period.bounds(at);
            let key = (
                event["metric"].as_str().unwrap().to_owned(),
                period,
                format_day(bounds.start),
            );
            *usage.entry(key).or_default() += quantity;
        }
    }
    usage
}

async fn stored_events(app: &App, tenant: &str) -> Vec<(Key, u32)> {
    stored_rows(app, "quota_events", "threshold_percent", tenant)
        .await
        .into_iter()
        .map(|(key, row)| {
            let percent = row.try_get::<i64, _>("threshold_percent").unwrap();
            (key, u32::try_from(percent).unwrap())
        })
        .collect()
}

async fn run_case(
    node: &Node,
    ingest: &Actor,
    tenant: &str,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    node.clock.set(START);
    node.tenant(tenant).await;
    let mut model = Model::default();
    let standard = PlanName::parse("standard").unwrap();
    model.history.push(PlanAssignment {
        seq: 1,
        plan: standard,
        version: 1,
        effective_from: utc_day(START),
    });
    node.clock.set(datetime!(2026-03-04 12:00 UTC));
    for step in steps {
        if step.advance_day && node.clock.now() < datetime!(2026-03-08 00:00 UTC) {
            node.clock.advance(Duration::days(1));
        }
        let now = node.clock.now();
        if let Some(index) = step.plan_change {
            let plan = plans()[index].0;
            change_plan(node, tenant, plan).await;
            let seq = model.history.len() as u64 + 1;
            model.history.push(PlanAssignment {
                seq,
                plan: PlanName::parse(plan).unwrap(),
                version: 1,
                effective_from: utc_day(now),
            });
        }
        let events: Vec<RawEvent> = step
            .events
            .iter()
            .map(|(id, conflict)| crate::support::raw_event(&content(tenant, *id, *conflict).0))
            .collect();
        node.app
            .ingest(ingest, events)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        model.apply_batch(tenant, &step.events, now);
    }
    let stored = stored_usage(&node.app, tenant).await;
    let recomputed = recomputed_usage(&node.app, tenant).await;
    prop_assert_eq!(&recomputed, &model.usage);
    // Every row a quota covers holds the exact usage of its period (a row not written is
    // zero). A row a quota no longer covers (a plan change the same day replaced the version
    // that covered it) may keep what it had; nothing reads it.
    let covered_usage: BTreeMap<Key, Decimal> = recomputed
        .into_iter()
        .filter(|(key, _)| covered(&model.history, key))
        .collect();
    let covered_stored: BTreeMap<Key, Decimal> = stored
        .into_iter()
        .filter(|(key, _)| covered(&model.history, key))
        .collect();
    prop_assert_eq!(&covered_stored, &covered_usage);
    let events = stored_events(&node.app, tenant).await;
    let unique: BTreeSet<(Key, u32)> = events.iter().cloned().collect();
    prop_assert_eq!(events.len(), unique.len(), "each threshold once");
    prop_assert_eq!(unique, model.crossed);
    Ok(())
}

#[test]
fn quota_usage_and_events_equal_a_recomputation_from_the_stored_events() {
    for backend in BACKENDS {
        let runtime = crate::support::runtime();
        let node = runtime.block_on(Node::open(backend));
        runtime.block_on(put_plans(&node));
        let ingest = runtime.block_on(node.operator("meter", "ingest"));
        let counter = AtomicUsize::new(0);
        let mut runner = crate::support::test_runner(CASES, 128);
        let result = runner.run(&steps(), |steps| {
            let tenant = format!("quota-{}", counter.fetch_add(1, Ordering::SeqCst));
            runtime.block_on(run_case(&node, &ingest, &tenant, &steps))
        });
        if let Err(error) = result {
            panic!("{backend:?}: {error}");
        }
        runtime.block_on(node.close());
    }
}

/// The current period's usage of each quota in the tenant's entitlements, by (metric, period).
async fn entitled_usage(node: &Node, tenant: &str) -> BTreeMap<(String, QuotaPeriod), Decimal> {
    let entitlements = node
        .app
        .billing()
        .entitlements(&node.admin, &TenantId::parse(tenant).unwrap())
        .await
        .unwrap();
    entitlements
        .quotas
        .iter()
        .map(|q| {
            (
                (q.quota.metric.as_str().to_owned(), q.quota.period),
                q.usage,
            )
        })
        .collect()
}

async fn forward_auth_status(node: &Node, key: &str) -> u16 {
    let principal = node
        .app
        .authenticate(Some(key), None, "test")
        .await
        .unwrap();
    let actor = Actor {
        principal,
        request_id: None,
        channel: None,
    };
    let metric = companyos_domain::MetricName::parse("requests").unwrap();
    match node
        .app
        .billing()
        .forward_auth(&actor, None, Some(&metric))
        .await
    {
        Ok(_) => 200,
        Err(companyos_core::ServiceError::RateLimited { .. }) => 429,
        Err(other) => panic!("forward auth: {other}"),
    }
}

/// Creates a tenant on the enterprise plan (no quotas); returns its API key.
async fn enterprise_tenant(node: &Node, id: &str) -> String {
    let created = node
        .app
        .lifecycle()
        .create(
            &node.admin,
            companyos_core::lifecycle::NewTenant {
                id: id.to_owned(),
                name: format!("Tenant {id}"),
                plan: Some("enterprise".to_owned()),
                home_region: Some("eu-west-1".to_owned()),
                allowed_regions: Some(vec!["eu-west-1".to_owned()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    created.api_key
}

/// A tenant on a plan without quotas stores usage (late and on time), then moves mid-month to
/// one with a monthly and a daily quota on that metric: both quotas start from the usage
/// stored before the change, not from zero, in the answers and in the thresholds.
#[tokio::test]
async fn a_plan_change_adding_a_quota_mid_period_sees_the_usage_ingested_before() {
    for backend in BACKENDS {
        let node = Node::open(backend).await;
        put_plans(&node).await;
        let api_key = enterprise_tenant(&node, "acme").await;
        let ingest = node.operator("meter", "ingest").await;
        node.clock.set(datetime!(2026-03-05 12:00 UTC));
        let before = [
            ("late", "2", datetime!(2026-03-02 13:00 UTC)),
            ("on-time", "3", datetime!(2026-03-04 09:00 UTC)),
            ("today", "2", datetime!(2026-03-05 10:00 UTC)),
        ];
        let events: Vec<Value> = before
            .iter()
            .map(|(id, quantity, at)| crate::support::event("acme", id, quantity, *at))
            .collect();
        let outcome = crate::support::ingest(&node.app, &ingest, &events).await;
        assert_eq!(
            crate::support::statuses(&outcome),
            ["late", "accepted", "accepted"],
            "{backend:?}"
        );
        // Enterprise has no quotas: nothing is kept for them yet.
        assert!(
            stored_usage(&node.app, "acme").await.is_empty(),
            "{backend:?}"
        );
        change_plan(&node, "acme", "loose").await;
        let usage = entitled_usage(&node, "acme").await;
        let requests = |period| ("requests".to_owned(), period);
        assert_eq!(
            usage[&requests(QuotaPeriod::Month)],
            Decimal::from(7),
            "{backend:?}"
        );
        assert_eq!(
            usage[&requests(QuotaPeriod::Day)],
            Decimal::from(2),
            "{backend:?}"
        );
        assert_eq!(forward_auth_status(&node, &api_key).await, 200);
        // One more request uses up the day (3, hard) and reaches the month's 100% (8); the
        // month's 25% was passed before the change and is not emitted by it.
        let last = crate::support::event("acme", "after", "1", datetime!(2026-03-05 11:00 UTC));
        crate::support::ingest(&node.app, &ingest, &[last]).await;
        assert_eq!(forward_auth_status(&node, &api_key).await, 429);
        let mut events = stored_events(&node.app, "acme").await;
        events.sort();
        let key = |period, start: &str| ("requests".to_owned(), period, start.to_owned());
        assert_eq!(
            events,
            vec![
                (key(QuotaPeriod::Day, "2026-03-05"), 100),
                (key(QuotaPeriod::Month, "2026-03-01"), 100),
            ],
            "{backend:?}"
        );
        let usage = entitled_usage(&node, "acme").await;
        assert_eq!(
            usage[&requests(QuotaPeriod::Month)],
            Decimal::from(8),
            "{backend:?}"
        );
        node.close().await;
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A second node on the node's database (on SQLite, the one node itself, which then takes
/// both halves of a test).
async fn second_node(node: &Node, dir: &Path) -> App {
    match node.backend {
        Backend::Postgres => {
            let data_dir = dir.join("data");
            copy_dir(&node.data_dir().join("keys"), &data_dir.join("keys"));
            let settings = settings_for(&data_dir, node.database_url.as_deref());
            let (app, _) = App::open(settings, Arc::new(ManualClock::new(START)))
                .await
                .unwrap();
            app
        }
        Backend::Sqlite => node.app.clone(),
    }
}

/// Ingests `count` requests of one unit at START for acme, one event per request, as the
/// holder of `token`, with event ids starting with `prefix`.
fn spawn_ingest(
    app: &App,
    token: &str,
    prefix: String,
    count: usize,
) -> tokio::task::JoinHandle<()> {
    let (app, token) = (app.clone(), token.to_owned());
    tokio::spawn(async move {
        let principal = app.authenticate(Some(&token), None, "test").await.unwrap();
        let actor = Actor {
            principal,
            request_id: None,
            channel: None,
        };
        for i in 0..count {
            let id = format!("{prefix}-{i}");
            let event = json!({
                "event_id": id, "tenant_id": "acme", "service": "api",
                "metric": "requests", "quantity": "1", "unit": "request",
                "timestamp": format_rfc3339(START), "request_id": format!("r-{id}"),
            });
            app.ingest(&actor, vec![crate::support::raw_event(&event)])
                .await
                .unwrap();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_crossing_a_threshold_together_emit_it_once() {
    for backend in BACKENDS {
        let node = Node::open(backend).await;
        put_plans(&node).await;
        node.tenant("acme").await;
        change_plan(&node, "acme", "tight").await;
        let ingest_token = node.operator_token("meter", "ingest").await;
        let second_dir = tempfile::tempdir().unwrap();
        let second = second_node(&node, second_dir.path()).await;
        let mut tasks = Vec::new();
        for (n, app) in [&node.app, &second].into_iter().enumerate() {
            for task in 0..4 {
                tasks.push(spawn_ingest(
                    app,
                    &ingest_token,
                    format!("n{n}-t{task}"),
                    10,
                ));
            }
        }
        for task in tasks {
            task.await.unwrap();
        }
        // 80 requests of a 20 included: 50%, 100% and 150% crossed, each exactly once.
        let events = stored_events(&node.app, "acme").await;
        let thresholds: Vec<u32> = {
            let mut t: Vec<u32> = events.iter().map(|(_, t)| *t).collect();
            t.sort_unstable();
            t
        };
        assert_eq!(thresholds, vec![50, 100, 150], "{backend:?}");
        let usage = stored_usage(&node.app, "acme").await;
        let month = (
            "requests".to_owned(),
            QuotaPeriod::Month,
            "2026-03-01".to_owned(),
        );
        assert_eq!(usage.get(&month), Some(&Decimal::from(80)));
        let audits: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'quota.threshold'",
        )
        .fetch_one(node.app.db().readers())
        .await
        .unwrap();
        assert_eq!(audits, 3, "{backend:?}");
        if backend == Backend::Postgres {
            second.db().close().await;
        }
        node.close().await;
    }
}

/// A plan change on one node that brings quotas into force while the other node ingests for
/// the tenant (its first events included): whichever commits first, the rows end exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plan_change_racing_ingestion_on_another_node_leaves_exact_rows() {
    for backend in BACKENDS {
        let node = Node::open(backend).await;
        put_plans(&node).await;
        enterprise_tenant(&node, "acme").await;
        let ingest_token = node.operator_token("meter", "ingest").await;
        let second_dir = tempfile::tempdir().unwrap();
        let second = second_node(&node, second_dir.path()).await;
        let tasks: Vec<_> = (0..4)
            .map(|task| spawn_ingest(&node.app, &ingest_token, format!("t{task}"), 50))
            .collect();
        // Into the stream of group commits, past the tenant's first.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let change = PlanChange {
            plan: PlanName::parse("loose").unwrap(),
            version: None,
            effective: Effective::Now,
            reason: None,
        };
        second
            .billing()
            .change_tenant_plan(&node.admin, &TenantId::parse("acme").unwrap(), change)
            .await
            .unwrap();
        for task in tasks {
            task.await.unwrap();
        }
        let usage = stored_usage(&node.app, "acme").await;
        let key = |period, start: &str| ("requests".to_owned(), period, start.to_owned());
        let all = Decimal::from(200);
        assert_eq!(
            usage.get(&key(QuotaPeriod::Month, "2026-03-01")),
            Some(&all),
            "{backend:?}"
        );
        assert_eq!(
            usage.get(&key(QuotaPeriod::Day, "2026-03-02")),
            Some(&all),
            "{backend:?}"
        );
        if backend == Backend::Postgres {
            second.db().close().await;
        }
        node.close().await;
    }
}
