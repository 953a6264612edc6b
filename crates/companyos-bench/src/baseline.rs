//! The naive baseline the ingestion benchmarks are measured beside: the same rows as plain
//! INSERTs into a table with the same unique (tenant_id, event_id) index, one transaction per
//! batch, on a table preloaded to the measured store's size.

use std::time::{Duration as StdDuration, Instant};

use anyhow::Context as _;
use companyos_core::metering::ingest::split_body;
use companyos_domain::time_util::format_rfc3339;
use companyos_domain::usage::UsageEvent;
use serde_json::{Value, json};
use sqlx::Executor as _;
use time::OffsetDateTime;

use crate::fixture::{Fixture, batch_body, rate, settle_store};

/// The naive baseline: the same rows, plain INSERTs, the same unique (tenant_id, event_id)
/// index, one transaction per batch.
pub(crate) async fn naive_baseline(
    fixture: &Fixture,
    events: usize,
    batch: usize,
    tenants: usize,
    preload: usize,
) -> anyhow::Result<StdDuration> {
    create_table(fixture).await?;
    preload_table(fixture, preload).await?;
    let rows = parsed_rows(events, batch, tenants)?;
    settle_store(fixture).await?;
    let started = Instant::now();
    insert_rows(fixture, &rows, batch).await?;
    Ok(started.elapsed())
}

/// A fresh `bench_naive` table.
async fn create_table(fixture: &Fixture) -> anyhow::Result<()> {
    let mut conn = fixture.app.db().readers().acquire().await?;
    conn.execute("DROP TABLE IF EXISTS bench_naive").await?;
    conn.execute(
        "CREATE TABLE bench_naive (tenant_id TEXT NOT NULL, event_id TEXT NOT NULL, seq BIGINT NOT NULL, \
         digest TEXT NOT NULL, service TEXT NOT NULL, metric TEXT NOT NULL, unit TEXT NOT NULL, \
         quantity TEXT NOT NULL, event_time BIGINT NOT NULL, canonical TEXT NOT NULL, \
         PRIMARY KEY (tenant_id, event_id))",
    )
    .await?;
    Ok(())
}

/// The baseline table holds as many rows as the measured store before it is measured. They
/// are generated inside the engine (random ids, rows of the same size), a million per
/// statement: only the measured inserts go through the client, one by one.
async fn preload_table(fixture: &Fixture, preload: usize) -> anyhow::Result<()> {
    let db = fixture.app.db();
    let mut loaded = 0usize;
    while loaded < preload {
        let n = (preload - loaded).min(1_000_000);
        let (first, last) = (i64::try_from(loaded + 1)?, i64::try_from(loaded + n)?);
        let sql = match db.backend() {
            companyos_core::db::Backend::Sqlite => {
                "INSERT INTO bench_naive (tenant_id, event_id, seq, digest, service, metric, unit, \
                 quantity, event_time, canonical) WITH RECURSIVE n(x) AS (SELECT $1 UNION ALL \
                 SELECT x + 1 FROM n WHERE x < $2) SELECT printf('tenant-%04d', x % 100), \
                 lower(hex(randomblob(18))), -x, 'sha256:' || lower(hex(randomblob(32))), 'api', \
                 'requests', 'request', '1', 0, lower(hex(randomblob(115))) FROM n"
            }
            companyos_core::db::Backend::Postgres => {
                "INSERT INTO bench_naive (tenant_id, event_id, seq, digest, service, metric, unit, \
                 quantity, event_time, canonical) SELECT 'tenant-' || lpad((x % 100)::text, 4, '0'), \
                 md5(random()::text || x::text) || 'aaaa', -x, 'sha256:' || md5(random()::text) || \
                 md5(random()::text), 'api', 'requests', 'request', '1', 0, \
                 repeat(md5(random()::text), 7) FROM generate_series($1::bigint, $2::bigint) AS x"
            }
        };
        let mut tx = db.begin().await?;
        sqlx::query(sql)
            .bind(first)
            .bind(last)
            .execute(&mut *tx)
            .await
            .context("failed to preload the baseline table")?;
        tx.commit().await?;
        loaded += n;
    }
    Ok(())
}

/// The measured events, generated and parsed before the clock starts.
fn parsed_rows(events: usize, batch: usize, tenants: usize) -> anyhow::Result<Vec<UsageEvent>> {
    let at = format_rfc3339(OffsetDateTime::now_utc());
    let mut counter = 0u64;
    let mut rows = Vec::with_capacity(events);
    let mut remaining = events;
    while remaining > 0 {
        let n = remaining.min(batch);
        let (body, _) = batch_body(n, tenants, &at, &mut counter);
        for event in split_body(&body, false, 10_000)? {
            let event = event
                .parsed
                .map_err(|e| anyhow::anyhow!("{:?}", e.errors))?;
            rows.push(event);
        }
        remaining -= n;
    }
    Ok(rows)
}

/// The measured part: one INSERT per row, one transaction per batch.
async fn insert_rows(fixture: &Fixture, rows: &[UsageEvent], batch: usize) -> anyhow::Result<()> {
    let db = fixture.app.db();
    for (chunk_index, chunk) in rows.chunks(batch).enumerate() {
        let mut tx = db.begin().await?;
        for (i, event) in chunk.iter().enumerate() {
            sqlx::query(
                "INSERT INTO bench_naive (tenant_id, event_id, seq, digest, service, metric, unit, \
                 quantity, event_time, canonical) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(event.tenant_id.as_str())
            .bind(event.event_id.as_str())
            .bind(i64::try_from(chunk_index * batch + i)?)
            .bind(event.digest.to_string())
            .bind(event.service.as_str())
            .bind(event.metric.as_str())
            .bind(event.unit.as_str())
            .bind(event.quantity.to_string())
            .bind(companyos_domain::time_util::to_micros(event.timestamp))
            .bind(event.canonical.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Adds the naive baseline's time, rate and the ratio of the two times to a result line.
pub(crate) fn record_baseline(
    result: &mut Value,
    events: usize,
    elapsed: StdDuration,
    baseline: StdDuration,
) {
    result["baseline_seconds"] = json!(baseline.as_secs_f64());
    result["baseline_events_per_second"] = json!(rate(events, baseline).round());
    result["ratio_to_baseline"] =
        json!((baseline.as_secs_f64() / elapsed.as_secs_f64() * 100.0).round() / 100.0);
}
