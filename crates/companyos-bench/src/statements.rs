//! `companyos-bench month-close` (issue 17): a month of usage for many tenants loaded through the
//! ingestion service on a moving clock (every event on time), then the day close and the
//! month-close job timed beside one `GROUP BY` over the same events in the same store (their
//! totals must agree), one statement read (service call and HTTP) p50 and max, and one pack
//! built and verified with its size.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context as _, bail, ensure};
use companyos_core::Settings;
use companyos_core::clock::ManualClock;
use companyos_core::db::Backend;
use companyos_core::statements::verify::{TrustedKeys, verify_pack};
use companyos_domain::catalog::RawPlanSpec;
use companyos_domain::statement::StatementMonth;
use companyos_domain::time_util::{day_start, format_rfc3339, utc_day};
use companyos_domain::{PlanName, TenantId};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::fixture::{Fixture, peak_memory_kib, rate, settle_store};
use crate::ingest::send_bodies;

/// What the month close bench is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct MonthCloseRun<'a> {
    pub backend: &'a str,
    pub tenants: usize,
    pub events: usize,
    pub batch: usize,
    pub concurrency: usize,
    pub runs: usize,
}

/// The tenant whose statement is read and packed.
const READ_TENANT: &str = "tenant-0001";
/// (totals by tenant and series) as (quantity, events).
type Totals = BTreeMap<(String, String, String, String), (Decimal, u64)>;

/// A plan whose included requests every bench tenant uses up, so lines carry an overage.
fn bench_plan() -> anyhow::Result<RawPlanSpec> {
    Ok(serde_json::from_value(json!({
        "name": "Month bench", "currency": "EUR", "base_fee": "49.00", "features": ["api"],
        "quotas": [{"metric": "requests", "period": "month", "included": "5000",
                    "thresholds_percent": [80, 100], "enforcement": "soft",
                    "overage_unit_price": "0.0002"}]
    }))?)
}

/// The month measured: the last whole month before today (its days are closed by the bench).
fn bench_month() -> StatementMonth {
    StatementMonth::of(utc_day(OffsetDateTime::now_utc())).previous()
}

async fn open(run: &MonthCloseRun<'_>, clock: Arc<ManualClock>) -> anyhow::Result<Fixture> {
    let temp = tempfile::tempdir()?;
    let mut settings = Settings::new(temp.path().join("data"));
    settings.ingest_queue_capacity = 64;
    let fixture = crate::fixture::open_store(settings, run.backend, clock, Some(temp)).await?;
    let plan = PlanName::parse("month-bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    fixture
        .app
        .billing()
        .put_plan(&fixture.admin, &plan, bench_plan()?)
        .await?;
    crate::fixture::create_bench_tenants(&fixture, run.tenants, Some("month-bench")).await?;
    Ok(fixture)
}

/// One day's events as batch bodies: event `i` of the month goes to tenant `i % tenants`, one
/// in four of a tenant's is a byte count (a line without a quota), timestamps spread over the day.
fn day_bodies(
    day: time::Date,
    first: usize,
    n: usize,
    tenants: usize,
    batch: usize,
) -> Vec<Vec<u8>> {
    let start = day_start(day);
    let mut bodies = Vec::new();
    let mut from = 0;
    while from < n {
        let to = (from + batch).min(n);
        let events: Vec<Value> = (from..to)
            .map(|k| {
                let i = first + k;
                let at = start + Duration::seconds((k * 86_399 / n.max(1)) as i64);
                let (metric, unit) = if (i / tenants) % 4 == 0 {
                    ("bytes_out", "byte")
                } else {
                    ("requests", "request")
                };
                json!({"event_id": format!("m{i}"), "tenant_id": format!("tenant-{:04}", i % tenants),
                       "service": "api", "metric": metric, "unit": unit,
                       "quantity": (1 + i % 7).to_string(), "timestamp": format_rfc3339(at),
                       "request_id": format!("r{i}")})
            })
            .collect();
        bodies.push(serde_json::to_vec(&events).unwrap_or_default());
        from = to;
    }
    bodies
}

/// The baseline's table: the same events as plain rows, filled from the very batch bodies the
/// service ingested (the engine parses them), so the `GROUP BY` reads the same events.
async fn create_baseline_table(fixture: &Fixture) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TABLE bench_month_events (tenant_id TEXT NOT NULL, service TEXT NOT NULL, \
         metric TEXT NOT NULL, unit TEXT NOT NULL, quantity BIGINT NOT NULL, day TEXT NOT NULL)",
    )
    .execute(fixture.app.db().writer())
    .await?;
    Ok(())
}

async fn insert_baseline_rows(fixture: &Fixture, bodies: &[Vec<u8>]) -> anyhow::Result<()> {
    let db = fixture.app.db();
    let sql = match db.backend() {
        Backend::Sqlite => {
            "INSERT INTO bench_month_events SELECT json_extract(value, '$.tenant_id'), \
             json_extract(value, '$.service'), json_extract(value, '$.metric'), \
             json_extract(value, '$.unit'), CAST(json_extract(value, '$.quantity') AS INTEGER), \
             substr(json_extract(value, '$.timestamp'), 1, 10) FROM json_each($1)"
        }
        Backend::Postgres => {
            "INSERT INTO bench_month_events SELECT e->>'tenant_id', e->>'service', e->>'metric', \
             e->>'unit', (e->>'quantity')::bigint, left(e->>'timestamp', 10) \
             FROM jsonb_array_elements($1::jsonb) AS e"
        }
    };
    let mut tx = db.begin().await?;
    for body in bodies {
        sqlx::query(sql)
            .bind(std::str::from_utf8(body)?)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Loads `events` over the month's days, day by day with the clock at each day's end; returns
/// (service seconds, baseline table seconds, accepted).
async fn load(
    fixture: &Fixture,
    clock: &ManualClock,
    run: &MonthCloseRun<'_>,
    month: StatementMonth,
) -> anyhow::Result<(StdDuration, StdDuration, u64)> {
    create_baseline_table(fixture).await?;
    let days = month.days() as usize;
    let (mut service, mut baseline, mut accepted) = (StdDuration::ZERO, StdDuration::ZERO, 0);
    let mut first = 0;
    for d in 0..days {
        let n = run.events / days + usize::from(d < run.events % days);
        let day = month.first_day() + Duration::days(d as i64);
        clock.set(day_start(day) + Duration::seconds(86_399));
        let bodies = day_bodies(day, first, n, run.tenants, run.batch);
        let started = Instant::now();
        accepted += send_bodies(fixture, &bodies, run.concurrency, false).await?;
        service += started.elapsed();
        let started = Instant::now();
        insert_baseline_rows(fixture, &bodies).await?;
        baseline += started.elapsed();
        first += n;
        eprintln!("loaded {first} events (day {})", d + 1);
    }
    Ok((service, baseline, accepted))
}

/// The baseline: one `GROUP BY` over the same events, by tenant and series.
async fn group_by_totals(fixture: &Fixture) -> anyhow::Result<(StdDuration, Totals)> {
    let started = Instant::now();
    let rows: Vec<(String, String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT tenant_id, service, metric, unit, CAST(SUM(quantity) AS BIGINT), \
         CAST(COUNT(*) AS BIGINT) FROM bench_month_events GROUP BY tenant_id, service, metric, unit",
    )
    .fetch_all(fixture.app.db().readers())
    .await?;
    let elapsed = started.elapsed();
    let mut totals = Totals::new();
    for (tenant, service, metric, unit, quantity, events) in rows {
        totals.insert(
            (tenant, service, metric, unit),
            (Decimal::from(quantity), u64::try_from(events)?),
        );
    }
    Ok((elapsed, totals))
}

/// Runs a job until it has nothing left to do; returns the time and what it did.
async fn drain(
    mut step: impl AsyncFnMut() -> anyhow::Result<usize>,
) -> anyhow::Result<(StdDuration, usize)> {
    let started = Instant::now();
    let mut done = 0;
    loop {
        let n = step().await?;
        if n == 0 {
            return Ok((started.elapsed(), done));
        }
        done += n;
    }
}

/// The final statements' line quantities, by tenant and series (read through the service).
async fn statement_totals(
    fixture: &Fixture,
    tenants: usize,
    month: StatementMonth,
) -> anyhow::Result<(Totals, Decimal)> {
    let mut totals = Totals::new();
    let mut billed = Decimal::ZERO;
    for i in 0..tenants {
        let tenant = read_tenant(&format!("tenant-{i:04}"))?;
        let document = fixture
            .app
            .statements()
            .get(&fixture.admin, &tenant, month)
            .await?;
        ensure!(
            document.statement.status.as_str() == "final",
            "statement of {tenant} is not final"
        );
        billed += document.statement.total;
        for line in &document.statement.lines {
            let key = (
                tenant.to_string(),
                line.key.service.to_string(),
                line.key.metric.to_string(),
                line.key.unit.to_string(),
            );
            let entry = totals.entry(key).or_insert((Decimal::ZERO, 0));
            entry.0 += line.quantity;
        }
    }
    Ok((totals, billed))
}

/// Milliseconds of `runs` statement reads through the service, sorted.
async fn service_reads(
    fixture: &Fixture,
    month: StatementMonth,
    runs: usize,
) -> anyhow::Result<Vec<f64>> {
    let tenant = read_tenant(READ_TENANT)?;
    let mut timings = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let document = fixture
            .app
            .statements()
            .get(&fixture.admin, &tenant, month)
            .await?;
        timings.push(started.elapsed().as_secs_f64() * 1000.0);
        ensure!(!document.canonical.is_empty(), "empty statement");
    }
    timings.sort_by(f64::total_cmp);
    Ok(timings)
}

/// Milliseconds of `runs` `GET /v1/tenants/{id}/statements/{month}` over loopback HTTP, sorted.
async fn http_reads(
    fixture: &Fixture,
    month: StatementMonth,
    runs: usize,
) -> anyhow::Result<Vec<f64>> {
    let reader = fixture
        .app
        .operators()
        .create(&fixture.admin, "bench-statements", "billing")
        .await?;
    let server = crate::fixture::LoopbackServer::start(&fixture.app).await?;
    let url = format!(
        "http://{}/v1/tenants/{READ_TENANT}/statements/{}",
        server.address,
        month.label()
    );
    let http = reqwest::Client::new();
    let mut timings = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let response = http.get(&url).bearer_auth(&reader.token).send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        timings.push(started.elapsed().as_secs_f64() * 1000.0);
        ensure!(status.is_success(), "GET {url}: {status}");
        ensure!(!body.is_empty(), "GET {url}: empty body");
    }
    server.stop().await;
    timings.sort_by(f64::total_cmp);
    Ok(timings)
}

fn read_tenant(id: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(id).map_err(|e| anyhow::anyhow!("tenant id {id}: {e:?}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    (sorted.get(index).copied().unwrap_or(0.0) * 1000.0).round() / 1000.0
}

/// One pack built through the service and verified offline: (build ms, verify ms, bytes, events).
async fn pack(fixture: &Fixture, month: StatementMonth) -> anyhow::Result<Value> {
    let tenant = read_tenant(READ_TENANT)?;
    let started = Instant::now();
    let zip = fixture
        .app
        .statements()
        .pack(&fixture.admin, &tenant, month)
        .await?;
    let built = started.elapsed();
    let keys = TrustedKeys {
        minisign_public_key: fixture.app.evidence().public_key(),
        note_verifier: companyos_ledger::note::NoteVerifier::parse(
            &fixture.app.ledger().verifier_key(),
        )
        .map_err(|e| anyhow::anyhow!("verifier key: {e}"))?,
    };
    let started = Instant::now();
    let summary = verify_pack(&zip, &keys).map_err(|e| anyhow::anyhow!("pack: {e}"))?;
    let verified = started.elapsed();
    Ok(
        json!({"build_ms": (built.as_secs_f64() * 1e6).round() / 1000.0,
              "verify_ms": (verified.as_secs_f64() * 1e6).round() / 1000.0,
              "bytes": zip.len(), "events": summary.events,
              "audit_records": summary.audit_records}),
    )
}

fn timing_summary(sorted: &[f64]) -> Value {
    json!({"p50_ms": percentile(sorted, 0.5), "max_ms": percentile(sorted, 1.0)})
}

/// `companyos-bench month-close`.
pub async fn month_close(run: MonthCloseRun<'_>) -> anyhow::Result<u8> {
    if run.tenants == 0 || run.tenants > 9999 || run.events == 0 || run.batch == 0 {
        bail!("--tenants must be 1..=9999, --events and --batch positive");
    }
    let month = bench_month();
    let clock = Arc::new(ManualClock::new(day_start(month.first_day())));
    let fixture = open(&run, clock.clone()).await?;
    let (load_time, baseline_load, accepted) = load(&fixture, &clock, &run, month).await?;
    ensure!(
        accepted == run.events as u64,
        "accepted {accepted} of {} events",
        run.events
    );
    // Three days after the month: its days' late window has passed.
    clock.set(day_start(month.end() + Duration::days(3)) + Duration::hours(1));
    settle_store(&fixture).await?;
    let open_reads = service_reads(&fixture, month, run.runs).await?;
    let app = fixture.app.clone();
    let (day_close, days) =
        drain(async || Ok(app.metering().metering().close_days().await?)).await?;
    let (month_close, finalised) =
        drain(async || Ok(app.statements().close_months().await?)).await?;
    let (group_by, baseline_totals) = group_by_totals(&fixture).await?;
    let (statement_totals, billed) = statement_totals(&fixture, run.tenants, month).await?;
    let agree = statement_totals
        .iter()
        .map(|(k, (q, _))| (k, q))
        .eq(baseline_totals.iter().map(|(k, (q, _))| (k, q)));
    let final_reads = service_reads(&fixture, month, run.runs).await?;
    let http = http_reads(&fixture, month, run.runs).await?;
    let pack = pack(&fixture, month).await?;
    let result = json!({
        "bench": "month-close", "backend": run.backend, "month": month.label(),
        "tenants": run.tenants, "events": run.events, "batch": run.batch,
        "concurrency": run.concurrency,
        "load_seconds": load_time.as_secs_f64(), "load_events_per_second": rate(run.events, load_time).round(),
        "baseline_table_load_seconds": baseline_load.as_secs_f64(),
        "day_close_seconds": day_close.as_secs_f64(), "days_closed": days,
        "month_close_seconds": month_close.as_secs_f64(),
        "month_close_events_per_second": rate(run.events, month_close).round(),
        "statements_finalised": finalised,
        "group_by_seconds": group_by.as_secs_f64(),
        "group_by_events_per_second": rate(run.events, group_by).round(),
        "totals_agree": agree, "series": baseline_totals.len(), "billed_total": billed.to_string(),
        "runs": run.runs,
        "open_statement_read": timing_summary(&open_reads),
        "final_statement_read": timing_summary(&final_reads),
        "final_statement_http_read": timing_summary(&http),
        "pack": pack,
        "peak_memory_mib": peak_memory_kib() / 1024,
    });
    println!("{}", serde_json::to_string(&result)?);
    fixture.close().await.context("closing the store")?;
    ensure!(agree, "the statements' totals differ from the GROUP BY's");
    ensure!(finalised == run.tenants, "finalised {finalised} statements");
    Ok(0)
}
