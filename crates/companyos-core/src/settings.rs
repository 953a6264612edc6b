//! The settings of the service layer, already validated: limits, time windows, catalogs,
//! approvals and drivers. The binary builds them from flags, `COMPANYOS_*` variables and
//! `companyos.toml`; tests build them directly.

use std::path::PathBuf;
use std::time::Duration as StdDuration;

use companyos_domain::metering::CoverageMode;
use companyos_domain::plan::{Plan, default_plans, default_regions};
use companyos_domain::{LifecycleAction, PlanName, RegionName};
use time::Duration;

use crate::jobs::outbound::OutboundPolicy;

/// What to do with usage events that carry no `source_signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureRequirement {
    /// Accept them, flagged `unsigned` and counted.
    #[default]
    Warn,
    /// Reject them.
    Enforce,
}

impl SignatureRequirement {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "warn" => Some(Self::Warn),
            "enforce" => Some(Self::Enforce),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warn => "warn",
            Self::Enforce => "enforce",
        }
    }
}

/// Where tenant boundaries are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundaryDriverSettings {
    /// A directory per tenant (mode 0700) with its own SQLite database.
    Directory,
    /// A schema and a login role per tenant on the PostgreSQL store.
    Postgres,
    /// An external provisioner called with HMAC-signed webhooks through the outbox.
    Webhook { url: String, secret: String },
}

impl BoundaryDriverSettings {
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Which driver this is, as the tenant row stores it.
    pub fn kind(&self) -> companyos_domain::boundary::BoundaryDriverKind {
        use companyos_domain::boundary::BoundaryDriverKind;
        match self {
            Self::Directory => BoundaryDriverKind::Directory,
            Self::Postgres => BoundaryDriverKind::Postgres,
            Self::Webhook { .. } => BoundaryDriverKind::Webhook,
        }
    }
}

/// Where evidence bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvidenceStoreKind {
    #[default]
    FileSystem,
    Database,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; `None` is the SQLite file in the data dir.
    pub database_url: Option<String>,
    pub pool_connections_max: u32,
    /// Name of the deployment's logs: the checkpoint key name and the origin prefix.
    pub log_name: String,
    /// Events older than this when received are `late`.
    pub late_window: Duration,
    /// Events older than this are rejected.
    pub backdate_max: Duration,
    /// Events further in the future than this are rejected.
    pub future_tolerance: Duration,
    pub require_signature: SignatureRequirement,
    /// The deployment's coverage mode until an operator changes it through the API.
    pub coverage_mode_default: CoverageMode,
    /// Lifecycle actions that need a second person's approval.
    pub approval_required: Vec<LifecycleAction>,
    pub approval_ttl: Duration,
    pub regions: Vec<RegionName>,
    pub plans: Vec<Plan>,
    pub boundary_driver: BoundaryDriverSettings,
    pub evidence_store: EvidenceStoreKind,
    /// Events per ingestion request.
    pub batch_events_max: usize,
    /// Events committed in one group commit across requests.
    pub group_commit_events_max: usize,
    /// PostgreSQL: how long the ingestion writer waits for more requests when a group would
    /// hold fewer than [`Settings::group_commit_linger_events`] events and requests are
    /// arriving concurrently (the last group held several, or one waited). Why: a PostgreSQL group
    /// pays a fixed cost per tenant it touches (its head, bundle, rollup and counter rows) and
    /// per round trip, so two clients that each wait for their answer are served faster in one
    /// group than in alternating groups of one request each (ADR 0008). Zero turns it off.
    pub group_commit_linger: std::time::Duration,
    /// Events a group must hold for the writer to start it without lingering.
    pub group_commit_linger_events: usize,
    /// Requests waiting for the ingestion writer.
    pub ingest_queue_capacity: usize,
    /// SQLite: stored events whose dedupe keys are held in memory before the writer writes them
    /// out as a run of the on-disk key index (see `dedupe`, ADR 0007). Bounds that memory
    /// (about 40 bytes a row) and the time of one merge.
    pub dedupe_tail_rows_max: usize,
    /// SQLite: key index blocks (100 keys each) one compaction step writes, in a transaction of
    /// its own between group commits: bounds how long a step holds the write lock.
    pub dedupe_compaction_step_blocks: usize,
    /// Bytes of a rejected event's body kept for the reconciliation report.
    pub rejected_raw_bytes_max: usize,
    /// How often background jobs run.
    pub job_interval: StdDuration,
    /// How long a job lease lasts without renewal.
    pub job_lease: Duration,
    /// Outbox deliveries are retried at most this many times.
    pub outbox_attempts_max: u32,
    pub outbox_timeout: StdDuration,
    /// Which addresses webhooks and the webhook driver may reach: public addresses always,
    /// internal ones (loopback, private, link-local, ...) only inside these ranges (empty by
    /// default). See `outbound`.
    pub outbound: OutboundPolicy,
    /// Failed authentications one source address may make in a minute before it is answered
    /// 429 (see `auth_failures`); its failures are audited either way.
    pub auth_failures_per_minute_max: u64,
    /// HTTP server (read by `companyos-server`, here so every adapter and test sets them in one
    /// place): a client must send a request's whole header within this time, or the
    /// connection is closed (slow or half-sent requests cannot hold a connection).
    pub http_header_read_timeout: StdDuration,
    /// A keep-alive connection with no request in flight and no bytes moving for this long is
    /// closed.
    pub http_idle_timeout: StdDuration,
    /// Open connections at most; one more is closed at once (the client may retry), so file
    /// handles stay available for the store and for `/healthz`.
    pub http_connections_max: usize,
    /// Whether the ingestion group commit keeps quota state (billing, ADR 0011). Always on in
    /// a deployment; `companyos-bench quota-ingest` turns it off for its same-run baseline.
    pub quota_state: bool,
    /// How long this node keeps a forward-auth answer (`billing::access_cache`): the bound on
    /// how late another node's change reaches it (this node's own changes end its answers at
    /// once). Zero reads the store on every request.
    pub forward_auth_cache: StdDuration,
}

impl Settings {
    /// Defaults for a data dir: embedded store, the sprint's windows and limits.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            database_url: None,
            pool_connections_max: 16,
            log_name: "companyos.local".to_owned(),
            late_window: Duration::hours(48),
            backdate_max: Duration::days(35),
            future_tolerance: Duration::minutes(5),
            require_signature: SignatureRequirement::Warn,
            coverage_mode_default: CoverageMode::Warn,
            approval_required: vec![LifecycleAction::Delete, LifecycleAction::Purge],
            approval_ttl: Duration::hours(72),
            regions: default_regions(),
            plans: default_plans(),
            boundary_driver: BoundaryDriverSettings::Directory,
            evidence_store: EvidenceStoreKind::FileSystem,
            batch_events_max: 10_000,
            group_commit_events_max: 50_000,
            group_commit_linger: std::time::Duration::from_millis(5),
            group_commit_linger_events: 2_000,
            ingest_queue_capacity: 256,
            dedupe_tail_rows_max: 1_000_000,
            dedupe_compaction_step_blocks: 512,
            rejected_raw_bytes_max: 4096,
            job_interval: StdDuration::from_secs(5),
            job_lease: Duration::seconds(30),
            outbox_attempts_max: 10,
            outbox_timeout: StdDuration::from_secs(10),
            outbound: OutboundPolicy::default(),
            auth_failures_per_minute_max: 60,
            http_header_read_timeout: StdDuration::from_secs(10),
            http_idle_timeout: StdDuration::from_secs(60),
            http_connections_max: 512,
            quota_state: true,
            forward_auth_cache: StdDuration::from_secs(1),
        }
    }

    pub fn plan(&self, name: &PlanName) -> Option<&Plan> {
        self.plans.iter().find(|p| &p.name == name)
    }

    pub fn needs_approval(&self, action: LifecycleAction) -> bool {
        self.approval_required.contains(&action)
    }

    pub fn tenant_origin(&self, tenant_id: &str) -> String {
        format!("{}/tenants/{tenant_id}", self.log_name)
    }

    pub fn audit_origin(&self) -> String {
        format!("{}/audit", self.log_name)
    }
}
