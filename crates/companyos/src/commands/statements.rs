//! `companyos statement …` (CONTRACT §10): verify a statement or disclosure pack offline with
//! keys from files or the server (never from the pack), write packs for finance with a
//! progress bar, export statements for billing systems; and `audit disclose`.

use companyos_core::statements::verify::{
    TrustedKeys, is_statement_pack, verify_disclosure, verify_pack,
};
use companyos_domain::TenantId;
use companyos_domain::statement::StatementMonth;
use companyos_domain::time_util::parse_day;

use super::*;

/// A pack read for verification at most (bytes).
const PACK_FILE_BYTES_MAX: u64 = 4 << 30;
/// Tenants one `statement generate --all` lists at most.
const GENERATE_TENANTS_MAX: usize = 100_000;

#[derive(Debug, Subcommand)]
pub enum StatementCommand {
    /// Check a statement pack (or a disclosure pack) offline; exit 1 naming the first failure.
    /// Keys come from the files given or from the server at --url, never from the pack.
    Verify {
        /// The pack (zip).
        pack: PathBuf,
        /// The minisign public key (`minisign.pub`, or `GET /v1/evidence/public-key`).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// The ledger's note verifier key (`GET /v1/ledger/verifier-key`).
        #[arg(long)]
        verifier_key: Option<PathBuf>,
    },
    /// Write statement packs of a month for finance, one zip per tenant, with a progress bar.
    Generate {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// One tenant.
        #[arg(long, conflicts_with = "all")]
        tenant: Option<String>,
        /// Every tenant.
        #[arg(long)]
        all: bool,
        /// The folder for the packs.
        #[arg(long)]
        out: PathBuf,
    },
    /// Export a statement for a billing system to stdout: `stripe` (invoice items JSON) or
    /// `erp` (CSV). (`--format` is the global alias of `--output`, so the kind is positional.)
    Export {
        /// stripe or erp.
        kind: String,
        /// The tenant id.
        #[arg(long)]
        tenant: String,
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
    },
}

fn month_arg(text: &str) -> anyhow::Result<StatementMonth> {
    StatementMonth::parse(text).map_err(|e| UsageError(format!("--month {}", e.message)).into())
}

fn tenant_arg(text: &str) -> anyhow::Result<TenantId> {
    TenantId::parse(text).map_err(|e| UsageError(format!("--tenant {}", e.message)).into())
}

pub(super) async fn statement(
    cli: &Cli,
    file: &FileConfig,
    command: &StatementCommand,
) -> anyhow::Result<u8> {
    match command {
        StatementCommand::Verify {
            pack,
            public_key,
            verifier_key,
        } => {
            verify(
                cli,
                file,
                pack,
                public_key.as_deref(),
                verifier_key.as_deref(),
            )
            .await
        }
        StatementCommand::Generate {
            month,
            tenant,
            all,
            out,
        } => generate(cli, file, month, tenant.as_deref(), *all, out).await,
        StatementCommand::Export {
            kind: format,
            tenant,
            month,
        } => {
            let tenant = tenant_arg(tenant)?;
            let month = month_arg(month)?;
            if !matches!(format.as_str(), "stripe" | "erp") {
                return Err(UsageError("the export kind must be stripe or erp".to_owned()).into());
            }
            let path = format!("/v1/tenants/{tenant}/statements/{month}?format={format}");
            let bytes = api(cli, file)?.get_bytes(&path).await?;
            std::io::stdout()
                .write_all(&bytes)
                .context("failed to write the export")?;
            Ok(0)
        }
    }
}

/// The trusted keys: from the files given, else from the server.
async fn trusted_keys(
    cli: &Cli,
    file: &FileConfig,
    public_key: Option<&Path>,
    verifier_key: Option<&Path>,
) -> anyhow::Result<TrustedKeys> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))
    };
    let public_key = match public_key {
        Some(path) => read(path)?,
        None => {
            api(cli, file)?
                .call_raw(Method::GET, "/v1/evidence/public-key", None)
                .await?
                .1
        }
    };
    let verifier_key = match verifier_key {
        Some(path) => read(path)?,
        None => {
            api(cli, file)?
                .call_raw(Method::GET, "/v1/ledger/verifier-key", None)
                .await?
                .1
        }
    };
    // A minisign.pub file has an untrusted comment line first: the key is the last line.
    let minisign_public_key = public_key
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or_default()
        .to_owned();
    let note_verifier = companyos_ledger::note::NoteVerifier::parse(verifier_key.trim())
        .map_err(|e| anyhow::anyhow!("the verifier key does not parse: {e}"))?;
    Ok(TrustedKeys {
        minisign_public_key,
        note_verifier,
    })
}

async fn verify(
    cli: &Cli,
    file: &FileConfig,
    pack: &Path,
    public_key: Option<&Path>,
    verifier_key: Option<&Path>,
) -> anyhow::Result<u8> {
    let size = std::fs::metadata(pack)
        .with_context(|| format!("failed to read {}", pack.display()))?
        .len();
    if size > PACK_FILE_BYTES_MAX {
        bail!("{} is larger than 4 GiB: not a pack", pack.display());
    }
    let bytes =
        std::fs::read(pack).with_context(|| format!("failed to read {}", pack.display()))?;
    let keys = trusted_keys(cli, file, public_key, verifier_key).await?;
    if is_statement_pack(&bytes) {
        match verify_pack(&bytes, &keys) {
            Ok(s) => {
                println!(
                    "statement pack verified: {} {} ({}), total {} {}, {} events, {} audit records",
                    s.tenant_id, s.month, s.status, s.total, s.currency, s.events, s.audit_records
                );
                Ok(0)
            }
            Err(failure) => {
                println!("statement pack FAILED: {failure}");
                Ok(1)
            }
        }
    } else {
        match verify_disclosure(&bytes, &keys) {
            Ok(s) => {
                println!(
                    "disclosure pack verified: {} audit records",
                    s.audit_records
                );
                Ok(0)
            }
            Err(failure) => {
                println!("disclosure pack FAILED: {failure}");
                Ok(1)
            }
        }
    }
}

async fn generate(
    cli: &Cli,
    file: &FileConfig,
    month: &str,
    tenant: Option<&str>,
    all: bool,
    out: &Path,
) -> anyhow::Result<u8> {
    let month = month_arg(month)?;
    let client = api(cli, file)?;
    let tenants: Vec<String> = match (tenant, all) {
        (Some(tenant), false) => vec![tenant_arg(tenant)?.to_string()],
        (None, true) => {
            let (_, list) = client.call(Method::GET, "/v1/tenants", None).await?;
            list.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        }
        _ => return Err(UsageError("give --tenant ID or --all".to_owned()).into()),
    };
    if tenants.len() > GENERATE_TENANTS_MAX {
        bail!("more than {GENERATE_TENANTS_MAX} tenants: generate them in parts with --tenant");
    }
    std::fs::create_dir_all(out).with_context(|| format!("failed to create {}", out.display()))?;
    let bar = indicatif::ProgressBar::new(tenants.len() as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("packs {pos}/{len} {wide_bar} {msg}")
    {
        bar.set_style(style);
    }
    let mut written = 0;
    for tenant in &tenants {
        bar.set_message(tenant.clone());
        let path = format!("/v1/tenants/{tenant}/statements/{month}/pack");
        match client.get_bytes(&path).await {
            Ok(bytes) => {
                let target = out.join(format!("statement-pack-{tenant}-{month}.zip"));
                std::fs::write(&target, bytes)
                    .with_context(|| format!("failed to write {}", target.display()))?;
                written += 1;
            }
            // A tenant created after the month has no statement of it.
            Err(error) if all && error.to_string().contains("404") => {}
            Err(error) => return Err(error.into()),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "wrote {written} statement pack(s) of {month} to {}",
        out.display()
    );
    Ok(0)
}

/// `companyos audit disclose`: writes a tenant's disclosure pack.
pub(super) async fn disclose(
    cli: &Cli,
    file: &FileConfig,
    tenant: &str,
    from: &str,
    to: &str,
    out: &Path,
) -> anyhow::Result<u8> {
    let tenant = tenant_arg(tenant)?;
    for (flag, day) in [("--from", from), ("--to", to)] {
        parse_day(day, flag).map_err(|e| UsageError(format!("{flag} {}", e.message)))?;
    }
    let path = format!("/v1/tenants/{tenant}/disclosure?from={from}&to={to}");
    let bytes = api(cli, file)?.get_bytes(&path).await?;
    std::fs::write(out, &bytes).with_context(|| format!("failed to write {}", out.display()))?;
    println!(
        "wrote the disclosure pack of {tenant} ({from} to {to}) to {}",
        out.display()
    );
    Ok(0)
}
