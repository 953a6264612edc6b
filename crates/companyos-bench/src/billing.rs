//! Benchmarks of issue 16 (plans, entitlements, quotas), each beside a baseline measured in the
//! same run: forward auth with `feature=` and `metric=` over loopback HTTP beside `GET /healthz`,
//! and ingestion with quota state beside the same ingestion without it.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::ensure;
use companyos_core::Settings;
use companyos_core::clock::SystemClock;
use companyos_domain::PlanName;
use companyos_domain::catalog::RawPlanSpec;
use serde_json::json;

use crate::fixture::{Fixture, batch_bodies, rate, settle_store};
use crate::ingest::send_bodies;

/// A plan with a feature and a hard monthly quota no benchmark uses up.
fn bench_plan() -> anyhow::Result<RawPlanSpec> {
    Ok(serde_json::from_value(json!({
        "name": "Bench", "currency": "USD", "features": ["api"],
        "quotas": [{"metric": "requests", "period": "month", "included": "1000000000000",
                    "thresholds_percent": [80, 100], "enforcement": "hard"}]
    }))?)
}

/// A fresh store with `tenants` tenants on the bench plan; returns their API keys.
async fn open(
    backend: &str,
    tenants: usize,
    quota_state: bool,
) -> anyhow::Result<(Fixture, Vec<String>)> {
    let fixture = open_fixture(backend, quota_state).await?;
    let plan = PlanName::parse("bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    fixture
        .app
        .billing()
        .put_plan(&fixture.admin, &plan, bench_plan()?)
        .await?;
    let keys = crate::fixture::create_bench_tenants(&fixture, tenants, Some("bench")).await?;
    Ok((fixture, keys))
}

async fn open_fixture(backend: &str, quota_state: bool) -> anyhow::Result<Fixture> {
    let temp = tempfile::tempdir()?;
    let mut settings = Settings::new(temp.path().join("data"));
    settings.ingest_queue_capacity = 64;
    settings.quota_state = quota_state;
    crate::fixture::open_store(settings, backend, Arc::new(SystemClock), Some(temp)).await
}

/// Requests per second, p50 and p99 (milliseconds) of `requests` GETs of `path` from
/// `concurrency` keep-alive clients, client `c` using key `c + k * concurrency` in turn.
async fn load(
    base: &str,
    path: &str,
    keys: &[String],
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..concurrency.max(1) {
        let url = format!("{base}{path}");
        let keys: Vec<String> = keys
            .iter()
            .skip(client)
            .step_by(concurrency.max(1))
            .cloned()
            .collect();
        let count = requests / concurrency.max(1);
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::with_capacity(count);
            for i in 0..count {
                let mut request = http.get(&url);
                if let Some(key) = keys.get(i % keys.len().max(1)) {
                    request = request.bearer_auth(key);
                }
                let sent = Instant::now();
                let response = request.send().await?;
                let status = response.status().as_u16();
                let _ = response.bytes().await?;
                latencies.push(sent.elapsed());
                anyhow::ensure!(status == 200, "{url} answered {status}");
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies: Vec<StdDuration> = Vec::with_capacity(requests);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        latencies
            .get(index)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok((
        rate(latencies.len(), elapsed),
        percentile(0.50),
        percentile(0.99),
    ))
}

fn figures(name: &str, (rate, p50, p99): (f64, f64, f64)) -> serde_json::Value {
    json!({
        name: {
            "requests_per_second": rate.round(),
            "p50_ms": (p50 * 1000.0).round() / 1000.0,
            "p99_ms": (p99 * 1000.0).round() / 1000.0,
        }
    })
}

/// `bench forward-auth`.
pub(super) async fn forward_auth(
    backend: &str,
    tenants: usize,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<u8> {
    let (fixture, keys) = open(backend, tenants, true).await?;
    let server = crate::fixture::LoopbackServer::start(&fixture.app).await?;
    let base = format!("http://{}", server.address);
    // Warm up both paths (connections, the plan version cache), then measure them in turn.
    load(&base, "/healthz", &[], 1000, concurrency).await?;
    load(
        &base,
        "/v1/authz/check?feature=api&metric=requests",
        &keys,
        1000,
        concurrency,
    )
    .await?;
    let healthz_before = load(&base, "/healthz", &[], requests, concurrency).await?;
    let check = load(
        &base,
        "/v1/authz/check?feature=api&metric=requests",
        &keys,
        requests,
        concurrency,
    )
    .await?;
    let healthz_after = load(&base, "/healthz", &[], requests, concurrency).await?;
    server.stop().await;
    let healthz_rate = (healthz_before.0 + healthz_after.0) / 2.0;
    let mut result = json!({
        "bench": "forward-auth", "backend": backend, "tenants": tenants,
        "requests": requests, "concurrency": concurrency,
        "ratio_to_healthz": (check.0 / healthz_rate * 100.0).round() / 100.0,
    });
    for (name, measured) in [
        ("healthz_before", healthz_before),
        ("forward_auth", check),
        ("healthz_after", healthz_after),
    ] {
        if let (Some(target), serde_json::Value::Object(add)) =
            (result.as_object_mut(), figures(name, measured))
        {
            target.extend(add);
        }
    }
    println!("{}", serde_json::to_string(&result)?);
    fixture.close().await?;
    Ok(0)
}

/// Ingests `events` over the fixture's tenants; the rate.
async fn ingest_rate(
    fixture: &Fixture,
    events: usize,
    tenants: usize,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let bodies = batch_bodies(events, batch, tenants);
    settle_store(fixture).await?;
    let started = Instant::now();
    let accepted = send_bodies(fixture, &bodies, concurrency, false).await?;
    let elapsed = started.elapsed();
    ensure!(
        accepted as usize == events,
        "{accepted} of {events} accepted"
    );
    Ok(rate(events, elapsed))
}

/// `bench quota-ingest`: the same ingestion without quota state, with it, and without again.
pub(super) async fn quota_ingest(
    backend: &str,
    tenants: usize,
    events: usize,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<u8> {
    let mut rates = Vec::new();
    for quota_state in [false, true, false, true] {
        let (fixture, _) = open(backend, tenants, quota_state).await?;
        let measured = ingest_rate(&fixture, events, tenants, batch, concurrency).await?;
        if quota_state {
            let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM quota_usage")
                .fetch_one(fixture.app.db().readers())
                .await?;
            ensure!(rows > 0, "quota state was kept");
        }
        fixture.close().await?;
        eprintln!("quota state {quota_state}: {measured:.0} events/s");
        rates.push((quota_state, measured));
    }
    let mean = |on: bool| {
        let picked: Vec<f64> = rates
            .iter()
            .filter(|(q, _)| *q == on)
            .map(|(_, r)| *r)
            .collect();
        picked.iter().sum::<f64>() / picked.len().max(1) as f64
    };
    let (with, without) = (mean(true), mean(false));
    let result = json!({
        "bench": "quota-ingest", "backend": backend, "tenants": tenants, "events": events,
        "batch": batch, "concurrency": concurrency,
        "runs_events_per_second": rates.iter().map(|(q, r)| json!({"quota_state": q, "events_per_second": r.round()})).collect::<Vec<_>>(),
        "with_quotas_events_per_second": with.round(),
        "without_quotas_events_per_second": without.round(),
        "ratio": (with / without * 100.0).round() / 100.0,
    });
    println!("{}", serde_json::to_string(&result)?);
    Ok(0)
}
