//! The subcommands of `companyos-bench` and their flags, one clap `Args` struct per benchmark
//! (the names, defaults and help texts are what docs/BENCHMARKS.md quotes: keep them).

use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Forward auth with `feature=` and `metric=` over loopback HTTP beside `GET /healthz` in
    /// the same run: requests/s, p50, p99 (issue 16).
    ForwardAuth(ForwardAuthArgs),
    /// Ingestion with quota state beside the same ingestion without it (two runs each,
    /// alternating), on tenants whose plan has a quota (issue 16).
    QuotaIngest(QuotaIngestArgs),
    /// Ingestion through the whole service path beside a naive INSERT baseline.
    Ingest(IngestArgs),
    /// `POST /v1/events` over loopback HTTP from concurrent clients.
    Http(HttpArgs),
    /// CloudEvents batches on `POST /api/v1/events` beside native `/v1/events` batches of the
    /// same usage events, over loopback HTTP (issue 19).
    Cloudevents(CloudeventsArgs),
    /// A meter query (SUM, DAY windows) over one tenant's month of events (issue 19).
    MeterQuery(MeterQueryArgs),
    /// Month close for many tenants with a month of events (issue 17): the day close and the
    /// month-close job beside one GROUP BY over the same events (their totals must agree),
    /// one statement read (service and HTTP) p50 and max, one pack built and verified.
    MonthClose(MonthCloseArgs),
    /// Provision time (dossier included) over many tenants: p50, p99.
    Provision(ProvisionArgs),
    /// One tenant's daily rollups for a year, and the integrity report rate, beside the same
    /// GROUP BY in the same engine.
    Reports(ReportsArgs),
}

#[derive(Debug, clap::Args)]
pub struct ForwardAuthArgs {
    #[arg(long, default_value = "sqlite")]
    pub backend: String,
    #[arg(long, default_value_t = 1000)]
    pub tenants: usize,
    /// Requests per measured path.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// Concurrent keep-alive clients.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

#[derive(Debug, clap::Args)]
pub struct QuotaIngestArgs {
    #[arg(long, default_value = "sqlite")]
    pub backend: String,
    #[arg(long, default_value_t = 1000)]
    pub tenants: usize,
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
}

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// sqlite or postgres.
    #[arg(long, default_value = "sqlite")]
    pub backend: String,
    /// Events measured.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    /// Events stored before measuring (the store must stay fast as it grows).
    #[arg(long, default_value_t = 0)]
    pub preload: usize,
    #[arg(long, default_value_t = 100)]
    pub tenants: usize,
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Concurrent requests (group commit merges them).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Also resend every measured event (all duplicates) and time it.
    #[arg(long)]
    pub duplicates: bool,
    /// Skip the naive baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Where the SQLite stores go (default: a temp dir).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The load of an HTTP ingestion benchmark: events sent by concurrent clients in batches.
#[derive(Debug, clap::Args)]
pub struct HttpLoadArgs {
    #[arg(long, default_value = "sqlite")]
    pub backend: String,
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
    #[arg(long, default_value_t = 2)]
    pub clients: usize,
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    #[arg(long, default_value_t = 100)]
    pub tenants: usize,
}

#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    #[command(flatten)]
    pub load: HttpLoadArgs,
    /// Skip the naive baseline (the same rows as plain INSERTs, as `bench ingest` measures).
    #[arg(long)]
    pub no_baseline: bool,
}

#[derive(Debug, clap::Args)]
pub struct CloudeventsArgs {
    #[command(flatten)]
    pub load: HttpLoadArgs,
    /// Rounds of one run per path, alternating which goes first.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
}

#[derive(Debug, clap::Args)]
pub struct MeterQueryArgs {
    #[arg(long, default_value = "sqlite")]
    pub backend: String,
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
}

#[derive(Debug, clap::Args)]
pub struct MonthCloseArgs {
    #[arg(long, default_value = "sqlite")]
    pub backend: String,
    #[arg(long, default_value_t = 1000)]
    pub tenants: usize,
    /// Events in the month, spread over its days and the tenants.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: usize,
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Statement reads measured (each of: open, final, HTTP).
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
}

#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    #[arg(long, default_value = "sqlite")]
    pub backend: String,
    #[arg(long, default_value_t = 100)]
    pub tenants: usize,
}

#[derive(Debug, clap::Args)]
pub struct ReportsArgs {
    #[arg(long, default_value = "sqlite")]
    pub backend: String,
    /// Events stored for the report tenant.
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
}
