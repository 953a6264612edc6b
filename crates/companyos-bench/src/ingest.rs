//! `companyos-bench ingest`: ingestion through the whole service path (with an optional
//! preload, a resend of duplicates) beside the naive INSERT baseline of [`crate::baseline`].

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use companyos_core::metering::ingest::split_body;
use companyos_domain::time_util::format_rfc3339;
use serde_json::json;
use time::OffsetDateTime;

use crate::args::IngestArgs;
use crate::baseline::{naive_baseline, record_baseline};
use crate::fixture::{
    Fixture, batch_body, dedupe_merges, fixture, peak_memory_kib, rate, settle_store,
};

/// Ingests `events` through the service path with `concurrency` requests at a time.
pub(crate) async fn ingest_through_service(
    fixture: &Fixture,
    events: usize,
    batch: usize,
    tenants: usize,
    concurrency: usize,
    counter: &mut u64,
    keep_bodies: bool,
) -> anyhow::Result<(StdDuration, Vec<Vec<u8>>, u64)> {
    let at = format_rfc3339(OffsetDateTime::now_utc());
    let mut bodies = Vec::new();
    let mut remaining = events;
    while remaining > 0 {
        let n = remaining.min(batch);
        bodies.push(batch_body(n, tenants, &at, counter).0);
        remaining -= n;
    }
    let started = Instant::now();
    let accepted = send_bodies(fixture, &bodies, concurrency, false).await?;
    let elapsed = started.elapsed();
    Ok((
        elapsed,
        if keep_bodies { bodies } else { Vec::new() },
        accepted,
    ))
}

pub(crate) async fn send_bodies(
    fixture: &Fixture,
    bodies: &[Vec<u8>],
    concurrency: usize,
    expect_duplicates: bool,
) -> anyhow::Result<u64> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(bodies.len());
    for body in bodies {
        let permit = semaphore.clone().acquire_owned().await?;
        let app = fixture.app.clone();
        let actor = fixture.ingest.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let events = split_body(&body, false, 10_000)?;
            let outcome = app.ingest(&actor, events).await?;
            Ok::<_, companyos_core::ServiceError>(outcome)
        }));
    }
    let mut counted = 0u64;
    for task in tasks {
        let outcome = task.await??;
        let wanted = if expect_duplicates {
            companyos_core::metering::ingest::EventStatus::Duplicate
        } else {
            companyos_core::metering::ingest::EventStatus::Accepted
        };
        counted += outcome.count(wanted) as u64;
    }
    Ok(counted)
}

/// `companyos-bench ingest`: preload, settle, measure, then the duplicates and the baseline.
pub(crate) async fn ingest(args: &IngestArgs) -> anyhow::Result<u8> {
    let fixture = fixture(&args.backend, args.dir.clone(), args.tenants).await?;
    let mut counter = 0u64;
    let preload_rates_by_million = preload(&fixture, args, &mut counter).await?;
    settle_store(&fixture).await?;
    let merges_before = dedupe_merges(&fixture.app);
    let (elapsed, bodies, accepted) = ingest_through_service(
        &fixture,
        args.events,
        args.batch,
        args.tenants,
        args.concurrency,
        &mut counter,
        args.duplicates,
    )
    .await?;
    let mut result = json!({
        "bench": "ingest",
        "backend": args.backend,
        "events": args.events,
        "accepted": accepted,
        "preloaded": args.preload,
        "tenants": args.tenants,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "seconds": elapsed.as_secs_f64(),
        "events_per_second": rate(args.events, elapsed).round(),
    });
    // SQLite's dedupe tail merges inside the measured window count in its time.
    let merges_after = dedupe_merges(&fixture.app);
    result["dedupe_merges_measured"] = json!(merges_after.0 - merges_before.0);
    result["dedupe_merge_ms_measured"] = json!(merges_after.1 - merges_before.1);
    if args.duplicates {
        settle_store(&fixture).await?;
        let started = Instant::now();
        let counted = send_bodies(&fixture, &bodies, args.concurrency, true).await?;
        let dup_elapsed = started.elapsed();
        result["duplicates_resent"] = json!(counted);
        result["duplicates_per_second"] = json!(rate(args.events, dup_elapsed).round());
    }
    if !args.no_baseline {
        let baseline = naive_baseline(
            &fixture,
            args.events,
            args.batch,
            args.tenants,
            args.preload,
        )
        .await?;
        record_baseline(&mut result, args.events, elapsed, baseline);
    }
    if !preload_rates_by_million.is_empty() {
        result["preload_events_per_second_by_million"] = json!(preload_rates_by_million);
    }
    result["peak_memory_mib"] = json!(peak_memory_kib() / 1024);
    let problems = fixture.app.ledger().verify(Some("tenant-0001")).await?;
    result["sample_ledger_verifies"] = json!(problems.is_empty());
    println!("{}", serde_json::to_string(&result)?);
    fixture.close().await?;
    let _ = &fixture.admin;
    Ok(0)
}

/// Stores `args.preload` events before measuring; the preload's own rate, a million events at
/// a time: how the rate moves as the store grows, measured in one process on one machine state.
async fn preload(
    fixture: &Fixture,
    args: &IngestArgs,
    counter: &mut u64,
) -> anyhow::Result<Vec<f64>> {
    let mut preload_rates_by_million = Vec::new();
    let mut done = 0;
    let (mut million_events, mut million_elapsed) = (0usize, StdDuration::ZERO);
    while done < args.preload {
        let n = (args.preload - done).min(100_000);
        let (elapsed, _, _) = ingest_through_service(
            fixture,
            n,
            args.batch,
            args.tenants,
            args.concurrency,
            counter,
            false,
        )
        .await?;
        done += n;
        million_events += n;
        million_elapsed += elapsed;
        if million_events >= 1_000_000 || done == args.preload {
            let million_rate = rate(million_events, million_elapsed).round();
            eprintln!("preloaded {done} events (the last {million_events} at {million_rate:.0}/s)");
            preload_rates_by_million.push(million_rate);
            (million_events, million_elapsed) = (0, StdDuration::ZERO);
        }
    }
    Ok(preload_rates_by_million)
}
