//! The service layer's entry point: [`App`] holds the store, the clock, the policies, the keys and
//! the evidence depot, and is a facade over the capabilities (`app.lifecycle()`, `app.metering()`,
//! ...), through which every operation of every adapter goes. A mutation is always authorize
//! (Cedar) -> act -> audit in one transaction (`audited`); a denied or failed attempt is audited
//! in a transaction of its own.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use companyos_domain::audit::AuditChannel;
use time::OffsetDateTime;

use crate::audit::auth_failures::AuthFailures;
use crate::authz::{Authorizer, PolicyError, Principal, Resource};
use crate::clock::Clock;
use crate::db::{Db, PoolOptions, StoreError, sqlite_url_in};
use crate::error::ServiceError;
use crate::evidence::keys::{KeyError, Keys};
use crate::evidence::{BlobStore, DbBlobStore, FsBlobStore};
use crate::metering::ingest::IngestQueue;
use crate::metrics::Metrics;
use crate::settings::{EvidenceStoreKind, Settings};
use crate::util::new_id;
use companyos_domain::Action;

mod audited;
mod data_files;
use data_files::{create_private_dir, protect_sqlite_files};

/// Prefix of tenant API keys.
pub const TENANT_KEY_PREFIX: &str = "cos_tk";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("failed to create the data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    // The reason is in the message and not a `source`: the CLI prints one line, and the
    // chain would repeat it.
    #[error("the data dir {path} is not writable: {reason}")]
    NotWritable {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("failed to protect the database file {path} (mode 0600): {reason}")]
    DatabaseFile {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("settings: {0}")]
    Settings(String),
}

/// Who performs an operation, and the request it belongs to.
#[derive(Debug, Clone)]
pub struct Actor {
    pub principal: Principal,
    pub request_id: Option<String>,
    /// The adapter the request came through, written into its audit records; `None` for
    /// background jobs and direct store tools.
    pub channel: Option<AuditChannel>,
}

impl Actor {
    pub fn system(job: &str) -> Self {
        Self {
            principal: Principal::System {
                job: job.to_owned(),
            },
            request_id: None,
            channel: None,
        }
    }
}

/// What `App::open` did on first start.
#[derive(Debug, Clone, Default)]
pub struct InitReport {
    /// The bootstrap admin's token, when this start created it (shown once).
    pub admin_token: Option<String>,
    pub keys_created: bool,
}

/// The service layer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    pub(crate) inner: Arc<AppInner>,
}

#[derive(Debug)]
pub(crate) struct AppInner {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub authz: Authorizer,
    pub keys: Keys,
    pub blobs: Arc<dyn BlobStore>,
    pub settings: Settings,
    pub metrics: Metrics,
    pub ingest: IngestQueue,
    /// Identifies this process in job leases.
    pub node_id: String,
    /// The one client of outbound deliveries, guarded by `settings.outbound`.
    pub outbound_http: reqwest::Client,
    /// Failed authentications per source and minute (this node only).
    pub auth_failures: AuthFailures,
    /// Plan versions read so far (they never change).
    pub plan_versions: crate::billing::VersionCache,
    /// Tenants' plan histories at a revision of the shared counter (quota state).
    pub plan_histories: crate::billing::HistoryCache,
    /// Forward-auth answers of this node (`billing::access_cache`).
    pub access_cache: crate::billing::AccessCache,
}

/// Defines the capabilities of the [`App`]: each is a view of it (`app.lifecycle()`) whose
/// methods are one concept's operations, implemented in the capability's folder. They deref to
/// the `App`, so every capability reaches the store, the clock and the one authorize -> act ->
/// audit helper (`require`, `finish`, `authorize_read`, in `audited`), which stays in one place.
macro_rules! capabilities {
    ($($(#[$doc:meta])* $name:ident => $method:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name<'a> {
            pub(crate) app: &'a App,
        }

        impl App {
            $(#[$doc])*
            pub fn $method(&self) -> $name<'_> {
                $name { app: self }
            }
        }

        impl std::ops::Deref for $name<'_> {
            type Target = App;

            fn deref(&self) -> &App {
                self.app
            }
        }
    )*};
}

capabilities! {
    /// Tenants: provisioning through the boundary drivers, lifecycle transitions, purge,
    /// regions, workloads, retention and forward auth (`crate::lifecycle`).
    Lifecycle => lifecycle;
    /// Pending approvals of lifecycle actions (`crate::approvals`).
    Approvals => approvals;
    /// Declarations, coverage, sources, reports, day close and meters (`crate::metering`).
    Metering => metering;
    /// Checkpoints, proofs and the verification of the ledgers (`crate::ledger`).
    Ledger => ledger;
    /// Audit records and the audit log's verification (`crate::audit`).
    Audit => audit;
    /// The evidence depot: signed artifacts and their key (`crate::evidence`).
    Evidence => evidence;
    /// Leases, the background jobs and the outbox (`crate::jobs`).
    Jobs => jobs;
    /// Operators and bearer-token authentication (`crate::operators`).
    Operators => operators;
    /// The operator console's sessions and permissions (`crate::console`).
    Console => console;
}

impl App {
    /// Opens the data dir and the store: creates what is missing (data dir, schema, keys, the
    /// bootstrap admin) and changes nothing that exists.
    pub async fn open(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<(App, InitReport), StartError> {
        create_private_dir(&settings.data_dir)?;
        let url = database_url_for(&settings)?;
        if let Some(path) = crate::db::sqlite_file_of(&url) {
            protect_sqlite_files(&path)?;
        }
        let db = Db::connect(
            &url,
            PoolOptions {
                connections_max: settings.pool_connections_max,
                ..PoolOptions::default()
            },
        )
        .await?;
        let (keys, keys_created) = Keys::load_or_create(&settings.data_dir, &settings.log_name)?;
        let now = clock.now();
        keys.register(&db, companyos_domain::time_util::to_micros(now))
            .await?;
        let authz = Authorizer::load()?;
        let blobs = evidence_blob_store(&settings, &db);
        let ingest = IngestQueue::new(settings.ingest_queue_capacity, db.key_index());
        let settings_auth_failures_max = settings.auth_failures_per_minute_max;
        let access_cache = crate::billing::AccessCache::new(settings.forward_auth_cache);
        let outbound_http = settings
            .outbound
            .client(settings.outbox_timeout)
            .map_err(|e| StartError::Settings(format!("the outbound HTTP client: {e}")))?;
        let app = App {
            inner: Arc::new(AppInner {
                db,
                clock,
                authz,
                keys,
                blobs,
                settings,
                metrics: Metrics::default(),
                ingest,
                node_id: new_id("node", now),
                outbound_http,
                auth_failures: AuthFailures::new(settings_auth_failures_max),
                plan_versions: Default::default(),
                plan_histories: Default::default(),
                access_cache,
            }),
        };
        let admin_token = app.operators().bootstrap_admin().await?;
        crate::billing::seed(&app).await?;
        Ok((
            app,
            InitReport {
                admin_token,
                keys_created,
            },
        ))
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    pub fn now_micros(&self) -> i64 {
        companyos_domain::time_util::to_micros(self.now())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn authorizer(&self) -> &Authorizer {
        &self.inner.authz
    }

    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.settings.data_dir
    }

    pub(crate) fn blobs(&self) -> &dyn BlobStore {
        self.inner.blobs.as_ref()
    }

    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// The Prometheus text of `/metrics`: every tenant's event counts, so it is read under
    /// policy (`metrics.read`) like any other cross-tenant read.
    pub async fn metrics_text(&self, actor: &Actor) -> Result<String, ServiceError> {
        self.authorize_read(
            actor,
            Action::MetricsRead,
            Resource::Deployment,
            "metrics",
            None,
        )
        .await?;
        Ok(self.inner.metrics.render())
    }

    /// The policy text and its SHA-256.
    pub async fn policies(&self, actor: &Actor) -> Result<(String, String), ServiceError> {
        self.authorize_read(
            actor,
            Action::PolicyRead,
            Resource::Deployment,
            "policies",
            None,
        )
        .await?;
        Ok((
            self.inner.authz.policy_text().to_owned(),
            self.inner.authz.policy_sha256().to_owned(),
        ))
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn ready(&self) -> bool {
        self.db().takes_writes().await
    }
}

/// The database URL of `settings` (the data dir's SQLite file unless one is given), refused
/// when a setting needs PostgreSQL and the URL is not one.
fn database_url_for(settings: &Settings) -> Result<String, StartError> {
    let url = settings
        .database_url
        .clone()
        .unwrap_or_else(|| sqlite_url_in(&settings.data_dir));
    if matches!(
        settings.boundary_driver,
        crate::settings::BoundaryDriverSettings::Postgres
    ) && !url.starts_with("postgres")
    {
        return Err(StartError::Settings(
            "boundary_driver = \"postgres\" needs a postgres:// database URL".to_owned(),
        ));
    }
    if settings.evidence_store == EvidenceStoreKind::Database && !url.starts_with("postgres") {
        return Err(StartError::Settings(
            "evidence_store = \"database\" is for several nodes on PostgreSQL; the embedded store keeps evidence in the data dir".to_owned(),
        ));
    }
    Ok(url)
}

/// Where evidence artifacts are kept: the data dir, or the database when several nodes share it.
fn evidence_blob_store(settings: &Settings, db: &Db) -> Arc<dyn BlobStore> {
    match settings.evidence_store {
        EvidenceStoreKind::FileSystem => {
            Arc::new(FsBlobStore::new(settings.data_dir.join("evidence")))
        }
        EvidenceStoreKind::Database => Arc::new(DbBlobStore::new(db.clone())),
    }
}
