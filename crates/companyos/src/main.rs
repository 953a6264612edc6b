//! `companyos`: the tenant control plane in one binary — the server (`serve`), the store
//! commands (`init`, `ledger verify`, `audit verify`), the API client commands and the demo.
//! The benchmarks are a binary of their own, `companyos-bench`, outside the product. Exit codes:
//! 0 success, 1 the operation failed or a verification found a problem, 2 bad usage.

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

/// Examples shown by `companyos --help` (clap's long help).
const EXAMPLES: &str = "\
Examples:
  companyos serve                                   # API and console on 127.0.0.1:8080
  export COMPANYOS_TOKEN=<admin token>              # client commands read it (or --token)
  companyos tenant create acme --name Acme          # plan standard, home region eu-west-1
  companyos tenant list --output json               # json for scripts, csv where rows fit
  companyos usage report --tenant acme --from 2026-01-01 --to 2026-01-31
  companyos completions bash > ~/.local/share/bash-completion/completions/companyos

Settings come from flags, then COMPANYOS_* variables, then ./companyos.toml (or --config).
Exit codes: 0 success, 1 the operation failed or a verification found a problem, 2 bad usage.";

#[derive(Debug, Parser)]
#[command(
    name = "companyos",
    version,
    about = "The tenant control plane: provision, meter, bill, suspend, delete — with policy, audit and evidence.",
    after_long_help = EXAMPLES,
    after_help = "`companyos --help` adds examples and every server setting; `companyos <command> --help` shows a command's flags."
)]
pub struct Cli {
    /// Data directory: SQLite store, keys, evidence, tenant boundaries [default: ./companyos-data].
    #[arg(long, global = true, env = "COMPANYOS_DATA_DIR", help_heading = GLOBAL)]
    pub data_dir: Option<PathBuf>,
    /// Database URL; a postgres:// URL selects PostgreSQL [default: SQLite in the data dir].
    #[arg(
        long,
        global = true,
        env = "COMPANYOS_DATABASE_URL",
        hide_env_values = true,
        help_heading = GLOBAL
    )]
    pub database_url: Option<String>,
    /// A companyos.toml with any of these settings [default: ./companyos.toml when it exists].
    #[arg(long, global = true, env = "COMPANYOS_CONFIG", help_heading = GLOBAL)]
    pub config: Option<PathBuf>,
    /// Log format of the server and the store commands: text or json [default: text].
    #[arg(long, global = true, env = "COMPANYOS_LOG_FORMAT", help_heading = GLOBAL)]
    pub log_format: Option<String>,
    /// Server URL for client commands [default: http://127.0.0.1:8080].
    #[arg(long, global = true, env = "COMPANYOS_URL", help_heading = CLIENT)]
    pub url: Option<String>,
    /// Bearer token for client commands: an operator token or a tenant API key [default: none].
    #[arg(
        long,
        global = true,
        env = "COMPANYOS_TOKEN",
        hide_env_values = true,
        help_heading = CLIENT
    )]
    pub token: Option<String>,
    /// Output of client commands: table for people, json for scripts, csv for commands that
    /// print rows [default: table; audit export: json lines].
    // `--format` was the old name of this flag: scripts still use it, so it stays as a hidden
    // alias.
    #[arg(long, global = true, value_enum, alias = "format", help_heading = CLIENT)]
    pub output: Option<OutputFormat>,
    /// Address the server listens on; port 0 picks a free port [default: 127.0.0.1:8080].
    #[arg(long, global = true, env = "COMPANYOS_LISTEN", help_heading = SERVER)]
    pub listen: Option<String>,
    #[command(flatten, next_help_heading = SERVER)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Help headings: global flags apart from the commands, server settings apart from the client's.
const GLOBAL: &str = "Global options";
const CLIENT: &str = "Client options (API commands)";
const SERVER: &str = "Server options (serve, init, store commands)";

impl Cli {
    /// The output format asked for, table when none was.
    pub fn format(&self) -> OutputFormat {
        self.output.unwrap_or_default()
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data dir, schema, signing keys and the `admin` operator (idempotent).
    Init {
        /// Write the admin token to this file (mode 0600) instead of printing it.
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
    },
    /// Run the API, the console (/console) and the background jobs; initialises when needed.
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
    /// Metering declarations: what each service meters (MET-4).
    #[command(subcommand)]
    Metering(commands::MeteringCommand),
    /// Evidence artifacts (signed with minisign).
    #[command(subcommand)]
    Evidence(commands::EvidenceCommand),
    /// The plan catalog (versioned plans, entitlements, quotas) and tenants' plans.
    #[command(subcommand)]
    Plan(commands::PlanCommand),
    /// Monthly statements: verify packs offline, write packs for finance, export (BILL-3).
    #[command(subcommand)]
    Statement(commands::StatementCommand),
    /// Run the sprint's demo on a fresh embedded store and write its evidence to a folder.
    Demo {
        /// Folder for the demo's outputs.
        #[arg(long, default_value = "demo-output")]
        out: PathBuf,
    },
    /// Print a shell completion script to stdout.
    #[command(after_long_help = "\
Examples:
  companyos completions bash > ~/.local/share/bash-completion/completions/companyos
  companyos completions zsh > \"${fpath[1]}/_companyos\"
  companyos completions fish > ~/.config/fish/completions/companyos.fish")]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The server's log filter when COMPANYOS_LOG sets none.
pub const LOG_FILTER_SERVER: &str = "info,sqlx=warn";
/// One-shot commands (init, demo, verify): their answer is on stdout, logs only for trouble.
pub const LOG_FILTER_ONE_SHOT: &str = "warn";

/// Logs to stderr, coloured only on a terminal; `COMPANYOS_LOG` (a tracing filter such as
/// `info` or `companyos_core=debug`) overrides `default_filter`.
pub fn logging(format: Option<&str>, default_filter: &str) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("COMPANYOS_LOG").or_else(|_| EnvFilter::try_new(default_filter))?;
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

/// The error and its causes on one line, each said once: a cause whose text its parent
/// already quotes (sqlx's database errors do, twice) is not repeated.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Parses the command line. The server settings are global (they may follow any command), so
/// clap would list all of them under every client command: `-h` leaves them out, `--help`
/// shows them.
fn parse() -> Cli {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let command = Cli::command().mut_args(|arg| {
        if arg.get_help_heading() == Some(SERVER) && arg.get_id() != "listen" {
            arg.hide_short_help(true)
        } else {
            arg
        }
    });
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|error| error.exit())
}

fn main() -> ExitCode {
    let cli = parse();
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
            log_sink::err_line(format_args!("error: {}", one_line(&error)));
            ExitCode::from(1)
        }
    }
}
