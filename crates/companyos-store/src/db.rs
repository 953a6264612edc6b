//! The store connection: one sqlx `Any` pool over SQLite (embedded default, WAL, one writer
//! connection) or PostgreSQL (production, shared by several nodes), the schema migrations for
//! both engines, and the few SQL spellings that differ between them.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions as _, Connection as _, Executor as _};

/// The system clock in microseconds, for the migrations, which run before the service layer has
/// chosen its injected clock.
fn system_now_micros() -> i64 {
    companyos_domain::time_util::to_micros(time::OffsetDateTime::now_utc())
}

/// A write transaction.
pub type Tx = sqlx::Transaction<'static, Any>;

/// A connection handed back to the pool while sqlx still counts it inside a transaction is
/// closed, not reused. That happens when a COMMIT fails and the engine has already rolled the
/// transaction back by itself (SQLite on a full disk): sqlx's own ROLLBACK then fails, its
/// depth stays at one, and every later `BEGIN` on that connection failed with "begin_with at
/// non-zero transaction depth", on SQLite's one writer connection for ever.
async fn discard_connection_in_transaction(conn: &mut AnyConnection) -> Result<bool, sqlx::Error> {
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("closing a store connection left inside a failed transaction");
    }
    Ok(clean)
}

/// How long the store counts as not ready after a write failed for want of it (a full disk,
/// a lost connection), even when a one-row probe still commits: a probe may fit where real
/// writes do not (SQLite reuses WAL pages it already has).
pub const WRITE_FAILURE_HOLD: Duration = Duration::from_secs(5);

/// When writes last failed for want of the store. Per node and in memory on purpose: it only
/// steers this node's readiness, never a decision about data.
#[derive(Debug)]
struct WriteHealth {
    started: Instant,
    /// Milliseconds after `started` of the last failure, plus one; 0 for never.
    last_failure_ms: AtomicU64,
}

impl WriteHealth {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_failure_ms: AtomicU64::new(0),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }
}

/// How long `/readyz`'s write probe may take before the store counts as not ready.
pub const READINESS_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A count or index as the store keeps it (BIGINT); beyond `i64::MAX` only if corrupt.
pub fn to_i64(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::corrupt("value out of range"))
}

/// A stored BIGINT count or index; negative only if corrupt.
pub fn to_u64(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::corrupt("negative size or index"))
}

/// Which engine the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Limits of the connection pools.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub connections_max: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            connections_max: 16,
            acquire_timeout: Duration::from_secs(30),
            statement_timeout: Duration::from_secs(60),
        }
    }
}

/// The store: a pool for reads and a pool for writes (the same pool on PostgreSQL; a single
/// connection on SQLite, which has one writer anyway, so writers queue instead of failing with
/// SQLITE_BUSY).
#[derive(Debug, Clone)]
pub struct Db {
    readers: AnyPool,
    writer: AnyPool,
    backend: Backend,
    /// When writes last failed for want of the store; shared by every clone of this store.
    write_health: Arc<WriteHealth>,
    /// PostgreSQL: how to open the ingestion writer's own pool (see [`Db::for_ingest_writer`]).
    postgres_writer: Option<(AnyConnectOptions, u128)>,
}

/// The SQLite URL of the embedded store inside `data_dir`.
pub fn sqlite_url_in(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("companyos.db").display()
    )
}

/// The file of a `sqlite://PATH[?options]` URL (`None` for other URLs and in-memory databases).
pub fn sqlite_file_of(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

impl Db {
    /// Connects and migrates. `url` is `sqlite://...` or `postgres://...`.
    pub async fn connect(url: &str, options: PoolOptions) -> Result<Db, StoreError> {
        Self::connect_at_version(url, options, i64::MAX).await
    }

    /// Connects and migrates up to schema `version` (tests of the migrations stop earlier).
    async fn connect_at_version(
        url: &str,
        options: PoolOptions,
        version: i64,
    ) -> Result<Db, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::InvalidUrl(
                "the database URL must start with sqlite:// or postgres://".to_owned(),
            ));
        };
        let connect_options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
            .disable_statement_logging();
        let statement_timeout_ms = options.statement_timeout.as_millis();
        let connect_options_for_writer = connect_options.clone();
        let pool_options = move |writer: bool| {
            AnyPoolOptions::new()
                .acquire_timeout(options.acquire_timeout)
                .after_connect(move |conn: &mut AnyConnection, _meta| {
                    Box::pin(async move {
                        configure_connection(conn, backend, statement_timeout_ms, writer).await
                    })
                })
                .before_acquire(|conn: &mut AnyConnection, _meta| {
                    Box::pin(discard_connection_in_transaction(conn))
                })
        };
        let (readers, writer) = match backend {
            Backend::Sqlite => {
                let writer = pool_options(true)
                    .max_connections(1)
                    .connect_with(connect_options.clone())
                    .await?;
                let readers = pool_options(false)
                    .max_connections(options.connections_max.clamp(1, 64))
                    .connect_with(connect_options)
                    .await?;
                (readers, writer)
            }
            Backend::Postgres => {
                let pool = pool_options(true)
                    .max_connections(options.connections_max.clamp(1, 256))
                    .connect_with(connect_options)
                    .await?;
                (pool.clone(), pool)
            }
        };
        let db = Db {
            readers,
            writer,
            backend,
            write_health: Arc::new(WriteHealth::new()),
            postgres_writer: (backend == Backend::Postgres)
                .then_some((connect_options_for_writer, statement_timeout_ms)),
        };
        db.migrate(version).await?;
        if backend == Backend::Sqlite {
            tokio::spawn(checkpoint_wal(db.readers.clone()));
        }
        Ok(db)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The store as the ingestion writer uses it, called on the writer's own thread and
    /// runtime. SQLite: this store (its one writer connection serialises every writer, and
    /// its connections belong to no runtime). PostgreSQL: the same database through a small
    /// pool of the writer's own, whose sockets are driven by the writer's runtime, so the
    /// group commit never waits for a request task to yield a worker thread.
    pub async fn for_ingest_writer(&self) -> Result<Db, StoreError> {
        let Some((connect_options, statement_timeout_ms)) = self.postgres_writer.clone() else {
            return Ok(self.clone());
        };
        let writer = AnyPoolOptions::new()
            .max_connections(INGEST_WRITER_CONNECTIONS_MAX)
            .acquire_timeout(self.writer.options().get_acquire_timeout())
            .after_connect(move |conn: &mut AnyConnection, _meta| {
                Box::pin(async move {
                    configure_connection(conn, Backend::Postgres, statement_timeout_ms, true).await
                })
            })
            .before_acquire(|conn: &mut AnyConnection, _meta| {
                Box::pin(discard_connection_in_transaction(conn))
            })
            .connect_with(connect_options)
            .await?;
        Ok(Db {
            readers: writer.clone(),
            writer,
            backend: self.backend,
            write_health: self.write_health.clone(),
            postgres_writer: None,
        })
    }

    /// The dedupe key index for this store's engine, for the one ingestion writer of a process
    /// and the lookups beside it (SQLite: an empty cache, loaded in the first write transaction;
    /// PostgreSQL: the key rows, nothing in memory). Ingestion uses it through
    /// [`crate::dedupe::EventKeyIndex`] and never asks which engine it is.
    pub fn key_index(&self) -> crate::dedupe::KeyIndex {
        crate::dedupe::KeyIndex::for_backend(self.backend)
    }

    /// The pool for reads.
    pub fn readers(&self) -> &AnyPool {
        &self.readers
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads first and writes later fails with
    /// SQLITE_BUSY_SNAPSHOT, without waiting, if anything else committed in between.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }

    /// Begins a read-only transaction that sees one snapshot of the store until it ends, so a
    /// verification compares a head with exactly the leaves, nodes, payloads and rollups that
    /// were committed with it, while writers go on. PostgreSQL: `REPEATABLE READ, READ ONLY`
    /// (set before the first statement). SQLite in WAL mode: a deferred transaction on a reader
    /// connection reads one snapshot from its first read on; the first read happens here.
    pub async fn begin_snapshot(&self) -> Result<Tx, StoreError> {
        let mut tx = self.readers.begin().await?;
        let first = match self.backend {
            Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master",
            Backend::Postgres => "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        };
        sqlx::query(first).execute(&mut *tx).await?;
        Ok(tx)
    }

    /// The pool for single-statement writes outside a transaction (the same connection as
    /// transactions on SQLite, so writers never race each other).
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// ` FOR UPDATE` on PostgreSQL (row locks serialise writers across nodes); nothing on
    /// SQLite, where the single writer connection already serialises them.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.readers).await.is_ok()
    }

    /// Records that a write failed for want of the store (see [`StoreError::is_unavailable`]).
    pub fn note_write_unavailable(&self) {
        let now = self.write_health.elapsed_ms().saturating_add(1);
        self.write_health
            .last_failure_ms
            .store(now, Ordering::Relaxed);
    }

    /// Whether a write failed for want of the store within `window`.
    fn write_failed_within(&self, window: Duration) -> bool {
        let last = self.write_health.last_failure_ms.load(Ordering::Relaxed);
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        last != 0 && self.write_health.elapsed_ms().saturating_add(1) - last < window_ms
    }

    /// Whether the store takes writes now: no write failed for want of it within
    /// [`WRITE_FAILURE_HOLD`], the readers answer, and a one-row write commits within
    /// [`READINESS_PROBE_TIMEOUT`]. A full disk or a read-only store answers reads but cannot
    /// write, and must not count as ready.
    pub async fn takes_writes(&self) -> bool {
        if self.write_failed_within(WRITE_FAILURE_HOLD) {
            return false;
        }
        let probe = async {
            let mut tx = self.begin().await?;
            sqlx::query(
                "INSERT INTO settings (key, value, updated_at) VALUES ('readiness.probe', $1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                 updated_at = excluded.updated_at",
            )
            .bind(format!("{}", system_now_micros()))
            .bind(system_now_micros())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        };
        if !self.ping().await {
            return false;
        }
        match tokio::time::timeout(READINESS_PROBE_TIMEOUT, probe).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                if error.is_unavailable() {
                    self.note_write_unavailable();
                }
                false
            }
            Err(_elapsed) => false,
        }
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }

    async fn migrate(&self, up_to_version: i64) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        if self.backend == Backend::Postgres {
            // Two nodes starting at once must not both run a migration.
            sqlx::query("SELECT pg_advisory_xact_lock(7263537)")
                .execute(&mut *tx)
                .await?;
        }
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await?;
        for (version, only_on, sql) in MIGRATIONS {
            if applied.contains(version) || *version > up_to_version {
                continue;
            }
            let sql = if only_on.is_some_and(|backend| backend != self.backend) {
                ""
            } else {
                sql
            };
            // Comment lines go first: they may hold semicolons.
            let sql: String = sql
                .lines()
                .filter(|line| !line.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            let sql = match self.backend {
                Backend::Sqlite => sql
                    .replace("BLOB_TYPE", "BLOB")
                    .replace(") CLUSTERED", ") WITHOUT ROWID"),
                Backend::Postgres => sql
                    .replace("BLOB_TYPE", "BYTEA")
                    .replace(") CLUSTERED", ")"),
            };
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                tx.execute(statement)
                    .await
                    .map_err(|source| StoreError::Migration {
                        version: *version,
                        source,
                    })?;
            }
            if *version == BUNDLES_VERSION {
                // Not expressible in SQL on both engines: the rows of the per-entry tables are
                // encoded into bundles, in the same transaction, then those tables go.
                crate::bundles::convert_legacy_rows(&mut tx, self.backend).await?;
            }
            if *version == KEY_RUNS_VERSION && self.backend == Backend::Sqlite {
                crate::dedupe::convert_merged_index(&mut tx).await?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(*version)
                .bind(system_now_micros())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Connections of the ingestion writer's own PostgreSQL pool: one group commit at a time, plus
/// one for a merge or retry beside it.
const INGEST_WRITER_CONNECTIONS_MAX: u32 = 2;

/// How often the background checkpointer copies the WAL into the database file.
const WAL_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);
/// WAL pages after which the writer checkpoints by itself: 64 MiB of 2 KiB pages. The WAL can
/// only start again from its beginning once every frame is copied, which a background copy
/// seldom finishes while the writer keeps appending; so under sustained ingestion the writer
/// copies what remains at this bound (the background checkpointer has copied most of it) and
/// the WAL file stays at about this size.
const WRITER_WAL_AUTOCHECKPOINT_PAGES: u32 = 32_768;

/// SQLite: copies committed WAL frames into the database file from a reader connection, so the
/// writer does not pay for it inside a commit (a checkpoint of 64 MiB took tens of milliseconds
/// of every twelfth group commit). PASSIVE never blocks the writer or readers. Ends when the
/// pool closes.
async fn checkpoint_wal(readers: AnyPool) {
    loop {
        tokio::time::sleep(WAL_CHECKPOINT_INTERVAL).await;
        if readers.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_all(&readers)
            .await
        {
            if readers.is_closed() {
                return;
            }
            tracing::warn!(%error, "WAL checkpoint failed; the writer's own checkpoints bound the WAL");
        }
    }
}

async fn configure_connection(
    conn: &mut AnyConnection,
    backend: Backend,
    statement_timeout_ms: u128,
    writer: bool,
) -> Result<(), sqlx::Error> {
    match backend {
        Backend::Sqlite => {
            // WAL lets readers run beside the writer; synchronous=FULL makes an acknowledged
            // commit durable across power loss, not only across a process crash.
            for pragma in [
                // Only takes effect when the file is created. A group commit dirties a page or
                // two per tenant in each per-tenant table (bundle indexes, nodes, heads,
                // rollups, counters) and the WAL takes whole pages, so smaller pages mean less
                // WAL per commit; bundles spill into overflow pages written once each.
                // Measured (docs/BENCHMARKS.md): 2 KiB beat 1, 4 and 8 KiB.
                "PRAGMA page_size = 2048",
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = FULL",
                "PRAGMA busy_timeout = 10000",
                "PRAGMA foreign_keys = ON",
                "PRAGMA cache_size = -65536",
                "PRAGMA temp_store = MEMORY",
            ] {
                conn.execute(pragma).await?;
            }
            // Readers never write (the pragma only matters if one does); the writer leaves
            // checkpoints to `checkpoint_wal` up to its bound.
            let autocheckpoint_pages = if writer {
                WRITER_WAL_AUTOCHECKPOINT_PAGES
            } else {
                8192
            };
            conn.execute(format!("PRAGMA wal_autocheckpoint = {autocheckpoint_pages}").as_str())
                .await?;
        }
        Backend::Postgres => {
            conn.execute(format!("SET statement_timeout = {statement_timeout_ms}").as_str())
                .await?;
        }
    }
    Ok(())
}

/// Creates a fresh PostgreSQL database (for tests and benchmarks) and returns its URL.
pub async fn create_postgres_database(server_url: &str, name: &str) -> Result<String, StoreError> {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(server_url).await?;
    conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await?;
    conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await?;
    conn.close().await?;
    let base = server_url
        .rsplit_once('/')
        .map_or(server_url, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

/// Drops a database created by [`create_postgres_database`] (test and benchmark clean-up).
pub async fn drop_postgres_database(server_url: &str, name: &str) -> Result<(), StoreError> {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(server_url).await?;
    conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await?;
    conn.close().await?;
    Ok(())
}

/// The schema, one entry per version. `BLOB_TYPE` is BLOB on SQLite and BYTEA on PostgreSQL;
/// `) CLUSTERED` is `) WITHOUT ROWID` on SQLite and nothing on PostgreSQL; everything else is
/// spelled the same on both engines. A migration for one engine only (`Some(backend)`) is
/// recorded as applied, and skipped, on the other.
const MIGRATIONS: &[(i64, Option<Backend>, &str)] = &[
    (1, None, include_str!("../migrations/common/0001_init.sql")),
    (
        2,
        Some(Backend::Sqlite),
        include_str!("../migrations/sqlite/0002_sqlite_key_index.sql"),
    ),
    (
        3,
        Some(Backend::Sqlite),
        include_str!("../migrations/sqlite/0003_sqlite_bundles.sql"),
    ),
    (
        4,
        Some(Backend::Postgres),
        include_str!("../migrations/postgres/0004_postgres_bundles.sql"),
    ),
    (
        5,
        None,
        include_str!("../migrations/common/0005_no_level_4_nodes.sql"),
    ),
    (
        6,
        Some(Backend::Sqlite),
        include_str!("../migrations/sqlite/0006_sqlite_key_runs.sql"),
    ),
    (
        7,
        None,
        include_str!("../migrations/common/0007_provisioning_attempts.sql"),
    ),
    (
        8,
        None,
        include_str!("../migrations/common/0008_days_closed_through.sql"),
    ),
    (
        9,
        None,
        include_str!("../migrations/common/0009_plans_and_quotas.sql"),
    ),
    (
        10,
        None,
        include_str!("../migrations/common/0010_statements.sql"),
    ),
    (
        11,
        None,
        include_str!("../migrations/common/0011_console_sessions.sql"),
    ),
    (
        12,
        None,
        include_str!("../migrations/common/0012_meters.sql"),
    ),
    (
        13,
        Some(Backend::Sqlite),
        include_str!("../migrations/sqlite/0013_sqlite_quota_usage_clustered.sql"),
    ),
    (
        14,
        None,
        include_str!("../migrations/common/0014_plan_history_revision.sql"),
    ),
];

/// The version after which SQLite's merged key index is converted into a run (ADR 0007).
const KEY_RUNS_VERSION: i64 = 6;

/// The version after which rows of the per-entry ledger tables are converted into bundles.
const BUNDLES_VERSION: i64 = 4;

mod error;
mod sql;

pub use error::StoreError;

pub use sql::{
    Placeholders, list_placeholders, postgres_bigint_array, statement_chunks, values_placeholders,
};

#[cfg(test)]
mod tests;
