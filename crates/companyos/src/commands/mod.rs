//! The subcommands: `init` and `serve`, the store commands, and the API client commands.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use companyos_core::App;
use companyos_core::clock::{Clock, OffsetClock, SystemClock};
use companyos_core::ledger::VerifyProgress;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{ApiClient, encode};
use crate::config::{FileConfig, ResolvedServer, resolve_server};
use crate::output::{self, OutputFormat, fields, table};
use crate::{Cli, Command};

mod plans;
mod records;
mod statements;
mod tenants;

pub use plans::PlanCommand;
use records::*;
pub use statements::StatementCommand;
use tenants::*;

/// Wrong usage found after parsing (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

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

fn data_dir(cli: &Cli, file: &FileConfig) -> PathBuf {
    cli.data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("companyos-data"))
}

fn server_settings(cli: &Cli, file: &FileConfig) -> anyhow::Result<ResolvedServer> {
    resolve_server(
        data_dir(cli, file),
        cli.database_url
            .clone()
            .or_else(|| file.database_url.clone()),
        &cli.server,
        file,
    )
    // A setting out of range or of an unknown value is bad usage (exit code 2).
    .map_err(|error| UsageError(format!("{error:#}")).into())
}

fn clock(offset: time::Duration) -> Arc<dyn Clock> {
    if offset.is_zero() {
        Arc::new(SystemClock)
    } else {
        Arc::new(OffsetClock { offset })
    }
}

fn api(cli: &Cli, file: &FileConfig) -> anyhow::Result<ApiClient> {
    let url = cli
        .url
        .clone()
        .or_else(|| file.url.clone())
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
    ApiClient::new(&url, cli.token.clone())
}

/// Opens a file for a secret (a token) before the secret exists: mode 0600 whatever existed at
/// `path`; a symbolic link is refused.
fn open_secret_file(
    path: &Path,
) -> anyhow::Result<companyos_core::evidence::secret_files::SecretFile> {
    companyos_core::evidence::secret_files::SecretFile::open(path)
        .with_context(|| format!("failed to open the secret file {}", path.display()))
}

/// Runs the parsed command; returns the exit code.
pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let file = FileConfig::load(cli.config.as_deref())?;
    let log_format = cli.log_format.clone().or_else(|| file.log_format.clone());
    if cli.output == Some(OutputFormat::Csv)
        && !matches!(
            cli.command,
            Command::Usage(UsageCommand::Report { .. })
                | Command::Audit(AuditCommand::Export { .. })
        )
    {
        return Err(UsageError(
            "--output csv is for `usage report` and `audit export`; use table or json here"
                .to_owned(),
        )
        .into());
    }
    // The server logs what it does (info); a one-shot command prints its result on stdout and
    // logs only what goes wrong (warn), unless COMPANYOS_LOG asks for more.
    match &cli.command {
        Command::Serve => crate::logging(log_format.as_deref(), crate::LOG_FILTER_SERVER)?,
        Command::Init { .. }
        | Command::Demo { .. }
        | Command::Ledger(LedgerCommand::Verify { .. })
        | Command::Audit(AuditCommand::Verify)
        | Command::Operator(OperatorCommand::ResetAdmin { .. }) => {
            crate::logging(log_format.as_deref(), crate::LOG_FILTER_ONE_SHOT)?;
        }
        _ => {}
    }
    match &cli.command {
        Command::Init { admin_token_file } => init(&cli, &file, admin_token_file.as_deref()).await,
        Command::Serve => serve(&cli, &file).await,
        Command::Operator(command) => operator(&cli, &file, command).await,
        Command::Tenant(command) => tenant(&cli, &file, command).await,
        Command::Approval(command) => approval(&cli, &file, command).await,
        Command::Usage(command) => usage(&cli, &file, command).await,
        Command::Ledger(command) => ledger(&cli, &file, command).await,
        Command::Audit(command) => audit(&cli, &file, command).await,
        Command::Metering(command) => metering(&cli, &file, command).await,
        Command::Evidence(command) => evidence(&cli, &file, command).await,
        Command::Plan(command) => plans::plan(&cli, &api(&cli, &file)?, command).await,
        Command::Statement(command) => statements::statement(&cli, &file, command).await,
        Command::Demo { out } => crate::demo::run(out).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            // Into memory first: clap_complete panics when its writer fails (`| head`), a
            // failed write to stdout is only an error.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "companyos", &mut script);
            std::io::stdout()
                .write_all(&script)
                .context("failed to write the completion script")?;
            Ok(0)
        }
    }
}

async fn init(cli: &Cli, file: &FileConfig, token_file: Option<&Path>) -> anyhow::Result<u8> {
    let resolved = server_settings(cli, file)?;
    let dir = resolved.settings.data_dir.clone();
    // The token file is opened (and refused, if it is a link) before the store creates the
    // token: a token that cannot be written must not be created, it could never be shown.
    let secret = token_file.map(open_secret_file).transpose()?;
    let database_url = resolved.settings.database_url.clone();
    let (app, report) = match App::open(resolved.settings, clock(resolved.clock_offset)).await {
        Ok(opened) => opened,
        Err(error) => {
            if let Some(secret) = secret {
                let _ = secret.abandon();
            }
            return Err(open_error(error, database_url.as_deref()).context("failed to initialise"));
        }
    };
    app.db().close().await;
    match report.admin_token {
        Some(token) => match (token_file, secret) {
            (Some(path), Some(secret)) => {
                secret
                    .write(format!("{token}\n").as_bytes())
                    .with_context(|| {
                        format!("failed to write the secret file {}", path.display())
                    })?;
                println!(
                    "initialised {}; the admin token is in {} (mode 0600)",
                    dir.display(),
                    path.display()
                );
            }
            _ => {
                println!("initialised {}", dir.display());
                println!("admin token (shown once, keep it safe): {token}");
            }
        },
        None => {
            if let Some(secret) = secret {
                secret
                    .abandon()
                    .context("failed to remove the unused token file")?;
            }
            println!("{} is already initialised; nothing changed", dir.display());
        }
    }
    Ok(0)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn serve(cli: &Cli, file: &FileConfig) -> anyhow::Result<u8> {
    let resolved = server_settings(cli, file)?;
    let listen = cli
        .listen
        .clone()
        .or_else(|| file.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let address: std::net::SocketAddr = listen.parse().map_err(|_| {
        UsageError(format!(
            "setting listen must be an address like 127.0.0.1:8080, got {listen:?}"
        ))
    })?;
    // Bind before the store is opened: a first start that cannot listen must not initialise
    // the store, or the bootstrap admin token it creates would never be shown.
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to listen on {address}"))?;
    let database_url = resolved.settings.database_url.clone();
    let (app, report) = App::open(resolved.settings, clock(resolved.clock_offset))
        .await
        .map_err(|error| open_error(error, database_url.as_deref()))
        .context("failed to open the store")?;
    let bound = listener.local_addr()?;
    if let Some(token) = &report.admin_token {
        println!("admin token (shown once, keep it safe): {token}");
    }
    // Scripts and tests parse the "listening on" line: it stays exactly as it is, the console
    // gets its own line after it.
    println!("listening on http://{bound}");
    println!("console: http://{bound}/console (sign in with an operator token)");
    std::io::stdout().flush()?;
    tracing::info!(address = %bound, store = app.db().backend().as_str(), "serving");
    let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
    let jobs_app = app.clone();
    let jobs = tokio::spawn(async move { jobs_app.jobs().run(jobs_stopped).await });
    let state = companyos_server::AppState {
        app: app.clone(),
        body_bytes_max: resolved.body_bytes_max,
    };
    companyos_server::serve(state, listener, shutdown_signal())
        .await
        .context("the server failed")?;
    let _ = stop_jobs.send(true);
    let _ = jobs.await;
    app.db().close().await;
    tracing::info!("stopped");
    Ok(0)
}

/// Opens the store of an existing data dir (store commands must not create one).
async fn open_existing(cli: &Cli, file: &FileConfig) -> anyhow::Result<App> {
    let resolved = server_settings(cli, file)?;
    if resolved.settings.database_url.is_none()
        && !resolved.settings.data_dir.join("companyos.db").exists()
    {
        bail!(
            "no CompanyOS store in {} (run companyos init, or pass --data-dir / --database-url)",
            resolved.settings.data_dir.display()
        );
    }
    let database_url = resolved.settings.database_url.clone();
    let (app, _) = App::open(resolved.settings, clock(resolved.clock_offset))
        .await
        .map_err(|error| open_error(error, database_url.as_deref()))?;
    Ok(app)
}

/// A PostgreSQL database that does not exist yet: the store never creates one (its owner,
/// encoding and place are the operator's choice), so the error says how to.
#[derive(Debug, thiserror::Error)]
#[error(
    "PostgreSQL database {name:?} does not exist; create it first: createdb -h {host} -p {port} -U {user} {name} (or CREATE DATABASE {name};)"
)]
pub struct MissingDatabase {
    name: String,
    host: String,
    port: u16,
    user: String,
}

/// The error of `App::open`, with a missing PostgreSQL database named once with its remedy.
fn open_error<E>(error: E, database_url: Option<&str>) -> anyhow::Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut missing = false;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = current {
        if let Some(sqlx::Error::Database(db)) = cause.downcast_ref::<sqlx::Error>() {
            // 3D000 invalid_catalog_name: the database named in the URL does not exist.
            missing |= db.code().as_deref() == Some("3D000");
        }
        current = cause.source();
    }
    let url = database_url.and_then(|u| reqwest::Url::parse(u).ok());
    match (missing, url) {
        (true, Some(url)) => MissingDatabase {
            name: url.path().trim_start_matches('/').to_owned(),
            host: url.host_str().unwrap_or("127.0.0.1").to_owned(),
            port: url.port().unwrap_or(5432),
            user: match url.username() {
                "" => "postgres".to_owned(),
                user => user.to_owned(),
            },
        }
        .into(),
        _ => error.into(),
    }
}

async fn operator(cli: &Cli, file: &FileConfig, command: &OperatorCommand) -> anyhow::Result<u8> {
    if let OperatorCommand::ResetAdmin { token_file } = command {
        return reset_admin(cli, file, token_file.as_deref()).await;
    }
    let api = api(cli, file)?;
    match command {
        OperatorCommand::Create { name, role } => {
            let (_, value) = api
                .call(
                    Method::POST,
                    "/v1/operators",
                    Some(&json!({"name": name, "role": role})),
                )
                .await?;
            output::print(cli.format(), &value, |v| {
                format!(
                    "{}token (shown once): {}\n",
                    fields(v, &["id", "name", "role"]),
                    output::cell(&v["token"])
                )
            });
        }
        OperatorCommand::List => {
            let (_, value) = api.call(Method::GET, "/v1/operators", None).await?;
            output::print(cli.format(), &value, |v| {
                table(
                    v.as_array().map_or(&[], Vec::as_slice),
                    &["id", "name", "role", "revoked", "created_at"],
                )
            });
        }
        OperatorCommand::ResetAdmin { .. } => {}
        OperatorCommand::Revoke { id } => {
            let (_, value) = api
                .call(
                    Method::POST,
                    &format!("/v1/operators/{}/revoke", encode(id)),
                    None,
                )
                .await?;
            output::print(cli.format(), &value, |_| format!("revoked {id}\n"));
        }
    }
    Ok(0)
}

/// `operator reset-admin`: a new admin token from the store itself (the lost-token recovery).
async fn reset_admin(
    cli: &Cli,
    file: &FileConfig,
    token_file: Option<&Path>,
) -> anyhow::Result<u8> {
    // Opened first: the old token is not revoked unless the new one has somewhere to go.
    let secret = token_file.map(open_secret_file).transpose()?;
    let result = async {
        let app = open_existing(cli, file).await?;
        let result = app.operators().reset_admin().await;
        app.db().close().await;
        result.context("failed to reset the admin token")
    }
    .await;
    let token = match result {
        Ok(token) => token,
        Err(error) => {
            if let Some(secret) = secret {
                let _ = secret.abandon();
            }
            return Err(error);
        }
    };
    match (token_file, secret) {
        (Some(path), Some(secret)) => {
            secret
                .write(format!("{token}\n").as_bytes())
                .with_context(|| format!("failed to write the secret file {}", path.display()))?;
            println!(
                "the old admin token is revoked; the new one is in {} (mode 0600)",
                path.display()
            );
        }
        _ => {
            println!("the old admin token is revoked");
            println!("admin token (shown once, keep it safe): {token}");
        }
    }
    Ok(0)
}
