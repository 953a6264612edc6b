//! The service layer's entry point: [`App`] holds the store, the clock, the policies, the keys and
//! the evidence depot, and every operation of every adapter goes through its methods. A mutation
//! is always authorize (Cedar) -> act -> audit in one transaction; a denied or failed attempt is
//! audited in a transaction of its own.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use companyos_domain::audit::{AuditChannel, AuditOutcome, AuditRecord};
use companyos_domain::time_util::format_rfc3339;
use companyos_domain::{OperatorName, Role};
use serde_json::{Value, json};
use sqlx::Row as _;
use time::OffsetDateTime;

use crate::audit::{self, AuditFilter, NewAudit};
use crate::auth_failures::{AuthFailures, Verdict};
use crate::authz::{Authorizer, AuthzDecision, PolicyError, Principal, Resource};
use crate::clock::Clock;
use crate::db::{Db, PoolOptions, StoreError, Tx, sqlite_url_in};
use crate::error::ServiceError;
use crate::evidence::{self, BlobStore, DbBlobStore, EvidenceRecord, FsBlobStore};
use crate::ingest::IngestQueue;
use crate::keys::{KeyError, Keys};
use crate::metrics::Metrics;
use crate::settings::{EvidenceStoreKind, Settings};
use crate::util::{new_id, new_token, token_hash};
use companyos_domain::Action;

mod data_files;
use data_files::{create_private_dir, protect_sqlite_files};

/// Prefix of operator tokens.
pub const OPERATOR_TOKEN_PREFIX: &str = "cos_op";
/// Prefix of tenant API keys.
pub const TENANT_KEY_PREFIX: &str = "cos_tk";
/// Name of the operator created by `init`.
pub const BOOTSTRAP_ADMIN: &str = "admin";
/// The audit actor of `companyos operator reset-admin`.
pub const RESET_ADMIN_ACTOR: &str = "local:reset-admin";

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

/// A created operator, with its token (shown once).
#[derive(Debug, Clone)]
pub struct CreatedOperator {
    pub operator: OperatorView,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: OffsetDateTime,
    pub revoked: bool,
}

impl App {
    /// Opens the data dir and the store: creates what is missing (data dir, schema, keys, the
    /// bootstrap admin) and changes nothing that exists.
    pub async fn open(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<(App, InitReport), StartError> {
        create_private_dir(&settings.data_dir)?;
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
        let blobs: Arc<dyn BlobStore> = match settings.evidence_store {
            EvidenceStoreKind::FileSystem => {
                Arc::new(FsBlobStore::new(settings.data_dir.join("evidence")))
            }
            EvidenceStoreKind::Database => Arc::new(DbBlobStore::new(db.clone())),
        };
        let ingest = IngestQueue::new(settings.ingest_queue_capacity);
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
        let admin_token = app.bootstrap_admin().await?;
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

    /// Creates the `admin` operator if no operator exists yet; returns its token once.
    async fn bootstrap_admin(&self) -> Result<Option<String>, StoreError> {
        let mut tx = self.db().begin().await?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM operators")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 {
            tx.commit().await?;
            return Ok(None);
        }
        let now = self.now();
        let token = new_token(OPERATOR_TOKEN_PREFIX);
        let id = new_id("op", now);
        let inserted = sqlx::query(
            "INSERT INTO operators (id, name, role, token_sha256, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(BOOTSTRAP_ADMIN)
        .bind(Role::Admin.as_str())
        .bind(token_hash(&token))
        .bind(companyos_domain::time_util::to_micros(now))
        .bind("system:init")
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.commit().await?;
            return Ok(None);
        }
        let entry = NewAudit::new(
            &Principal::System {
                job: "init".to_owned(),
            },
            None,
            "operator.create",
            &format!("operator:{id}"),
        )
        .details(json!({"name": BOOTSTRAP_ADMIN, "role": "admin", "bootstrap": true}));
        self.append_audit(&mut tx, now, vec![entry]).await?;
        tx.commit().await?;
        Ok(Some(token))
    }

    /// Issues a new token for the `admin` operator, revoking its old one (or creates the
    /// operator if it is gone), and audits it as `operator.reset_admin` by `local:reset-admin`.
    /// This is the recovery path for a lost admin token: it runs on the store directly, so
    /// holding the data dir (or the database URL) is the authority, as for `init`; no bearer
    /// token exists to authorize it by policy.
    pub async fn reset_admin(&self) -> Result<String, StoreError> {
        let mut tx = self.db().begin().await?;
        let now = self.now();
        let now_micros = companyos_domain::time_util::to_micros(now);
        let token = new_token(OPERATOR_TOKEN_PREFIX);
        let existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM operators WHERE name = $1")
                .bind(BOOTSTRAP_ADMIN)
                .fetch_optional(&mut *tx)
                .await?;
        // The operator row holds its one token hash: replacing it revokes the old token.
        let (id, created) = match existing {
            Some(id) => {
                sqlx::query(
                    "UPDATE operators SET token_sha256 = $1, role = $2, revoked_at = NULL \
                     WHERE id = $3",
                )
                .bind(token_hash(&token))
                .bind(Role::Admin.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                (id, false)
            }
            None => {
                let id = new_id("op", now);
                sqlx::query(
                    "INSERT INTO operators (id, name, role, token_sha256, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id.as_str())
                .bind(BOOTSTRAP_ADMIN)
                .bind(Role::Admin.as_str())
                .bind(token_hash(&token))
                .bind(now_micros)
                .bind(RESET_ADMIN_ACTOR)
                .execute(&mut *tx)
                .await?;
                (id, true)
            }
        };
        let entry = NewAudit {
            id: None,
            actor: RESET_ADMIN_ACTOR.to_owned(),
            role: "system".to_owned(),
            action: "operator.reset_admin".to_owned(),
            target: format!("operator:{id}"),
            tenant_id: None,
            outcome: AuditOutcome::Success,
            reason: Some("admin token reset from the store".to_owned()),
            request_id: None,
            details: json!({"name": BOOTSTRAP_ADMIN, "created": created, "old_token_revoked": !created}),
            channel: None,
        };
        self.append_audit(&mut tx, now, vec![entry]).await?;
        tx.commit().await?;
        Ok(token)
    }

    // ---- authentication and the audited-mutation machinery ----

    /// Resolves a bearer token to a principal. A missing or unknown token is audited and
    /// answered `Unauthenticated`.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        request_id: Option<&str>,
        route: &str,
    ) -> Result<Principal, ServiceError> {
        self.authenticate_from(token, request_id, route, None).await
    }

    /// Authenticates a request from `source` (the peer address). Every failure is audited, but
    /// a source's repeated failures within a minute are only counted and audited as one
    /// aggregate record, and past the rate answered 429 with no store write (`auth_failures`).
    /// A valid credential is always looked up and accepted, so a legitimate client sharing an
    /// address (NAT, a proxy) with a flood is not locked out. Without a source, every failure
    /// is audited on its own.
    pub async fn authenticate_from(
        &self,
        token: Option<&str>,
        request_id: Option<&str>,
        route: &str,
        source: Option<IpAddr>,
    ) -> Result<Principal, ServiceError> {
        self.authenticate_via(token, request_id, route, source, None)
            .await
    }

    /// [`App::authenticate_from`] for a request of a known adapter, whose failures are audited
    /// with its channel.
    pub async fn authenticate_via(
        &self,
        token: Option<&str>,
        request_id: Option<&str>,
        route: &str,
        source: Option<IpAddr>,
        channel: Option<AuditChannel>,
    ) -> Result<Principal, ServiceError> {
        let found = match token {
            Some(token) => self.lookup_token(token).await?,
            None => None,
        };
        match found {
            Some(principal) => Ok(principal),
            None => {
                let reason = if token.is_some() {
                    "unknown or revoked credential"
                } else {
                    "no credential"
                };
                let verdict = source.map_or(Verdict::Audit, |ip| {
                    self.inner.auth_failures.record(ip, self.now())
                });
                match verdict {
                    Verdict::Audit => {}
                    Verdict::Counted => {
                        return Err(ServiceError::Unauthenticated(reason.to_owned()));
                    }
                    Verdict::Limited {
                        retry_after_seconds,
                    } => {
                        return Err(ServiceError::RateLimited {
                            detail: format!(
                                "too many failed authentications from this address ({reason})"
                            ),
                            retry_after_seconds,
                        });
                    }
                }
                let entry = NewAudit {
                    id: None,
                    actor: "anonymous".to_owned(),
                    role: "none".to_owned(),
                    action: "auth.authenticate".to_owned(),
                    target: route.to_owned(),
                    tenant_id: None,
                    outcome: AuditOutcome::Denied,
                    reason: Some(reason.to_owned()),
                    request_id: request_id.map(str::to_owned),
                    details: source
                        .map_or_else(|| json!({}), |ip| json!({"source": ip.to_string()})),
                    channel,
                };
                self.audit_alone(entry).await?;
                Err(ServiceError::Unauthenticated(reason.to_owned()))
            }
        }
    }

    /// Writes the aggregate audit record of every failed-authentication window that is over
    /// (of every window when `all`, at shutdown). Runs with the jobs on every node: the counts
    /// are this node's own. Returns the records written.
    pub async fn flush_auth_failures(&self, all: bool) -> Result<usize, ServiceError> {
        let ended = self.inner.auth_failures.take_ended(self.now(), all);
        let written = ended.len();
        if ended.is_empty() {
            return Ok(0);
        }
        let mut entries = Vec::with_capacity(written);
        for aggregate in ended {
            let source = aggregate.source.to_string();
            let entry = NewAudit {
                id: None,
                actor: "anonymous".to_owned(),
                role: "none".to_owned(),
                action: "auth.failed.aggregate".to_owned(),
                target: format!("source:{source}"),
                tenant_id: None,
                outcome: AuditOutcome::Denied,
                reason: Some("repeated failed authentication from one source".to_owned()),
                request_id: None,
                details: json!({
                    "source": source,
                    "count": aggregate.count,
                    "rate_limited": aggregate.limited,
                    "window_start": format_rfc3339(aggregate.window_start),
                    "window_seconds": crate::auth_failures::WINDOW_SECONDS,
                }),
                channel: None,
            };
            entries.push(entry);
        }
        // One transaction for the whole minute, however many sources it saw.
        let mut tx = self.db().begin().await?;
        audit::append(
            self.db(),
            &mut tx,
            self.inner.authz.policy_sha256(),
            self.now(),
            entries,
        )
        .await?;
        tx.commit().await?;
        Ok(written)
    }

    async fn lookup_token(&self, token: &str) -> Result<Option<Principal>, ServiceError> {
        if token.len() > 200 {
            return Ok(None);
        }
        let hash = token_hash(token);
        let mut conn = self.db().readers().acquire().await?;
        if token.starts_with(OPERATOR_TOKEN_PREFIX) {
            let row = sqlx::query(
                "SELECT id, name, role FROM operators WHERE token_sha256 = $1 \
                 AND revoked_at IS NULL",
            )
            .bind(hash.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let role: String = row.try_get("role")?;
            let role = Role::parse(&role)
                .map_err(|_| StoreError::corrupt(format!("operator role {role:?}")))?;
            return Ok(Some(Principal::Operator {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                role,
            }));
        }
        if token.starts_with(TENANT_KEY_PREFIX) {
            let row = sqlx::query(
                "SELECT id, tenant_id FROM tenant_keys WHERE token_sha256 = $1 \
                 AND revoked_at IS NULL",
            )
            .bind(hash.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let tenant_id: String = row.try_get("tenant_id")?;
            // The tenant's state is read on every request: suspension takes effect at once,
            // there is no cache to expire.
            let Some(tenant) = self.tenant_attributes(&mut conn, &tenant_id).await? else {
                return Ok(None);
            };
            return Ok(Some(Principal::TenantKey {
                key_id: row.try_get("id")?,
                tenant,
            }));
        }
        Ok(None)
    }

    /// Asks the policies; on a denial returns `Forbidden` (the caller's transaction is rolled back
    /// and the denial audited by [`App::finish`]). The deciding policies go into the audit details.
    pub(crate) fn require(
        &self,
        actor: &Actor,
        action: Action,
        resource: Resource<'_>,
        context: &[(&str, &str)],
        entry: &mut NewAudit,
    ) -> Result<AuthzDecision, ServiceError> {
        let decision = self
            .inner
            .authz
            .authorize(&actor.principal, action, resource, context);
        self.inner.metrics.authorization(decision.allowed);
        if let Value::Object(details) = &mut entry.details {
            details.insert("policies".to_owned(), json!(decision.policy_ids));
        }
        if decision.allowed {
            Ok(decision)
        } else {
            Err(ServiceError::Forbidden(decision.denial_reason(action)))
        }
    }

    /// Commits a mutation with its audit record, or rolls it back and audits the failure.
    pub(crate) async fn finish<T>(
        &self,
        mut tx: Tx,
        entry: NewAudit,
        result: Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        match result {
            Ok(value) => {
                let committed = async {
                    let records = self.append_audit(&mut tx, self.now(), vec![entry]).await?;
                    tx.commit().await?;
                    self.committed(&records);
                    Ok(value)
                }
                .await;
                if let Err(error) = &committed {
                    self.observe(error);
                }
                committed
            }
            Err(error) => {
                // A failed audit write of the failure is observed where it is written.
                self.observe(&error);
                tx.rollback().await?;
                self.audit_failure(entry, &error).await?;
                Err(error)
            }
        }
    }

    /// Tells this node's caches that the mutations of these (committed) records happened:
    /// forward-auth answers of the tenants they name are recomputed (`billing::access_cache`).
    pub(crate) fn committed(&self, records: &[AuditRecord]) {
        let tenants = records.iter().filter_map(|record| {
            record
                .tenant_id
                .as_deref()
                .or_else(|| record.target.strip_prefix("tenant:"))
        });
        self.inner.access_cache.invalidate(tenants);
    }

    /// Appends audit records inside the caller's transaction, under the policies in force.
    pub(crate) async fn append_audit(
        &self,
        tx: &mut Tx,
        now: time::OffsetDateTime,
        entries: Vec<NewAudit>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        audit::append(
            self.db(),
            tx,
            self.inner.authz.policy_sha256(),
            now,
            entries,
        )
        .await
    }

    /// Notes a failure for want of the store, which keeps `/readyz` at "not ready" for a while.
    pub(crate) fn observe(&self, error: &ServiceError) {
        if error.is_store_unavailable() {
            self.db().note_write_unavailable();
        }
    }

    /// Audits a denied or failed attempt in a transaction of its own.
    pub(crate) async fn audit_failure(
        &self,
        mut entry: NewAudit,
        error: &ServiceError,
    ) -> Result<(), ServiceError> {
        if let (Some(reason), Value::Object(details)) = (&entry.reason, &mut entry.details) {
            details.insert("requested_reason".to_owned(), json!(reason));
        }
        entry.outcome = error.audit_outcome();
        entry.reason = Some(error.to_string());
        if let (ServiceError::Validation(errors), Value::Object(details)) =
            (error, &mut entry.details)
        {
            details.insert("errors".to_owned(), json!(errors.errors()));
        }
        self.audit_alone(entry).await?;
        Ok(())
    }

    /// Writes one audit record in its own transaction.
    pub(crate) async fn audit_alone(&self, entry: NewAudit) -> Result<AuditRecord, StoreError> {
        let written = self.audit_alone_in_tx(entry).await;
        if written.as_ref().is_err_and(StoreError::is_unavailable) {
            self.db().note_write_unavailable();
        }
        written
    }

    async fn audit_alone_in_tx(&self, entry: NewAudit) -> Result<AuditRecord, StoreError> {
        let mut tx = self.db().begin().await?;
        let mut records = self.append_audit(&mut tx, self.now(), vec![entry]).await?;
        tx.commit().await?;
        records
            .pop()
            .ok_or_else(|| StoreError::corrupt("audit append returned nothing"))
    }

    /// Authorizes a read; a denial is audited.
    pub(crate) async fn authorize_read(
        &self,
        actor: &Actor,
        action: Action,
        resource: Resource<'_>,
        target: &str,
        tenant_id: Option<&str>,
    ) -> Result<(), ServiceError> {
        let decision = self
            .inner
            .authz
            .authorize(&actor.principal, action, resource, &[]);
        self.inner.metrics.authorization(decision.allowed);
        if decision.allowed {
            return Ok(());
        }
        let error = ServiceError::Forbidden(decision.denial_reason(action));
        let mut entry = NewAudit::new(
            &actor.principal,
            actor.request_id.as_deref(),
            action.as_str(),
            target,
        )
        .channel(actor.channel)
        .details(json!({"policies": decision.policy_ids}));
        entry.tenant_id = tenant_id.map(str::to_owned);
        self.audit_failure(entry, &error).await?;
        Err(error)
    }

    pub(crate) fn entry(&self, actor: &Actor, action: &str, target: &str) -> NewAudit {
        NewAudit::new(
            &actor.principal,
            actor.request_id.as_deref(),
            action,
            target,
        )
        .channel(actor.channel)
    }

    // ---- operators ----

    /// Creates an operator (CONTRACT §3); the token is returned only here.
    pub async fn create_operator(
        &self,
        actor: &Actor,
        name: &str,
        role: &str,
    ) -> Result<CreatedOperator, ServiceError> {
        let mut entry = self
            .entry(actor, "operator.create", "operators")
            .details(json!({"name": name, "role": role}));
        let mut tx = self.db().begin().await?;
        let result = async {
            self.require(
                actor,
                Action::OperatorCreate,
                Resource::Deployment,
                &[],
                &mut entry,
            )?;
            let mut collector = companyos_domain::error::Collector::new();
            let name = collector.take(OperatorName::parse(name));
            let role = collector.take(Role::parse(role));
            collector.finish()?;
            let (Some(name), Some(role)) = (name, role) else {
                return Err(ServiceError::Internal("validated operator".to_owned()));
            };
            let now = self.now();
            let id = new_id("op", now);
            let token = new_token(OPERATOR_TOKEN_PREFIX);
            let inserted = sqlx::query(
                "INSERT INTO operators (id, name, role, token_sha256, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(name.as_str())
            .bind(role.as_str())
            .bind(token_hash(&token))
            .bind(companyos_domain::time_util::to_micros(now))
            .bind(actor.principal.actor_name())
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Err(ServiceError::conflict(format!(
                    "an operator named {name} already exists"
                )));
            }
            entry.target = format!("operator:{id}");
            Ok(CreatedOperator {
                operator: OperatorView {
                    id,
                    name: name.into_string(),
                    role,
                    created_at: now,
                    revoked: false,
                },
                token,
            })
        }
        .await;
        self.finish(tx, entry, result).await
    }

    pub async fn list_operators(&self, actor: &Actor) -> Result<Vec<OperatorView>, ServiceError> {
        self.authorize_read(
            actor,
            Action::OperatorRead,
            Resource::Deployment,
            "operators",
            None,
        )
        .await?;
        let rows = sqlx::query(
            "SELECT id, name, role, created_at, revoked_at FROM operators ORDER BY created_at",
        )
        .fetch_all(self.db().readers())
        .await?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                Ok(OperatorView {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    role: Role::parse(&role)
                        .map_err(|_| StoreError::corrupt(format!("operator role {role:?}")))?,
                    created_at: companyos_domain::time_util::from_micros(
                        row.try_get("created_at")?,
                    ),
                    revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
                })
            })
            .collect()
    }

    /// Revokes an operator's token; it stops working at once.
    pub async fn revoke_operator(&self, actor: &Actor, id: &str) -> Result<(), ServiceError> {
        let mut entry = self.entry(actor, "operator.revoke", &format!("operator:{id}"));
        let mut tx = self.db().begin().await?;
        let result = async {
            self.require(
                actor,
                Action::OperatorRevoke,
                Resource::Deployment,
                &[],
                &mut entry,
            )?;
            if actor.principal.operator_id() == Some(id) {
                return Err(ServiceError::conflict("an operator cannot revoke itself"));
            }
            let updated = sqlx::query(
                "UPDATE operators SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(self.now_micros())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                return Err(ServiceError::NotFound(format!("active operator {id}")));
            }
            Ok(())
        }
        .await;
        self.finish(tx, entry, result).await
    }

    // ---- policies, audit, evidence ----

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

    /// Audit records matching `filter`.
    pub async fn audit_records(
        &self,
        actor: &Actor,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditRecord>, ServiceError> {
        self.authorize_read(
            actor,
            Action::AuditRead,
            Resource::Deployment,
            "audit",
            filter.tenant_id.as_deref(),
        )
        .await?;
        let mut conn = self.db().readers().acquire().await?;
        Ok(audit::query(&mut conn, filter).await?)
    }

    /// Verifies the audit log (for `companyos audit verify` and the integrity job).
    pub async fn verify_audit(&self) -> Result<Vec<crate::ledger_store::LogProblem>, ServiceError> {
        // One snapshot: the head, the leaves and the records as they were committed together.
        let mut snapshot = self.db().begin_snapshot().await?;
        let problems = audit::verify(
            &mut snapshot,
            &self.inner.keys.checkpoint_verifier(),
            &self.settings().audit_origin(),
        )
        .await?;
        snapshot.rollback().await.map_err(StoreError::from)?;
        Ok(problems)
    }

    pub async fn list_evidence(
        &self,
        actor: &Actor,
        tenant_id: Option<&str>,
        kind: Option<&str>,
    ) -> Result<Vec<EvidenceRecord>, ServiceError> {
        self.authorize_read(
            actor,
            Action::EvidenceRead,
            Resource::Deployment,
            "evidence",
            tenant_id,
        )
        .await?;
        let mut conn = self.db().readers().acquire().await?;
        Ok(evidence::list(&mut conn, tenant_id, kind, 1000).await?)
    }

    /// An artifact's index entry and bytes.
    pub async fn evidence(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<(EvidenceRecord, Vec<u8>), ServiceError> {
        self.authorize_read(
            actor,
            Action::EvidenceRead,
            Resource::Deployment,
            &format!("evidence:{id}"),
            None,
        )
        .await?;
        let mut conn = self.db().readers().acquire().await?;
        let record = evidence::get(&mut conn, id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("evidence {id}")))?;
        let bytes = self.blobs().get(&record.sha256).await?.ok_or_else(|| {
            ServiceError::Store(StoreError::corrupt(format!(
                "evidence {id}: its bytes are missing from the evidence store"
            )))
        })?;
        Ok((record, bytes))
    }

    /// The minisign public key that verifies every artifact (public).
    pub fn evidence_public_key(&self) -> String {
        self.inner.keys.minisign.public_key_base64()
    }

    /// The C2SP note verifier key of every checkpoint (public).
    pub fn ledger_verifier_key(&self) -> String {
        self.inner.keys.checkpoint_verifier().to_string()
    }

    /// Stores an artifact in its own audited transaction (for reports generated on request).
    pub(crate) async fn store_evidence_in(
        &self,
        tx: &mut Tx,
        actor: &Actor,
        artifact: evidence::NewArtifact,
    ) -> Result<EvidenceRecord, ServiceError> {
        Ok(evidence::store(
            tx,
            self.blobs(),
            &self.inner.keys.minisign,
            self.now(),
            &actor.principal.actor_name(),
            artifact,
        )
        .await?)
    }

    /// Whether the store answers (for `/readyz`).
    pub async fn ready(&self) -> bool {
        self.db().takes_writes().await
    }
}
