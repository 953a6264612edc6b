//! `companyos-bench provision` (tenant creation with its dossier, p50 and p99) and
//! `companyos-bench reports` (a year of daily rollups and the integrity report, beside a plain
//! read-and-group of the stored payloads).

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use companyos_core::metering::ingest::split_body;
use companyos_domain::time_util::format_rfc3339;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::args::{ProvisionArgs, ReportsArgs};
use crate::fixture::{Fixture, batch_body, fixture, fixture_with_clock, rate};

/// `companyos-bench provision`: creates `tenants` tenants one by one, timing each.
pub(crate) async fn provision(args: &ProvisionArgs) -> anyhow::Result<u8> {
    let (backend, tenants) = (&args.backend, args.tenants);
    let fixture = fixture(backend, None, 0).await?;
    let mut timings = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let started = Instant::now();
        fixture
            .app
            .lifecycle()
            .create(
                &fixture.admin,
                companyos_core::lifecycle::NewTenant {
                    id: format!("prov-{i:04}"),
                    name: format!("Provisioned {i}"),
                    plan: Some("standard".to_owned()),
                    ..Default::default()
                },
            )
            .await?;
        timings.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    timings.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        let index = ((timings.len() as f64 - 1.0) * p).round() as usize;
        timings.get(index).copied().unwrap_or(0.0)
    };
    println!(
        "{}",
        json!({
            "bench": "provision", "backend": backend, "tenants": tenants,
            "p50_ms": (percentile(0.5) * 100.0).round() / 100.0,
            "p99_ms": (percentile(0.99) * 100.0).round() / 100.0,
            "max_ms": (percentile(1.0) * 100.0).round() / 100.0,
        })
    );
    fixture.close().await?;
    Ok(0)
}

/// `companyos-bench reports`: a year of traffic, then the rollups, the integrity report and
/// the plain read-and-group baseline, each timed.
pub(crate) async fn reports(args: &ReportsArgs) -> anyhow::Result<u8> {
    let backend = &args.backend;
    let now = OffsetDateTime::now_utc();
    let start = now - time::Duration::days(365);
    let clock = Arc::new(companyos_core::clock::ManualClock::new(start));
    let fixture = fixture_with_clock(backend, None, 1, clock.clone()).await?;
    let events = ingest_a_year(&fixture, &clock, start, args.events).await?;
    clock.set(now);
    let today = now.date();
    let year_ago = today - time::Duration::days(364);
    let runs = 20;
    let started = Instant::now();
    for _ in 0..runs {
        fixture
            .app
            .metering()
            .daily_usage(&fixture.admin, "tenant-0000", year_ago, today)
            .await?;
    }
    let rollup_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    let started = Instant::now();
    let (report, _) = fixture
        .app
        .metering()
        .integrity_report(
            &fixture.admin,
            "tenant-0000",
            year_ago - time::Duration::days(1),
            today,
        )
        .await?;
    let report_elapsed = started.elapsed();
    let (groups, group_by) = read_and_group(&fixture).await?;
    println!(
        "{}",
        json!({
            "bench": "reports", "backend": backend, "events": events,
            "daily_rollups_for_a_year_ms": (rollup_ms * 1000.0).round() / 1000.0,
            "integrity_report_seconds": report_elapsed.as_secs_f64(),
            "integrity_report_events_per_second": rate(events, report_elapsed).round(),
            "integrity_result": report.result,
            "baseline_read_and_group_seconds": group_by.as_secs_f64(),
            "baseline_read_and_group_events_per_second": rate(events, group_by).round(),
            "baseline_groups": groups,
        })
    );
    fixture.close().await?;
    Ok(0)
}

/// A year of traffic, ingested day by day on a moving clock (so every event is on time),
/// over 3 services x 2 metrics: the rollups hold a row per day and metric. The events stored.
async fn ingest_a_year(
    fixture: &Fixture,
    clock: &companyos_core::clock::ManualClock,
    start: OffsetDateTime,
    events: usize,
) -> anyhow::Result<usize> {
    let per_series = (events / 365 / 6).max(1);
    let mut counter = 0u64;
    for day in 0..365 {
        let at = start + time::Duration::days(day);
        clock.set(at);
        for series in 0..6 {
            let (body, _) = batch_body(per_series, 1, &format_rfc3339(at), &mut counter);
            let body = String::from_utf8(body)?.replace(
                "\"service\":\"api\",\"metric\":\"requests\"",
                &format!(
                    "\"service\":\"svc{}\",\"metric\":\"m{}\"",
                    series % 3,
                    series / 3
                ),
            );
            let list = split_body(body.as_bytes(), false, 10_000)?;
            fixture.app.ingest(&fixture.ingest, list).await?;
        }
    }
    Ok(per_series * 6 * 365)
}

/// The floor under the report: read every stored payload and group the on-time events by
/// day x service x metric x unit with a plain JSON parse (no validation, no ledger checks).
/// The number of groups and the time it took.
async fn read_and_group(fixture: &Fixture) -> anyhow::Result<(usize, StdDuration)> {
    let started = Instant::now();
    let mut conn = fixture.app.db().readers().acquire().await?;
    let stored =
        companyos_core::bundles::read_events(&mut conn, "tenant-0000", 0, u64::MAX).await?;
    drop(conn);
    let mut groups: std::collections::HashMap<(String, String, String, String), i64> =
        std::collections::HashMap::new();
    for event in &stored {
        if event.class != companyos_ledger::leaf::EventClass::OnTime {
            continue;
        }
        let value: Value = serde_json::from_str(&event.canonical)?;
        let field = |name: &str| value[name].as_str().unwrap_or_default().to_owned();
        let day = field("timestamp").chars().take(10).collect::<String>();
        *groups
            .entry((day, field("service"), field("metric"), field("unit")))
            .or_default() += 1;
    }
    let rows: Vec<_> = groups.into_iter().collect();
    Ok((rows.len(), started.elapsed()))
}
