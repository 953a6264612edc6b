//! `companyos`: the tenant control plane in one binary — the server (`serve`), the store
//! commands (`init`, `ledger verify`, `audit verify`), the API client commands, the demo and the
//! benchmarks. Exit codes: 0 success, 1 the operation failed or a verification found a problem,
//! 2 bad usage.

mod bench;
mod client;
mod commands;
mod commands_usage;
mod config;
mod demo;
mod log_sink;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::ServerArgs;
use crate::output::OutputFormat;

/// mimalloc instead of glibc's malloc: ingestion allocates on request tasks and frees on the
/// SQLite worker thread (and the other way round); glibc's per-thread arenas made malloc, free
/// and consolidation 40 % of the ingestion profile. See docs/BENCHMARKS.md.
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "companyos",
    version,
    about = "The tenant control plane: provision, meter, bill, suspend, delete — with policy, audit and evidence."
)]
pub struct Cli {
    /// Data directory (SQLite store, keys, evidence, tenant boundaries).
    #[arg(long, global = true, env = "COMPANYOS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL; a postgres:// URL selects PostgreSQL (default: SQLite in the data dir).
    #[arg(
        long,
        global = true,
        env = "COMPANYOS_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Address the server listens on (port 0 picks a free port).
    #[arg(long, global = true, env = "COMPANYOS_LISTEN")]
    pub listen: Option<String>,
    /// Server URL for client commands.
    #[arg(long, global = true, env = "COMPANYOS_URL")]
    pub url: Option<String>,
    /// Bearer token for client commands (operator token or tenant API key).
    #[arg(long, global = true, env = "COMPANYOS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A companyos.toml (default: ./companyos.toml when it exists).
    #[arg(long, global = true, env = "COMPANYOS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, env = "COMPANYOS_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Output of client commands: a table for people, json for scripts.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data dir, schema, signing keys and the `admin` operator (idempotent).
    Init {
        /// Write the admin token to this file (mode 0600) instead of printing it.
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
    },
    /// Run the API, the console and the background jobs.
    Serve,
    /// Operators and their roles.
    #[command(subcommand)]
    Operator(commands::OperatorCommand),
    /// Tenants and their lifecycle.
    #[command(subcommand)]
    Tenant(commands::TenantCommand),
    /// Approvals of lifecycle actions.
    #[command(subcommand)]
    Approval(commands::ApprovalCommand),
    /// Usage events and reports.
    #[command(subcommand)]
    Usage(commands::UsageCommand),
    /// The verifiable usage ledger.
    #[command(subcommand)]
    Ledger(commands::LedgerCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(commands::AuditCommand),
    /// Metering declarations (MET-4).
    #[command(subcommand)]
    Metering(commands::MeteringCommand),
    /// Evidence artifacts.
    #[command(subcommand)]
    Evidence(commands::EvidenceCommand),
    /// Run the sprint's demo on a fresh embedded store and write its evidence to a folder.
    Demo {
        /// Folder for the demo's outputs.
        #[arg(long, default_value = "demo-output")]
        out: PathBuf,
    },
    /// Benchmarks (results for docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

pub fn logging(format: Option<&str>) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("COMPANYOS_LOG")
        .or_else(|_| EnvFilter::try_new("info,sqlx=warn"))?;
    // A failed log write must never panic (see `log_sink`): errors are swallowed by the
    // writer, and the subscriber's own error printing (an `eprintln!`) is off.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(log_sink::Stderr)
        .with_ansi(log_sink::stderr_is_terminal())
        .log_internal_errors(false);
    match format.unwrap_or("text") {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => anyhow::bail!("setting log_format must be text or json, got {other:?}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            log_sink::err_line(format_args!("error: failed to start the runtime: {error}"));
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            if let Some(client_error) = error.downcast_ref::<client::ClientError>() {
                log_sink::err_line(format_args!("error: {client_error}"));
                return ExitCode::from(u8::try_from(client_error.exit_code()).unwrap_or(1));
            }
            if let Some(usage) = error.downcast_ref::<commands::UsageError>() {
                log_sink::err_line(format_args!("error: {usage}"));
                return ExitCode::from(2);
            }
            log_sink::err_line(format_args!("error: {error:#}"));
            ExitCode::from(1)
        }
    }
}
