//! `companyos-bench`: the benchmarks whose results go into `docs/BENCHMARKS.md`, each measured
//! beside a naive baseline in the same run on the same engine (a ratio survives a noisy machine).
//! A binary of its own so that the product binary carries no benchmark code, raw SQL of its
//! own or temporary directories; it drives the same `App` and HTTP server the product runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context as _, bail};
use companyos_core::clock::SystemClock;
use companyos_core::metering::ingest::split_body;
use companyos_core::{Actor, App, Settings};
use companyos_domain::time_util::format_rfc3339;
use serde_json::{Value, json};
use sqlx::Executor as _;
use time::OffsetDateTime;

mod billing;
mod openmeter;
mod statements;

/// The same allocator as the product binary, so that the figures measure what runs in
/// production (see `crates/companyos/src/main.rs` and docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks of CompanyOS; each prints one JSON line (results for docs/BENCHMARKS.md).
#[derive(Debug, clap::Parser)]
#[command(name = "companyos-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

fn main() -> std::process::ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    // What goes wrong in the service layer is logged (warn) on stderr, as the product's one-shot
    // commands do; stdout carries only the result lines.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the runtime: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(run(&cli.command)) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(1)
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// Forward auth with `feature=` and `metric=` over loopback HTTP beside `GET /healthz` in
    /// the same run: requests/s, p50, p99 (issue 16).
    ForwardAuth {
        #[arg(long, default_value = "sqlite")]
        backend: String,
        #[arg(long, default_value_t = 1000)]
        tenants: usize,
        /// Requests per measured path.
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        /// Concurrent keep-alive clients.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Ingestion with quota state beside the same ingestion without it (two runs each,
    /// alternating), on tenants whose plan has a quota (issue 16).
    QuotaIngest {
        #[arg(long, default_value = "sqlite")]
        backend: String,
        #[arg(long, default_value_t = 1000)]
        tenants: usize,
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Ingestion through the whole service path beside a naive INSERT baseline.
    Ingest {
        /// sqlite or postgres.
        #[arg(long, default_value = "sqlite")]
        backend: String,
        /// Events measured.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        /// Events stored before measuring (the store must stay fast as it grows).
        #[arg(long, default_value_t = 0)]
        preload: usize,
        #[arg(long, default_value_t = 100)]
        tenants: usize,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Concurrent requests (group commit merges them).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Also resend every measured event (all duplicates) and time it.
        #[arg(long)]
        duplicates: bool,
        /// Skip the naive baseline.
        #[arg(long)]
        no_baseline: bool,
        /// Where the SQLite stores go (default: a temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// `POST /v1/events` over loopback HTTP from concurrent clients.
    Http {
        #[arg(long, default_value = "sqlite")]
        backend: String,
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        #[arg(long, default_value_t = 2)]
        clients: usize,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        #[arg(long, default_value_t = 100)]
        tenants: usize,
        /// Skip the naive baseline (the same rows as plain INSERTs, as `bench ingest` measures).
        #[arg(long)]
        no_baseline: bool,
    },
    /// CloudEvents batches on `POST /api/v1/events` beside native `/v1/events` batches of the
    /// same usage events, over loopback HTTP (issue 19).
    Cloudevents {
        #[arg(long, default_value = "sqlite")]
        backend: String,
        #[arg(long, default_value_t = 200_000)]
        events: usize,
        #[arg(long, default_value_t = 2)]
        clients: usize,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        #[arg(long, default_value_t = 100)]
        tenants: usize,
        /// Rounds of one run per path, alternating which goes first.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
    },
    /// A meter query (SUM, DAY windows) over one tenant's month of events (issue 19).
    MeterQuery {
        #[arg(long, default_value = "sqlite")]
        backend: String,
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Month close for many tenants with a month of events (issue 17): the day close and the
    /// month-close job beside one GROUP BY over the same events (their totals must agree),
    /// one statement read (service and HTTP) p50 and max, one pack built and verified.
    MonthClose {
        #[arg(long, default_value = "sqlite")]
        backend: String,
        #[arg(long, default_value_t = 1000)]
        tenants: usize,
        /// Events in the month, spread over its days and the tenants.
        #[arg(long, default_value_t = 10_000_000)]
        events: usize,
        #[arg(long, default_value_t = 5000)]
        batch: usize,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Statement reads measured (each of: open, final, HTTP).
        #[arg(long, default_value_t = 50)]
        runs: usize,
    },
    /// Provision time (dossier included) over many tenants: p50, p99.
    Provision {
        #[arg(long, default_value = "sqlite")]
        backend: String,
        #[arg(long, default_value_t = 100)]
        tenants: usize,
    },
    /// One tenant's daily rollups for a year, and the integrity report rate, beside the same
    /// GROUP BY in the same engine.
    Reports {
        #[arg(long, default_value = "sqlite")]
        backend: String,
        /// Events stored for the report tenant.
        #[arg(long, default_value_t = 200_000)]
        events: usize,
    },
}

/// (merges, milliseconds) of SQLite's dedupe tail so far.
fn dedupe_merges(app: &App) -> (u64, u64) {
    let metrics = app.metrics();
    (
        metrics.total("companyos_dedupe_merges_total"),
        metrics.total("companyos_dedupe_merge_milliseconds_total"),
    )
}

fn peak_memory_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

struct Fixture {
    app: App,
    ingest: Actor,
    admin: Actor,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: (server URL, database name) of the database this benchmark created.
    postgres: Option<(String, String)>,
}

impl Fixture {
    /// Closes the store; a PostgreSQL benchmark database is dropped (benchmarks fill gigabytes).
    async fn close(&self) -> anyhow::Result<()> {
        self.app.db().close().await;
        if let Some((server, name)) = &self.postgres {
            companyos_core::db::drop_postgres_database(server, name)
                .await
                .with_context(|| format!("failed to drop the benchmark database {name}"))?;
        }
        Ok(())
    }
}

async fn fixture(backend: &str, dir: Option<PathBuf>, tenants: usize) -> anyhow::Result<Fixture> {
    fixture_with_clock(backend, dir, tenants, Arc::new(SystemClock)).await
}

async fn fixture_with_clock(
    backend: &str,
    dir: Option<PathBuf>,
    tenants: usize,
    clock: Arc<dyn companyos_core::clock::Clock>,
) -> anyhow::Result<Fixture> {
    let (data_dir, temp) = match dir {
        Some(dir) => {
            let unique = dir.join(companyos_core::util::new_id(
                "bench",
                OffsetDateTime::now_utc(),
            ));
            (unique, None)
        }
        None => {
            let temp = tempfile::tempdir()?;
            (temp.path().join("data"), Some(temp))
        }
    };
    let mut settings = Settings::new(data_dir);
    settings.ingest_queue_capacity = 64;
    let fixture = open_store(settings, backend, clock, temp).await?;
    create_bench_tenants(&fixture, tenants, None).await?;
    Ok(fixture)
}

/// Creates tenants `tenant-0000` ... on `plan` (the default plan when `None`); their API keys.
async fn create_bench_tenants(
    fixture: &Fixture,
    tenants: usize,
    plan: Option<&str>,
) -> anyhow::Result<Vec<String>> {
    let mut keys = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let created = fixture
            .app
            .lifecycle()
            .create(
                &fixture.admin,
                companyos_core::lifecycle::NewTenant {
                    id: format!("tenant-{i:04}"),
                    name: format!("Bench tenant {i}"),
                    plan: plan.map(str::to_owned),
                    ..Default::default()
                },
            )
            .await?;
        keys.push(created.api_key);
    }
    Ok(keys)
}

/// A server of the fixture's app on a loopback port, for the benchmarks over HTTP.
struct LoopbackServer {
    /// `127.0.0.1:<port>`.
    address: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LoopbackServer {
    async fn start(app: &App) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = companyos_server::AppState {
            app: app.clone(),
            body_bytes_max: companyos_server::BODY_BYTES_MAX_DEFAULT,
        };
        let task = tokio::spawn(async move {
            companyos_server::serve(state, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Self {
            address,
            stop,
            task,
        })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Opens a fresh store for a benchmark on `backend` (`sqlite`, or `postgres`: a database of
/// its own on `COMPANYOS_TEST_POSTGRES_URL`, dropped by [`Fixture`]) with an admin and an
/// `ingest` operator.
async fn open_store(
    mut settings: Settings,
    backend: &str,
    clock: Arc<dyn companyos_core::clock::Clock>,
    dir: Option<tempfile::TempDir>,
) -> anyhow::Result<Fixture> {
    let mut postgres = None;
    match backend {
        "sqlite" => {}
        "postgres" => {
            let server = std::env::var("COMPANYOS_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
            let name = format!(
                "companyos_bench_{}",
                companyos_core::util::new_id("b", OffsetDateTime::now_utc()).replace("b_", "")
            );
            settings.database_url =
                Some(companyos_core::db::create_postgres_database(&server, &name).await?);
            postgres = Some((server, name));
        }
        other => bail!("--backend must be sqlite or postgres, got {other:?}"),
    }
    let (app, report) = App::open(settings, clock).await?;
    let token = report.admin_token.context("fresh store")?;
    let admin = Actor {
        principal: app.authenticate(Some(&token), None, "bench").await?,
        request_id: None,
        channel: None,
    };
    let created = app
        .operators()
        .create(&admin, "bench-ingest", "ingest")
        .await?;
    let ingest = Actor {
        principal: app
            .authenticate(Some(&created.token), None, "bench")
            .await?,
        request_id: None,
        channel: None,
    };
    Ok(Fixture {
        app,
        ingest,
        admin,
        _dir: dir,
        postgres,
    })
}

fn uuid() -> String {
    let bytes = companyos_core::util::random_bytes::<16>();
    let hex = companyos_ledger::encoding::hex_encode(&bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A batch body of `n` events with random UUID ids spread over the tenants.
fn batch_body(
    n: usize,
    tenants: usize,
    at: &str,
    counter: &mut u64,
) -> (Vec<u8>, Vec<(String, String)>) {
    let mut keys = Vec::with_capacity(n);
    let mut body = String::with_capacity(n * 260);
    body.push('[');
    for i in 0..n {
        *counter += 1;
        let tenant = format!("tenant-{:04}", *counter as usize % tenants.max(1));
        let id = uuid();
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            "{{\"event_id\":\"{id}\",\"tenant_id\":\"{tenant}\",\"service\":\"api\",\"metric\":\"requests\",\
             \"quantity\":\"{}\",\"unit\":\"request\",\"timestamp\":\"{at}\",\"request_id\":\"r{counter}\"}}",
            1 + *counter % 7
        ));
        keys.push((tenant, id));
    }
    body.push(']');
    (body.into_bytes(), keys)
}

/// Ingests `events` through the service path with `concurrency` requests at a time.
async fn ingest_through_service(
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

async fn send_bodies(
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

/// The naive baseline: the same rows, plain INSERTs, the same unique (tenant_id, event_id)
/// index, one transaction per batch.
async fn naive_baseline(
    fixture: &Fixture,
    events: usize,
    batch: usize,
    tenants: usize,
    preload: usize,
) -> anyhow::Result<StdDuration> {
    let db = fixture.app.db();
    let mut conn = db.readers().acquire().await?;
    conn.execute("DROP TABLE IF EXISTS bench_naive").await?;
    conn.execute(
        "CREATE TABLE bench_naive (tenant_id TEXT NOT NULL, event_id TEXT NOT NULL, seq BIGINT NOT NULL, \
         digest TEXT NOT NULL, service TEXT NOT NULL, metric TEXT NOT NULL, unit TEXT NOT NULL, \
         quantity TEXT NOT NULL, event_time BIGINT NOT NULL, canonical TEXT NOT NULL, \
         PRIMARY KEY (tenant_id, event_id))",
    )
    .await?;
    drop(conn);
    let at = format_rfc3339(OffsetDateTime::now_utc());
    let mut counter = 0u64;
    // The baseline table holds as many rows as the measured store before it is measured. They
    // are generated inside the engine (random ids, rows of the same size), a million per
    // statement: only the measured inserts below go through the client, one by one.
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
    settle_store(fixture).await?;
    let started = Instant::now();
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
    Ok(started.elapsed())
}

/// Brings the store to the same disk state before every measured window: the engine's log
/// written back into its data files (SQLite `wal_checkpoint(TRUNCATE)`, PostgreSQL `CHECKPOINT`)
/// and every dirty page on disk (`sync`). Why: a preload leaves gigabytes of dirty pages
/// behind (about a kilobyte per event, see BENCHMARKS), and the kernel throttles the next
/// writes while it flushes them, so without this the measured window after a large preload
/// times the disk draining the preload, not the store at that size.
async fn settle_store(fixture: &Fixture) -> anyhow::Result<()> {
    let db = fixture.app.db();
    let statement = match db.backend() {
        companyos_core::db::Backend::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE)",
        companyos_core::db::Backend::Postgres => "CHECKPOINT",
    };
    sqlx::query(statement)
        .fetch_all(db.writer())
        .await
        .with_context(|| format!("failed to run {statement} before measuring"))?;
    let status = tokio::process::Command::new("sync")
        .status()
        .await
        .context("failed to run sync before measuring")?;
    anyhow::ensure!(status.success(), "sync before measuring failed: {status}");
    Ok(())
}

/// Adds the naive baseline's time, rate and the ratio of the two times to a result line.
fn record_baseline(result: &mut Value, events: usize, elapsed: StdDuration, baseline: StdDuration) {
    result["baseline_seconds"] = json!(baseline.as_secs_f64());
    result["baseline_events_per_second"] = json!(rate(events, baseline).round());
    result["ratio_to_baseline"] =
        json!((baseline.as_secs_f64() / elapsed.as_secs_f64() * 100.0).round() / 100.0);
}

fn rate(events: usize, elapsed: StdDuration) -> f64 {
    events as f64 / elapsed.as_secs_f64().max(1e-9)
}

async fn run(command: &BenchCommand) -> anyhow::Result<u8> {
    match command {
        BenchCommand::Ingest {
            backend,
            events,
            preload,
            tenants,
            batch,
            concurrency,
            duplicates,
            no_baseline,
            dir,
        } => {
            let fixture = fixture(backend, dir.clone(), *tenants).await?;
            let mut counter = 0u64;
            // The preload's own rate, a million events at a time: how the rate moves as the
            // store grows, measured in one process on one machine state.
            let mut preload_rates_by_million = Vec::new();
            if *preload > 0 {
                let mut done = 0;
                let (mut million_events, mut million_elapsed) = (0usize, StdDuration::ZERO);
                while done < *preload {
                    let n = (*preload - done).min(100_000);
                    let (elapsed, _, _) = ingest_through_service(
                        &fixture,
                        n,
                        *batch,
                        *tenants,
                        *concurrency,
                        &mut counter,
                        false,
                    )
                    .await?;
                    done += n;
                    million_events += n;
                    million_elapsed += elapsed;
                    if million_events >= 1_000_000 || done == *preload {
                        let million_rate = rate(million_events, million_elapsed).round();
                        eprintln!(
                            "preloaded {done} events (the last {million_events} at {million_rate:.0}/s)"
                        );
                        preload_rates_by_million.push(million_rate);
                        (million_events, million_elapsed) = (0, StdDuration::ZERO);
                    }
                }
            }
            settle_store(&fixture).await?;
            let merges_before = dedupe_merges(&fixture.app);
            let (elapsed, bodies, accepted) = ingest_through_service(
                &fixture,
                *events,
                *batch,
                *tenants,
                *concurrency,
                &mut counter,
                *duplicates,
            )
            .await?;
            let mut result = json!({
                "bench": "ingest",
                "backend": backend,
                "events": events,
                "accepted": accepted,
                "preloaded": preload,
                "tenants": tenants,
                "batch": batch,
                "concurrency": concurrency,
                "seconds": elapsed.as_secs_f64(),
                "events_per_second": rate(*events, elapsed).round(),
            });
            // SQLite's dedupe tail merges inside the measured window count in its time.
            let merges_after = dedupe_merges(&fixture.app);
            result["dedupe_merges_measured"] = json!(merges_after.0 - merges_before.0);
            result["dedupe_merge_ms_measured"] = json!(merges_after.1 - merges_before.1);
            if *duplicates {
                settle_store(&fixture).await?;
                let started = Instant::now();
                let counted = send_bodies(&fixture, &bodies, *concurrency, true).await?;
                let dup_elapsed = started.elapsed();
                result["duplicates_resent"] = json!(counted);
                result["duplicates_per_second"] = json!(rate(*events, dup_elapsed).round());
            }
            if !no_baseline {
                let baseline =
                    naive_baseline(&fixture, *events, *batch, *tenants, *preload).await?;
                record_baseline(&mut result, *events, elapsed, baseline);
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
        BenchCommand::Http {
            backend,
            events,
            clients,
            batch,
            tenants,
            no_baseline,
        } => http(backend, *events, *clients, *batch, *tenants, *no_baseline).await,
        BenchCommand::Cloudevents {
            backend,
            events,
            clients,
            batch,
            tenants,
            rounds,
        } => openmeter::cloudevents(backend, *events, (*clients, *batch, *tenants), *rounds).await,
        BenchCommand::MeterQuery {
            backend,
            events,
            runs,
        } => openmeter::meter_query(backend, *events, *runs).await,
        BenchCommand::MonthClose {
            backend,
            tenants,
            events,
            batch,
            concurrency,
            runs,
        } => {
            statements::month_close(statements::MonthCloseRun {
                backend,
                tenants: *tenants,
                events: *events,
                batch: *batch,
                concurrency: *concurrency,
                runs: *runs,
            })
            .await
        }
        BenchCommand::Provision { backend, tenants } => provision(backend, *tenants).await,
        BenchCommand::Reports { backend, events } => reports(backend, *events).await,
        BenchCommand::ForwardAuth {
            backend,
            tenants,
            requests,
            concurrency,
        } => billing::forward_auth(backend, *tenants, *requests, *concurrency).await,
        BenchCommand::QuotaIngest {
            backend,
            tenants,
            events,
            batch,
            concurrency,
        } => billing::quota_ingest(backend, *tenants, *events, *batch, *concurrency).await,
    }
}

async fn http(
    backend: &str,
    events: usize,
    clients: usize,
    batch: usize,
    tenants: usize,
    no_baseline: bool,
) -> anyhow::Result<u8> {
    let fixture = fixture(backend, None, tenants).await?;
    let created = fixture
        .app
        .operators()
        .create(&fixture.admin, "bench-http", "ingest")
        .await?;
    let server = LoopbackServer::start(&fixture.app).await?;
    let url = format!("http://{}/v1/events", server.address);
    let at = format_rfc3339(OffsetDateTime::now_utc());
    let mut counter = 0;
    let mut bodies = Vec::new();
    let mut remaining = events;
    while remaining > 0 {
        let n = remaining.min(batch);
        bodies.push(batch_body(n, tenants, &at, &mut counter).0);
        remaining -= n;
    }
    let per_client: Vec<Vec<Vec<u8>>> = (0..clients.max(1))
        .map(|c| {
            bodies
                .iter()
                .skip(c)
                .step_by(clients.max(1))
                .cloned()
                .collect()
        })
        .collect();
    settle_store(&fixture).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_bodies in per_client {
        let url = url.clone();
        let token = created.token.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut accepted = 0u64;
            for body in client_bodies {
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let value: Value = response.json().await?;
                accepted += value["accepted"].as_u64().unwrap_or(0);
            }
            Ok::<_, reqwest::Error>(accepted)
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await??;
    }
    let elapsed = started.elapsed();
    server.stop().await;
    let mut result = json!({
        "bench": "http", "backend": backend, "events": events, "accepted": accepted,
        "clients": clients, "batch": batch, "seconds": elapsed.as_secs_f64(),
        "events_per_second": rate(events, elapsed).round(),
    });
    if !no_baseline {
        let baseline = naive_baseline(&fixture, events, batch, tenants, 0).await?;
        record_baseline(&mut result, events, elapsed, baseline);
    }
    result["peak_memory_mib"] = json!(peak_memory_kib() / 1024);
    println!("{}", serde_json::to_string(&result)?);
    fixture.close().await?;
    Ok(0)
}

async fn provision(backend: &str, tenants: usize) -> anyhow::Result<u8> {
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

async fn reports(backend: &str, events: usize) -> anyhow::Result<u8> {
    // A year of traffic, ingested day by day on a moving clock (so every event is on time),
    // over 3 services x 2 metrics: the rollups hold a row per day and metric.
    let now = OffsetDateTime::now_utc();
    let start = now - time::Duration::days(365);
    let clock = Arc::new(companyos_core::clock::ManualClock::new(start));
    let fixture = fixture_with_clock(backend, None, 1, clock.clone()).await?;
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
    clock.set(now);
    let events = per_series * 6 * 365;
    let at = now;
    let today = at.date();
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
    let started = Instant::now();
    // The floor under the report: read every stored payload and group the on-time events by
    // day x service x metric x unit with a plain JSON parse (no validation, no ledger checks).
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
    let group_by = started.elapsed();
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
            "baseline_groups": rows.len(),
        })
    );
    fixture.close().await?;
    Ok(0)
}
