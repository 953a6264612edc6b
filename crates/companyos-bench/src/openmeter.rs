//! `companyos-bench cloudevents` and `companyos-bench meter-query` (issue 19): CloudEvents
//! batches over loopback HTTP beside native `/v1/events` batches of the very same usage events
//! in the same run, and a meter query over one tenant's month of events.

use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context as _, bail};
use companyos_core::metering::meters::MeterQuery;
use companyos_domain::cloudevent::usage_event_id;
use companyos_domain::meter::{RawMeter, WindowSize, WindowZone};
use companyos_domain::time_util::format_rfc3339;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::fixture::{Fixture, fixture, peak_memory_kib, rate, settle_store, uuid};

const SOURCE: &str = "bench";
const SLUG: &str = "requests";

/// One logical event, sent either as a CloudEvent or as the native event it maps to.
struct Logical {
    id: String,
    tenant: String,
    value: u64,
}

fn logical_events(events: usize, tenants: usize) -> Vec<Logical> {
    (0..events)
        .map(|i| Logical {
            id: uuid(),
            tenant: format!("tenant-{:04}", i % tenants.max(1)),
            value: 1 + (i as u64 % 7),
        })
        .collect()
}

fn cloudevents_body(batch: &[Logical], at: &str) -> Vec<u8> {
    let events: Vec<Value> = batch
        .iter()
        .map(|e| {
            json!({"specversion": "1.0", "id": e.id, "source": SOURCE, "type": "request",
                   "subject": e.tenant, "time": at, "data": {"value": e.value.to_string()}})
        })
        .collect();
    serde_json::to_vec(&events).unwrap_or_default()
}

/// The native events the CloudEvents map to (CONTRACT §11), member for member.
fn native_body(batch: &[Logical], at: &str) -> Vec<u8> {
    let events: Vec<Value> = batch
        .iter()
        .map(|e| {
            json!({"event_id": usage_event_id(SOURCE, &e.id, SLUG), "tenant_id": e.tenant,
                   "service": "cloudevents", "metric": SLUG, "quantity": e.value.to_string(),
                   "unit": "unit", "timestamp": at, "request_id": e.id,
                   "attributes": {"om.subject": e.tenant}})
        })
        .collect();
    serde_json::to_vec(&events).unwrap_or_default()
}

async fn create_meter(fixture: &Fixture, service: &str, unit: &str) -> anyhow::Result<()> {
    let raw = RawMeter {
        slug: Some(SLUG.to_owned()),
        event_type: Some("request".to_owned()),
        aggregation: Some("SUM".to_owned()),
        value_property: Some("$.value".to_owned()),
        service: Some(service.to_owned()),
        unit: Some(unit.to_owned()),
        ..RawMeter::default()
    };
    fixture
        .app
        .metering()
        .create_meter(&fixture.admin, &raw)
        .await?;
    Ok(())
}

/// Serves the fixture's app on loopback; posts every body from `clients` clients; returns the
/// elapsed time once every answer is in.
async fn post_all(
    fixture: &Fixture,
    path: &str,
    content_type: &'static str,
    bodies: Vec<Vec<u8>>,
    clients: usize,
) -> anyhow::Result<StdDuration> {
    let created = fixture
        .app
        .operators()
        .create(&fixture.admin, "bench-http", "ingest")
        .await?;
    let server = crate::fixture::LoopbackServer::start(&fixture.app).await?;
    let url = format!("http://{}{path}", server.address);
    let clients = clients.max(1);
    let mut per_client: Vec<Vec<Vec<u8>>> = vec![Vec::new(); clients];
    for (i, body) in bodies.into_iter().enumerate() {
        per_client[i % clients].push(body);
    }
    settle_store(fixture).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_bodies in per_client {
        let (url, token) = (url.clone(), created.token.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for body in client_bodies {
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", content_type)
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                let text = response.text().await?;
                // Native answers 200 with counts, CloudEvents 204: both must have kept all.
                let refused = serde_json::from_str::<Value>(&text).ok().is_some_and(|v| {
                    v["rejected"].as_u64().unwrap_or(0) + v["conflicts"].as_u64().unwrap_or(0) > 0
                });
                if !status.is_success() || refused {
                    anyhow::bail!("{status}: {}", text.chars().take(300).collect::<String>());
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    server.stop().await;
    Ok(elapsed)
}

/// The two measured paths: name, route, content type.
const PATHS: [(&str, &str, &str); 2] = [
    ("native", "/v1/events", "application/json"),
    (
        "cloudevents",
        "/api/v1/events",
        "application/cloudevents-batch+json",
    ),
];

/// One measured run of one path into a fresh store: its time and the events it stored.
async fn one_run(
    backend: &str,
    which: usize,
    logical: &[Logical],
    at: &str,
    (clients, batch, tenants): (usize, usize, usize),
) -> anyhow::Result<(StdDuration, i64)> {
    let (name, path, content_type) = PATHS[which];
    let fixture = fixture(backend, None, tenants).await?;
    create_meter(&fixture, "cloudevents", "unit").await?;
    let bodies: Vec<Vec<u8>> = logical
        .chunks(batch)
        .map(|chunk| {
            if name == "native" {
                native_body(chunk, at)
            } else {
                cloudevents_body(chunk, at)
            }
        })
        .collect();
    let elapsed = post_all(&fixture, path, content_type, bodies, clients).await?;
    let stored: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(events), 0) AS BIGINT) FROM usage_daily WHERE metric = $1",
    )
    .bind(SLUG)
    .fetch_one(fixture.app.db().readers())
    .await?;
    fixture.close().await?;
    Ok((elapsed, stored))
}

/// CloudEvents batches beside native batches of the same usage events, each run into a fresh
/// store; `rounds` rounds, alternating which path goes first.
pub async fn cloudevents(
    backend: &str,
    events: usize,
    (clients, batch, tenants): (usize, usize, usize),
    rounds: usize,
) -> anyhow::Result<u8> {
    if batch == 0 || events == 0 {
        bail!("--events and --batch must be positive");
    }
    let logical = logical_events(events, tenants);
    let at = format_rfc3339(OffsetDateTime::now_utc());
    let mut result = json!({"bench": "cloudevents", "backend": backend, "events": events,
        "clients": clients, "batch": batch, "tenants": tenants, "rounds": rounds.max(1)});
    let mut seconds = [0.0f64; 2];
    let mut runs = Vec::new();
    for round in 0..rounds.max(1) {
        // The second run of a round meets a store server and a page cache that the first one
        // left busy (PostgreSQL checkpoints, autovacuum): each path goes first in every other
        // round, so neither always pays for it.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let (elapsed, stored) =
                one_run(backend, which, &logical, &at, (clients, batch, tenants)).await?;
            seconds[which] += elapsed.as_secs_f64();
            runs.push(json!({"round": round + 1, "path": PATHS[which].0,
                "seconds": elapsed.as_secs_f64(),
                "events_per_second": rate(events, elapsed).round(), "stored": stored}));
        }
    }
    let total_events = events * rounds.max(1);
    for (which, (name, _, _)) in PATHS.iter().enumerate() {
        let elapsed = StdDuration::from_secs_f64(seconds[which]);
        result[*name] = json!({"seconds": seconds[which],
            "events_per_second": rate(total_events, elapsed).round()});
    }
    // The ratio of the two paths' total times over all rounds (the same events in each).
    let ratio = seconds[0] / seconds[1].max(1e-9);
    result["cloudevents_to_native"] = json!((ratio * 1000.0).round() / 1000.0);
    result["runs"] = Value::Array(runs);
    result["peak_memory_mib"] = json!(peak_memory_kib() / 1024);
    println!("{}", serde_json::to_string(&result)?);
    Ok(0)
}

/// Native events of one tenant spread over the 30 days before today.
fn month_body(from: usize, n: usize, today: OffsetDateTime) -> Vec<u8> {
    let events: Vec<Value> = (from..from + n)
        .map(|i| {
            let at = today - Duration::days(1 + (i % 30) as i64)
                + Duration::seconds((i % 86_000) as i64);
            json!({"event_id": format!("m{i}"), "tenant_id": "tenant-0000", "service": "api",
                   "metric": SLUG, "quantity": (1 + i % 7).to_string(), "unit": "request",
                   "timestamp": format_rfc3339(at), "request_id": format!("r{i}")})
        })
        .collect();
    serde_json::to_vec(&events).unwrap_or_default()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    (sorted.get(index).copied().unwrap_or(0.0) * 1000.0).round() / 1000.0
}

/// The baseline: the plain SELECT of the same rollup rows, in the same engine (sorted ms).
async fn baseline_select_ms(fixture: &Fixture, runs: usize) -> anyhow::Result<Vec<f64>> {
    let mut baseline = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT day, quantity_sum FROM usage_daily WHERE tenant_id = $1 AND metric = $2 \
             UNION ALL SELECT day, quantity_sum FROM usage_late WHERE tenant_id = $1 AND metric = $2",
        )
        .bind("tenant-0000")
        .bind(SLUG)
        .fetch_all(fixture.app.db().readers())
        .await?;
        baseline.push(started.elapsed().as_secs_f64() * 1000.0);
        let _ = rows.len();
    }
    baseline.sort_by(f64::total_cmp);
    Ok(baseline)
}

/// The same SUM from a range that is not whole days: the rollups cannot answer it, so the
/// query reads every payload of the tenant once.
async fn payload_scan_ms(fixture: &Fixture, query: &MeterQuery) -> anyhow::Result<(f64, usize)> {
    let mut shifted = query.clone();
    shifted.from = query.from.map(|from| from + Duration::seconds(1));
    let started = Instant::now();
    let scanned = fixture
        .app
        .metering()
        .query_meter(&fixture.admin, SLUG, &shifted)
        .await?;
    Ok((started.elapsed().as_secs_f64() * 1000.0, scanned.rows.len()))
}

/// A meter query (SUM, DAY windows) over one tenant's month of `events`, beside the plain
/// rollup SELECT in the same engine; and the same query read from the payloads.
pub async fn meter_query(backend: &str, events: usize, runs: usize) -> anyhow::Result<u8> {
    let fixture = fixture(backend, None, 1).await?;
    create_meter(&fixture, "api", "request").await?;
    let today = OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    let bodies: Vec<Vec<u8>> = (0..events)
        .step_by(1000)
        .map(|from| month_body(from, 1000.min(events - from), today))
        .collect();
    let load_started = Instant::now();
    crate::ingest::send_bodies(&fixture, &bodies, 4, false).await?;
    let load_seconds = load_started.elapsed().as_secs_f64();
    settle_store(&fixture).await?;
    let query = MeterQuery {
        from: Some(today - Duration::days(31)),
        to: Some(today + Duration::days(1)),
        window_size: Some(WindowSize::Day),
        time_zone: WindowZone::UTC,
        subjects: vec!["tenant-0000".to_owned()],
        group_by: Vec::new(),
        filter_group_by: Default::default(),
    };
    let mut timings = Vec::with_capacity(runs);
    let mut total = rust_decimal::Decimal::ZERO;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let result = fixture
            .app
            .metering()
            .query_meter(&fixture.admin, SLUG, &query)
            .await?;
        timings.push(started.elapsed().as_secs_f64() * 1000.0);
        total = result.rows.iter().map(|r| r.value).sum();
    }
    timings.sort_by(f64::total_cmp);
    let baseline = baseline_select_ms(&fixture, runs).await?;
    let (scan_ms, scan_rows) = payload_scan_ms(&fixture, &query).await?;
    let result = json!({"bench": "meter-query", "backend": backend, "events": events,
        "load_seconds": load_seconds, "runs": runs, "sum_total": total.to_string(),
        "rollup_query_p50_ms": percentile(&timings, 0.5), "rollup_query_max_ms": percentile(&timings, 1.0),
        "baseline_select_p50_ms": percentile(&baseline, 0.5),
        "payload_scan_query_ms": (scan_ms * 1000.0).round() / 1000.0,
        "payload_scan_rows": scan_rows,
        "peak_memory_mib": peak_memory_kib() / 1024});
    println!("{}", serde_json::to_string(&result)?);
    fixture.close().await.context("closing the store")?;
    Ok(0)
}
