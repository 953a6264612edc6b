//! `companyos bench`: measured benchmarks for docs/BENCHMARKS.md.

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Ingestion throughput against a naive baseline.
    Ingest,
}

pub async fn run(_cli: &crate::Cli, _command: &BenchCommand) -> anyhow::Result<u8> {
    anyhow::bail!("benchmarks are being written")
}
