//! `companyos-bench`: the benchmarks whose results go into `docs/BENCHMARKS.md`, each measured
//! beside a naive baseline in the same run on the same engine (a ratio survives a noisy machine).
//! A binary of its own so that the product binary carries no benchmark code, raw SQL of its
//! own or temporary directories; it drives the same `App` and HTTP server the product runs.

mod args;
mod baseline;
mod billing;
mod fixture;
mod http;
mod ingest;
mod openmeter;
mod reports;
mod statements;

use args::BenchCommand;

/// The same allocator as the product binary, so that the figures measure what runs in
/// production (see `crates/companyos/src/main.rs` and docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL_ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmarks of CompanyOS; each prints one JSON line (results for docs/BENCHMARKS.md).
#[derive(Debug, clap::Parser)]
#[command(name = "companyos-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

fn main() -> std::process::ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    // What goes wrong in the service layer is logged (warn) on stderr, as the product's one-shot
    // commands do; stdout carries only the result lines.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the runtime: {error}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(run(&cli.command)) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// Runs one benchmark; its exit code.
async fn run(command: &BenchCommand) -> anyhow::Result<u8> {
    match command {
        BenchCommand::Ingest(args) => ingest::ingest(args).await,
        BenchCommand::Http(args) => http::http(args).await,
        BenchCommand::Cloudevents(args) => {
            let load = &args.load;
            let sizes = (load.clients, load.batch, load.tenants);
            openmeter::cloudevents(&load.backend, load.events, sizes, args.rounds).await
        }
        BenchCommand::MeterQuery(args) => {
            openmeter::meter_query(&args.backend, args.events, args.runs).await
        }
        BenchCommand::MonthClose(args) => {
            statements::month_close(statements::MonthCloseRun {
                backend: &args.backend,
                tenants: args.tenants,
                events: args.events,
                batch: args.batch,
                concurrency: args.concurrency,
                runs: args.runs,
            })
            .await
        }
        BenchCommand::Provision(args) => reports::provision(args).await,
        BenchCommand::Reports(args) => reports::reports(args).await,
        BenchCommand::ForwardAuth(args) => {
            let (tenants, requests) = (args.tenants, args.requests);
            billing::forward_auth(&args.backend, tenants, requests, args.concurrency).await
        }
        BenchCommand::QuotaIngest(args) => {
            let (tenants, events, batch) = (args.tenants, args.events, args.batch);
            billing::quota_ingest(&args.backend, tenants, events, batch, args.concurrency).await
        }
    }
}
