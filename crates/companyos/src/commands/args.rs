//! The clap arguments of the command groups: their flags, help texts and examples.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator; prints its token once.
    #[command(after_long_help = "Example:\n  companyos operator create --name vera --role viewer")]
    Create {
        /// The operator's name (unique).
        #[arg(long)]
        name: String,
        /// viewer, operator, approver, admin, auditor, billing or ingest (services that send
        /// usage).
        #[arg(long)]
        role: String,
    },
    /// List operators.
    List,
    /// Revoke an operator's token.
    Revoke {
        /// The operator's id (`companyos operator list`).
        id: String,
    },
    /// Issue a new token for the `admin` operator, revoking the old one. Works on the store
    /// directly (--data-dir / --database-url), like `init`; prints the token once or writes it
    /// to --token-file (mode 0600). Audited as operator.reset_admin.
    ResetAdmin {
        /// Write the new token to this file (mode 0600) instead of printing it.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create and provision a tenant; prints its API key once.
    #[command(after_long_help = "\
Examples:
  companyos tenant create acme --name Acme
  companyos tenant create acme --name Acme --plan enterprise \\
      --home-region eu-west-1 --allowed-regions eu-west-1,eu-central-1")]
    Create {
        /// The tenant id: 3 to 63 of a-z, 0-9 and -, starting with a letter; never reused.
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Plan from the catalog (`companyos plan list`; built in: free, standard, enterprise)
        /// [default: standard]; the tenant gets its latest version.
        #[arg(long)]
        plan: Option<String>,
        /// Region where the tenant lives [default: the first allowed region, else the first
        /// of the region catalog (--regions), eu-west-1].
        #[arg(long)]
        home_region: Option<String>,
        /// Regions the tenant may be deployed to, comma separated [default: the home region].
        #[arg(long, value_delimiter = ',')]
        allowed_regions: Option<Vec<String>>,
        /// Regions to deploy to now, comma separated [default: the home region].
        #[arg(long, value_delimiter = ',')]
        deploy_regions: Option<Vec<String>>,
    },
    /// List tenants.
    List {
        /// Only tenants in this state: provisioning, active, suspended, deleting, purged or
        /// a *_failed state [default: all].
        #[arg(long)]
        status: Option<String>,
    },
    /// Show a tenant.
    Show {
        /// The tenant id.
        id: String,
    },
    /// Suspend: block every access path and scale workloads to zero.
    Suspend {
        /// The tenant id.
        id: String,
        /// Why (kept in the audit record).
        #[arg(long)]
        reason: String,
    },
    /// Reactivate a suspended tenant.
    Reactivate {
        /// The tenant id.
        id: String,
        /// Why (kept in the audit record).
        #[arg(long)]
        reason: String,
    },
    /// Delete (tombstone; restorable until purge). Needs --confirm <id> and usually approval.
    Delete {
        /// The tenant id.
        id: String,
        /// Why (kept in the audit record).
        #[arg(long)]
        reason: String,
        /// Repeat the tenant id to confirm.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Restore a deleted tenant.
    Restore {
        /// The tenant id.
        id: String,
        /// Why (kept in the audit record).
        #[arg(long)]
        reason: String,
    },
    /// Purge (irreversible). Needs --confirm <id> and usually approval.
    Purge {
        /// The tenant id.
        id: String,
        /// Why (kept in the audit record).
        #[arg(long)]
        reason: String,
        /// Repeat the tenant id to confirm.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Add or remove deploy regions.
    Regions {
        /// The tenant id.
        id: String,
        /// Regions to deploy to, comma separated (each among the tenant's allowed regions).
        #[arg(long, value_delimiter = ',')]
        add: Vec<String>,
        /// Regions to leave, comma separated.
        #[arg(long, value_delimiter = ',')]
        remove: Vec<String>,
    },
    /// Set a workload's replicas, or list workloads when no name is given.
    Workload {
        /// The tenant id.
        id: String,
        /// The workload's name [default: list the workloads].
        name: Option<String>,
        /// Replicas of the named workload.
        #[arg(long)]
        replicas: Option<i64>,
    },
    /// Change retention: tombstone days, legal hold, hard delete.
    Retention {
        /// The tenant id.
        id: String,
        /// Days a deleted tenant stays restorable before purge [default: unchanged; the
        /// plan's at creation].
        #[arg(long)]
        tombstone_days: Option<u32>,
        /// true blocks purge [default: unchanged].
        #[arg(long)]
        legal_hold: Option<bool>,
        /// Whether purge may hard-delete the tenant's data [default: unchanged].
        #[arg(long)]
        hard_delete_allowed: Option<bool>,
        /// Why (kept in the audit record).
        #[arg(long)]
        reason: String,
    },
    /// Retry a failed provisioning.
    Retry {
        /// The tenant id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// List approvals.
    List {
        /// Only approvals in this state: pending, approved, rejected or expired [default: all].
        #[arg(long)]
        status: Option<String>,
    },
    /// Approve (and run) a pending action; never your own request.
    Approve {
        /// The approval id (`companyos approval list --status pending`).
        id: String,
        /// A note kept in the audit record.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a pending action.
    Reject {
        /// The approval id.
        id: String,
        /// A note kept in the audit record.
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsageCommand {
    /// Send events from a file (JSON array or NDJSON), streamed in batches.
    Send {
        /// The events: a JSON array or NDJSON (one event a line).
        file: PathBuf,
        /// Events per request.
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
        /// Print every rejected event, not only the first ten.
        #[arg(long)]
        all_errors: bool,
    },
    /// Daily usage and reconciliation of a tenant.
    #[command(after_long_help = "\
Examples:
  companyos usage report --tenant acme --from 2026-01-01 --to 2026-01-31
  companyos usage report --tenant acme --from 2026-01-01 --to 2026-01-31 --output csv > daily.csv
  companyos usage report --tenant acme --from 2026-01-01 --to 2026-01-31 --output csv \\
      --what reconciliation > reconciliation.csv")]
    Report {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// First day, YYYY-MM-DD (UTC).
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD (UTC), included.
        #[arg(long)]
        to: String,
        /// Which table: daily usage or the reconciliation [default: both in table and json;
        /// daily with --output csv, which prints one table].
        #[arg(long, value_enum)]
        what: Option<ReportPart>,
    },
    /// Build and sign an integrity report; prints its evidence id.
    Integrity {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// First day, YYYY-MM-DD (UTC).
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD (UTC), included.
        #[arg(long)]
        to: String,
    },
    /// Register a usage source and its Ed25519 public key.
    Source {
        /// The source's id (the `source_id` of its signed events).
        id: String,
        /// The service that emits through it.
        #[arg(long)]
        service: String,
        /// Its Ed25519 public key (base64).
        #[arg(long)]
        public_key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Verify every stored leaf, node, root, checkpoint and payload (reads the store directly).
    Verify {
        /// Only this tenant's ledger [default: every tenant].
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Fetch the inclusion proof of an event (through the API).
    Proof {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// The event's `event_id`.
        #[arg(long)]
        event_id: String,
        /// Prove against this tree size [default: the latest checkpoint].
        #[arg(long)]
        tree_size: Option<u64>,
    },
    /// Fetch a tenant's latest signed checkpoint.
    Checkpoint {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the audit log (reads the store directly).
    Verify,
    /// Export audit records (through the API): JSON lines, or CSV with --output csv.
    Export {
        /// Only records about this tenant [default: all].
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Write a tenant's disclosure pack (every audit record about it, with proofs; signed).
    Disclose {
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day (inclusive), YYYY-MM-DD.
        #[arg(long)]
        to: String,
        /// The zip to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum MeteringCommand {
    /// Declare what a service meters, from a TOML file (format: README.md, "Metering
    /// declarations").
    #[command(after_long_help = DECLARATION_EXAMPLE)]
    Declare {
        /// The declaration (TOML).
        file: PathBuf,
    },
    /// Lint a declaration offline (for a service's CI): exit 1 naming each problem.
    #[command(after_long_help = DECLARATION_EXAMPLE)]
    Check {
        /// The declaration (TOML).
        file: PathBuf,
    },
    /// The coverage report.
    Coverage,
    /// Set the coverage mode of the deployment, or of one service.
    Mode {
        /// warn or enforce (or `inherit` to drop a service's override).
        mode: String,
        /// Set it for this service only [default: the deployment's mode].
        #[arg(long)]
        service: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EvidenceCommand {
    /// List artifacts.
    List {
        /// Only this tenant's artifacts [default: all].
        #[arg(long)]
        tenant: Option<String>,
        /// Only artifacts of this kind (e.g. tenant_dossier, integrity_report) [default: all].
        #[arg(long)]
        kind: Option<String>,
    },
    /// Download an artifact and its signature (.minisig) into a folder.
    Get {
        /// The evidence id (e.g. the `dossier_evidence_id` printed by `tenant create`).
        id: String,
        /// Folder to write into.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
}

/// Which table of `usage report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportPart {
    /// Usage per day, service, metric and unit.
    Daily,
    /// Accepted, duplicate, late, invalid, conflicting and missing events per day.
    Reconciliation,
}

/// The declaration format, shown under `metering declare|check --help`.
const DECLARATION_EXAMPLE: &str = "\
Declaration format (TOML):
  service = \"search\"             # ^[a-z][a-z0-9-]{0,62}$
  [[metrics]]
  name = \"requests\"              # the event's `metric`
  unit = \"request\"               # the event's `unit`
  aggregation = \"sum\"            # sum, count or max [default: sum]
  description = \"API requests\"   # required, what one unit is";
