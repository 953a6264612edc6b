//! The store a benchmark runs on (a fresh SQLite file or PostgreSQL database, an admin, an
//! `ingest` operator, bench tenants), the loopback server of the HTTP benchmarks, the generated
//! event batches, and what every benchmark measures around them (rates, peak memory, a settled
//! disk before each measured window).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context as _, bail};
use companyos_core::clock::SystemClock;
use companyos_core::{Actor, App, Settings};
use companyos_domain::time_util::format_rfc3339;
use time::OffsetDateTime;

/// (merges, milliseconds) of SQLite's dedupe tail so far.
pub(crate) fn dedupe_merges(app: &App) -> (u64, u64) {
    let metrics = app.metrics();
    (
        metrics.total("companyos_dedupe_merges_total"),
        metrics.total("companyos_dedupe_merge_milliseconds_total"),
    )
}

pub(crate) fn peak_memory_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

pub(crate) struct Fixture {
    pub(crate) app: App,
    pub(crate) ingest: Actor,
    pub(crate) admin: Actor,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: (server URL, database name) of the database this benchmark created.
    postgres: Option<(String, String)>,
}

impl Fixture {
    /// Closes the store; a PostgreSQL benchmark database is dropped (benchmarks fill gigabytes).
    pub(crate) async fn close(&self) -> anyhow::Result<()> {
        self.app.db().close().await;
        if let Some((server, name)) = &self.postgres {
            companyos_core::db::drop_postgres_database(server, name)
                .await
                .with_context(|| format!("failed to drop the benchmark database {name}"))?;
        }
        Ok(())
    }
}

pub(crate) async fn fixture(
    backend: &str,
    dir: Option<PathBuf>,
    tenants: usize,
) -> anyhow::Result<Fixture> {
    fixture_with_clock(backend, dir, tenants, Arc::new(SystemClock)).await
}

pub(crate) async fn fixture_with_clock(
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
pub(crate) async fn create_bench_tenants(
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
pub(crate) struct LoopbackServer {
    /// `127.0.0.1:<port>`.
    pub(crate) address: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl LoopbackServer {
    pub(crate) async fn start(app: &App) -> anyhow::Result<Self> {
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

    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Opens a fresh store for a benchmark on `backend` (`sqlite`, or `postgres`: a database of
/// its own on `COMPANYOS_TEST_POSTGRES_URL`, dropped by [`Fixture`]) with an admin and an
/// `ingest` operator.
pub(crate) async fn open_store(
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

pub(crate) fn uuid() -> String {
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
/// `events` events, stamped now, as request bodies of `batch` events at the most.
pub(crate) fn batch_bodies(events: usize, batch: usize, tenants: usize) -> Vec<Vec<u8>> {
    let at = format_rfc3339(OffsetDateTime::now_utc());
    let mut counter = 0u64;
    let mut bodies = Vec::new();
    let mut remaining = events;
    while remaining > 0 {
        let n = remaining.min(batch.max(1));
        bodies.push(batch_body(n, tenants, &at, &mut counter).0);
        remaining -= n;
    }
    bodies
}

pub(crate) fn batch_body(
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

/// Brings the store to the same disk state before every measured window: the engine's log
/// written back into its data files (SQLite `wal_checkpoint(TRUNCATE)`, PostgreSQL `CHECKPOINT`)
/// and every dirty page on disk (`sync`). Why: a preload leaves gigabytes of dirty pages
/// behind (about a kilobyte per event, see BENCHMARKS), and the kernel throttles the next
/// writes while it flushes them, so without this the measured window after a large preload
/// times the disk draining the preload, not the store at that size.
pub(crate) async fn settle_store(fixture: &Fixture) -> anyhow::Result<()> {
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

pub(crate) fn rate(events: usize, elapsed: StdDuration) -> f64 {
    events as f64 / elapsed.as_secs_f64().max(1e-9)
}
