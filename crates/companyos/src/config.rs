//! Settings of the binary: flags, then `COMPANYOS_*` variables (both through clap), then an
//! optional `companyos.toml`, then defaults. Everything is validated once, at start-up, with a
//! message that names the setting.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use anyhow::{Context as _, bail};
use companyos_core::Settings;
use companyos_core::settings::{BoundaryDriverSettings, EvidenceStoreKind, SignatureRequirement};
use companyos_domain::metering::CoverageMode;
use companyos_domain::{LifecycleAction, RegionName};
use serde::Deserialize;
use time::Duration;

/// `companyos.toml`: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<String>,
    pub url: Option<String>,
    pub log_format: Option<String>,
    pub log_name: Option<String>,
    pub late_window_hours: Option<i64>,
    pub backdate_max_days: Option<i64>,
    pub require_signature: Option<String>,
    pub coverage_mode: Option<String>,
    pub approval_required: Option<Vec<String>>,
    pub approval_ttl_hours: Option<i64>,
    pub regions: Option<Vec<String>>,
    pub boundary_driver: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub evidence_store: Option<String>,
    pub body_bytes_max: Option<usize>,
    pub batch_events_max: Option<usize>,
    pub dedupe_tail_rows_max: Option<usize>,
    pub pool_connections_max: Option<u32>,
    pub job_interval_seconds: Option<u64>,
    pub clock_offset_seconds: Option<i64>,
    pub outbound_allow_cidrs: Option<Vec<String>>,
    pub auth_failures_per_minute_max: Option<u64>,
    pub forward_auth_cache_ms: Option<u64>,
    pub header_read_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub connections_max: Option<usize>,
}

impl FileConfig {
    /// Reads `path` if given, else `./companyos.toml` if it exists.
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let (path, required) = match path {
            Some(path) => (path.to_owned(), true),
            None => (PathBuf::from("companyos.toml"), false),
        };
        if !path.exists() {
            if required {
                bail!("config file {} does not exist", path.display());
            }
            return Ok(FileConfig::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("failed to parse {}", path.display()))
    }
}

/// Server settings given on the command line or in the environment (clap fills these).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// Log name: the checkpoint key name and the origin prefix of every log
    /// [default: companyos.local].
    #[arg(long, global = true, env = "COMPANYOS_LOG_NAME")]
    pub log_name: Option<String>,
    /// Events older than this many hours when received are `late` [default: 48].
    #[arg(long, global = true, env = "COMPANYOS_LATE_WINDOW_HOURS")]
    pub late_window_hours: Option<i64>,
    /// Events older than this many days are rejected [default: 35].
    #[arg(long, global = true, env = "COMPANYOS_BACKDATE_MAX_DAYS")]
    pub backdate_max_days: Option<i64>,
    /// `warn` accepts unsigned events (flagged), `enforce` rejects them [default: warn].
    #[arg(long, global = true, env = "COMPANYOS_REQUIRE_SIGNATURE")]
    pub require_signature: Option<String>,
    /// Deployment coverage mode until changed through the API: `warn` or `enforce`
    /// [default: warn].
    #[arg(long, global = true, env = "COMPANYOS_COVERAGE_MODE")]
    pub coverage_mode: Option<String>,
    /// Lifecycle actions that need approval, comma separated, or `none`
    /// [default: delete,purge].
    #[arg(
        long,
        global = true,
        env = "COMPANYOS_APPROVAL_REQUIRED",
        value_delimiter = ','
    )]
    pub approval_required: Option<Vec<String>>,
    /// Hours before a pending approval expires [default: 72].
    #[arg(long, global = true, env = "COMPANYOS_APPROVAL_TTL_HOURS")]
    pub approval_ttl_hours: Option<i64>,
    /// The region catalog, comma separated; the first is the default home region
    /// [default: eu-west-1,eu-central-1,us-east-1,us-west-2,ap-southeast-1].
    #[arg(long, global = true, env = "COMPANYOS_REGIONS", value_delimiter = ',')]
    pub regions: Option<Vec<String>>,
    /// Tenant boundary driver: `directory`, `postgres` or `webhook` [default: directory].
    #[arg(long, global = true, env = "COMPANYOS_BOUNDARY_DRIVER")]
    pub boundary_driver: Option<String>,
    /// The external provisioner of the webhook driver (with --boundary-driver webhook)
    /// [default: none].
    #[arg(long, global = true, env = "COMPANYOS_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// The HMAC secret shared with the external provisioner, at least 16 characters
    /// [default: none].
    #[arg(
        long,
        global = true,
        env = "COMPANYOS_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
    /// Where evidence bytes live: `fs` (under the data dir) or `database` [default: fs].
    #[arg(long, global = true, env = "COMPANYOS_EVIDENCE_STORE")]
    pub evidence_store: Option<String>,
    /// Upper bound of a request body, in bytes [default: 16777216, 16 MiB].
    #[arg(long, global = true, env = "COMPANYOS_BODY_BYTES_MAX")]
    pub body_bytes_max: Option<usize>,
    /// Upper bound of events in one batch [default: 10000].
    #[arg(long, global = true, env = "COMPANYOS_BATCH_EVENTS_MAX")]
    pub batch_events_max: Option<usize>,
    /// SQLite: stored events whose dedupe keys stay in memory before they are written out as a
    /// run of the on-disk key index (about 40 bytes each) [default: 1000000].
    #[arg(long, global = true, env = "COMPANYOS_DEDUPE_TAIL_ROWS_MAX")]
    pub dedupe_tail_rows_max: Option<usize>,
    /// Database connections per pool [default: 16].
    #[arg(long, global = true, env = "COMPANYOS_POOL_CONNECTIONS_MAX")]
    pub pool_connections_max: Option<u32>,
    /// Seconds between background job runs [default: 5].
    #[arg(long, global = true, env = "COMPANYOS_JOB_INTERVAL_SECONDS")]
    pub job_interval_seconds: Option<u64>,
    /// Internal address ranges webhooks and the webhook driver may reach, comma separated
    /// (e.g. `10.0.0.0/8,127.0.0.1/32`); empty by default: loopback, private, link-local
    /// (cloud metadata) and other internal addresses are refused.
    #[arg(
        long,
        global = true,
        env = "COMPANYOS_OUTBOUND_ALLOW_CIDRS",
        value_delimiter = ','
    )]
    pub outbound_allow_cidrs: Option<Vec<String>>,
    /// Failed authentications one source address may make in a minute before it is answered
    /// 429 (its repeated failures are audited as one aggregate record a minute). Default 60.
    #[arg(long, global = true, env = "COMPANYOS_AUTH_FAILURES_PER_MINUTE_MAX")]
    pub auth_failures_per_minute_max: Option<u64>,
    /// Milliseconds this node keeps a forward-auth answer: how late another node's change to a
    /// tenant reaches this node's `GET /v1/authz/check` (this node's own changes apply at
    /// once). 0 reads the store on every request. Default 1000.
    #[arg(long, global = true, env = "COMPANYOS_FORWARD_AUTH_CACHE_MS")]
    pub forward_auth_cache_ms: Option<u64>,
    /// Milliseconds a client has to send a request's whole header before the connection is
    /// closed. Default 10000.
    #[arg(long, global = true, env = "COMPANYOS_HEADER_READ_TIMEOUT_MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Milliseconds a keep-alive connection may sit idle before it is closed. Default 60000.
    #[arg(long, global = true, env = "COMPANYOS_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Open HTTP connections at most; one more is closed at once. Default 512.
    #[arg(long, global = true, env = "COMPANYOS_CONNECTIONS_MAX")]
    pub connections_max: Option<usize>,
    /// Shifts the service clock (game days and time-rule checks); 0 in production
    /// [default: 0].
    #[arg(
        long,
        env = "COMPANYOS_CLOCK_OFFSET_SECONDS",
        allow_hyphen_values = true
    )]
    pub clock_offset_seconds: Option<i64>,
}

/// Everything `serve` (and the store commands) need, validated.
#[derive(Debug, Clone)]
pub struct ResolvedServer {
    pub settings: Settings,
    pub body_bytes_max: usize,
    pub clock_offset: Duration,
}

fn pick<T: Clone>(flag: &Option<T>, file: &Option<T>) -> Option<T> {
    flag.clone().or_else(|| file.clone())
}

fn in_range(name: &str, value: i64, low: i64, high: i64) -> anyhow::Result<i64> {
    if !(low..=high).contains(&value) {
        bail!("setting {name} must be between {low} and {high}, got {value}");
    }
    Ok(value)
}

/// `value` if it lies in `low..=high`, else an error naming the setting and its bounds.
fn within<T: PartialOrd + Copy + std::fmt::Display>(
    name: &str,
    value: T,
    low: T,
    high: T,
) -> anyhow::Result<T> {
    if !(low..=high).contains(&value) {
        bail!("setting {name} must be between {low} and {high}");
    }
    Ok(value)
}

/// Combines flags/env with the file and validates.
pub fn resolve_server(
    data_dir: PathBuf,
    database_url: Option<String>,
    args: &ServerArgs,
    file: &FileConfig,
) -> anyhow::Result<ResolvedServer> {
    let mut settings = Settings::new(data_dir);
    if let Some(url) = database_url {
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
        {
            bail!("setting database_url must start with postgres://, postgresql:// or sqlite:");
        }
        settings.database_url = Some(url);
    }
    resolve_ingestion(&mut settings, args, file)?;
    resolve_lifecycle(&mut settings, args, file)?;
    resolve_edge(&mut settings, args, file)?;
    resolve_boundary_driver(&mut settings, args, file)?;
    if let Some(store) = pick(&args.evidence_store, &file.evidence_store) {
        settings.evidence_store = match store.as_str() {
            "fs" => EvidenceStoreKind::FileSystem,
            "database" => EvidenceStoreKind::Database,
            other => bail!("setting evidence_store must be fs or database, got {other:?}"),
        };
    }
    let body_bytes_max = pick(&args.body_bytes_max, &file.body_bytes_max)
        .unwrap_or(companyos_server::BODY_BYTES_MAX_DEFAULT);
    if !(1024..=1024 * 1024 * 1024).contains(&body_bytes_max) {
        bail!("setting body_bytes_max must be between 1 KiB and 1 GiB");
    }
    resolve_capacity(&mut settings, args, file)?;
    let offset = pick(&args.clock_offset_seconds, &file.clock_offset_seconds).unwrap_or(0);
    Ok(ResolvedServer {
        settings,
        body_bytes_max,
        clock_offset: Duration::seconds(in_range(
            "clock_offset_seconds",
            offset,
            -10 * 365 * 86_400,
            10 * 365 * 86_400,
        )?),
    })
}

/// The log's name and what ingestion accepts: the late window, the backdating bound, the
/// signature requirement and the default coverage mode.
fn resolve_ingestion(
    settings: &mut Settings,
    args: &ServerArgs,
    file: &FileConfig,
) -> anyhow::Result<()> {
    if let Some(name) = pick(&args.log_name, &file.log_name) {
        companyos_ledger::note::KeyName::parse(&name)
            .map_err(|e| anyhow::anyhow!("setting log_name: {e}"))?;
        settings.log_name = name;
    }
    if let Some(hours) = pick(&args.late_window_hours, &file.late_window_hours) {
        settings.late_window = Duration::hours(in_range("late_window_hours", hours, 1, 24 * 30)?);
    }
    if let Some(days) = pick(&args.backdate_max_days, &file.backdate_max_days) {
        settings.backdate_max = Duration::days(in_range("backdate_max_days", days, 1, 366)?);
    }
    if settings.backdate_max < settings.late_window {
        bail!("setting backdate_max_days must cover at least the late window");
    }
    if let Some(text) = pick(&args.require_signature, &file.require_signature) {
        settings.require_signature = SignatureRequirement::parse(&text).ok_or_else(|| {
            anyhow::anyhow!("setting require_signature must be warn or enforce, got {text:?}")
        })?;
    }
    if let Some(text) = pick(&args.coverage_mode, &file.coverage_mode) {
        settings.coverage_mode_default = CoverageMode::parse(&text).ok_or_else(|| {
            anyhow::anyhow!("setting coverage_mode must be warn or enforce, got {text:?}")
        })?;
    }
    Ok(())
}

/// The lifecycle actions that need approval, how long an approval waits, and the regions.
fn resolve_lifecycle(
    settings: &mut Settings,
    args: &ServerArgs,
    file: &FileConfig,
) -> anyhow::Result<()> {
    if let Some(list) = pick(&args.approval_required, &file.approval_required) {
        let mut actions = Vec::new();
        for item in list
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty() && *s != "none")
        {
            let action = LifecycleAction::parse(item.trim_start_matches("tenant.")).ok_or_else(|| {
                anyhow::anyhow!(
                    "setting approval_required: {item:?} is not one of suspend, reactivate, delete, restore, purge"
                )
            })?;
            actions.push(action);
        }
        settings.approval_required = actions;
    }
    if let Some(hours) = pick(&args.approval_ttl_hours, &file.approval_ttl_hours) {
        settings.approval_ttl = Duration::hours(in_range("approval_ttl_hours", hours, 1, 24 * 90)?);
    }
    if let Some(regions) = pick(&args.regions, &file.regions) {
        let mut parsed = Vec::new();
        for region in &regions {
            parsed.push(
                RegionName::parse(region.trim())
                    .map_err(|e| anyhow::anyhow!("setting regions: {region:?} {}", e.message))?,
            );
        }
        if parsed.is_empty() {
            bail!("setting regions must name at least one region");
        }
        settings.regions = parsed;
    }
    Ok(())
}

/// The network edge: outbound addresses allowed, the authentication failure limit, the
/// forward-auth cache and the HTTP connection bounds.
fn resolve_edge(
    settings: &mut Settings,
    args: &ServerArgs,
    file: &FileConfig,
) -> anyhow::Result<()> {
    if let Some(list) = pick(&args.outbound_allow_cidrs, &file.outbound_allow_cidrs) {
        let mut allow = Vec::new();
        for item in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            allow.push(
                companyos_core::jobs::outbound::Cidr::parse(item)
                    .map_err(|e| anyhow::anyhow!("setting outbound_allow_cidrs: {e}"))?,
            );
        }
        settings.outbound.allow = allow;
    }
    if let Some(max) = pick(
        &args.auth_failures_per_minute_max,
        &file.auth_failures_per_minute_max,
    ) {
        settings.auth_failures_per_minute_max =
            within("auth_failures_per_minute_max", max, 1, 1_000_000)?;
    }
    if let Some(ms) = pick(&args.forward_auth_cache_ms, &file.forward_auth_cache_ms) {
        settings.forward_auth_cache =
            StdDuration::from_millis(within("forward_auth_cache_ms", ms, 0, 60_000)?);
    }
    if let Some(ms) = pick(&args.header_read_timeout_ms, &file.header_read_timeout_ms) {
        settings.http_header_read_timeout =
            StdDuration::from_millis(within("header_read_timeout_ms", ms, 100, 600_000)?);
    }
    if let Some(ms) = pick(&args.idle_timeout_ms, &file.idle_timeout_ms) {
        settings.http_idle_timeout =
            StdDuration::from_millis(within("idle_timeout_ms", ms, 100, 3_600_000)?);
    }
    if let Some(max) = pick(&args.connections_max, &file.connections_max) {
        settings.http_connections_max = within("connections_max", max, 1, 1_000_000)?;
    }
    Ok(())
}

/// The tenant boundary driver; the webhook driver's URL must pass the outbound policy, so this
/// runs after `resolve_edge`.
fn resolve_boundary_driver(
    settings: &mut Settings,
    args: &ServerArgs,
    file: &FileConfig,
) -> anyhow::Result<()> {
    let webhook_url = pick(&args.webhook_url, &file.webhook_url);
    let webhook_secret = pick(&args.webhook_secret, &file.webhook_secret);
    if let Some(driver) = pick(&args.boundary_driver, &file.boundary_driver) {
        settings.boundary_driver = match driver.as_str() {
            "directory" => BoundaryDriverSettings::Directory,
            "postgres" => BoundaryDriverSettings::Postgres,
            "webhook" => {
                let (Some(url), Some(secret)) = (webhook_url, webhook_secret) else {
                    bail!("boundary_driver = \"webhook\" needs webhook_url and webhook_secret");
                };
                settings
                    .outbound
                    .check_url(&url)
                    .map_err(|why| anyhow::anyhow!("setting webhook_url: {why}"))?;
                if secret.len() < 16 {
                    bail!("setting webhook_secret must be at least 16 characters");
                }
                BoundaryDriverSettings::Webhook { url, secret }
            }
            other => bail!(
                "setting boundary_driver must be directory, postgres or webhook, got {other:?}"
            ),
        };
    }
    Ok(())
}

/// The bounds of the work one node takes on: events per batch, dedupe keys kept in memory,
/// database connections, and the pace of the background jobs.
fn resolve_capacity(
    settings: &mut Settings,
    args: &ServerArgs,
    file: &FileConfig,
) -> anyhow::Result<()> {
    if let Some(max) = pick(&args.batch_events_max, &file.batch_events_max) {
        settings.batch_events_max = within("batch_events_max", max, 1, 100_000)?;
    }
    if let Some(max) = pick(&args.dedupe_tail_rows_max, &file.dedupe_tail_rows_max) {
        settings.dedupe_tail_rows_max = within("dedupe_tail_rows_max", max, 1_000, 50_000_000)?;
    }
    if let Some(max) = pick(&args.pool_connections_max, &file.pool_connections_max) {
        settings.pool_connections_max = within("pool_connections_max", max, 1, 256)?;
    }
    if let Some(seconds) = pick(&args.job_interval_seconds, &file.job_interval_seconds) {
        settings.job_interval =
            StdDuration::from_secs(within("job_interval_seconds", seconds, 1, 3600)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: &ServerArgs, file: &FileConfig) -> anyhow::Result<ResolvedServer> {
        resolve_server(PathBuf::from("data"), None, args, file)
    }

    #[test]
    fn edge_settings_resolve_and_are_validated() {
        let defaults = resolve(&ServerArgs::default(), &FileConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(defaults.settings.outbound.allow.is_empty());
        assert_eq!(defaults.settings.http_connections_max, 512);
        let args = ServerArgs {
            outbound_allow_cidrs: Some(vec!["10.0.0.0/8".into(), " 127.0.0.1/32".into()]),
            header_read_timeout_ms: Some(2_000),
            idle_timeout_ms: Some(30_000),
            connections_max: Some(64),
            auth_failures_per_minute_max: Some(10),
            forward_auth_cache_ms: Some(250),
            ..ServerArgs::default()
        };
        let resolved = resolve(&args, &FileConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let s = &resolved.settings;
        assert_eq!(s.outbound.allow.len(), 2);
        assert_eq!(s.http_header_read_timeout, StdDuration::from_secs(2));
        assert_eq!(s.http_idle_timeout, StdDuration::from_secs(30));
        assert_eq!(s.http_connections_max, 64);
        assert_eq!(s.auth_failures_per_minute_max, 10);
        assert_eq!(s.forward_auth_cache, StdDuration::from_millis(250));
        let bad = ServerArgs {
            outbound_allow_cidrs: Some(vec!["10.0.0.1/8".into()]),
            ..ServerArgs::default()
        };
        let error = resolve(&bad, &FileConfig::default())
            .err()
            .map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("outbound_allow_cidrs")));
    }

    #[test]
    fn a_setting_out_of_its_bounds_is_refused_with_its_name_and_bounds() {
        for (args, message) in [
            (
                ServerArgs {
                    pool_connections_max: Some(0),
                    ..ServerArgs::default()
                },
                "setting pool_connections_max must be between 1 and 256",
            ),
            (
                ServerArgs {
                    forward_auth_cache_ms: Some(60_001),
                    ..ServerArgs::default()
                },
                "setting forward_auth_cache_ms must be between 0 and 60000",
            ),
            (
                ServerArgs {
                    dedupe_tail_rows_max: Some(999),
                    ..ServerArgs::default()
                },
                "setting dedupe_tail_rows_max must be between 1000 and 50000000",
            ),
        ] {
            let error = resolve(&args, &FileConfig::default())
                .err()
                .map(|e| e.to_string());
            assert_eq!(error.as_deref(), Some(message));
        }
    }

    #[test]
    fn the_webhook_driver_url_must_be_reachable_under_the_outbound_policy() {
        let file = FileConfig {
            boundary_driver: Some("webhook".into()),
            webhook_url: Some("http://169.254.169.254/provision".into()),
            webhook_secret: Some("a-secret-of-enough-length".into()),
            ..FileConfig::default()
        };
        let error = resolve(&ServerArgs::default(), &file)
            .err()
            .map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("webhook_url")), "refused");
        let file = FileConfig {
            webhook_url: Some("http://127.0.0.1:9000/provision".into()),
            outbound_allow_cidrs: Some(vec!["127.0.0.1/32".into()]),
            ..file
        };
        assert!(
            resolve(&ServerArgs::default(), &file).is_ok(),
            "allowed explicitly"
        );
    }
}
