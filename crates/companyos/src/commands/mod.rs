//! The subcommands: `init` and `serve`, the store commands, and the API client commands.
//!
//! The parts: `args` (the clap arguments of every command group), `store` (`init`, `serve`
//! and opening the store), `operators` (`operator ...`), and one file per command group that
//! calls the API; this file resolves the settings and dispatches.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use companyos_core::clock::{Clock, OffsetClock, SystemClock};
use companyos_core::ledger::VerifyProgress;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{ApiClient, encode};
use crate::config::{FileConfig, ResolvedServer, resolve_server};
use crate::output::{self, OutputFormat, fields, table};
use crate::{Cli, Command};

mod args;
mod operators;
mod plans;
mod records;
mod statements;
mod store;
mod tenants;

pub use args::*;
use operators::operator;
pub use plans::PlanCommand;
use records::*;
pub use statements::StatementCommand;
use store::{init, open_existing, serve};
use tenants::*;

/// Wrong usage found after parsing (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

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
