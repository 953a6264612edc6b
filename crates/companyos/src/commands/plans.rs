//! The catalog commands (BILL-1): `plan apply plans.toml [--dry-run]` (declarative: prints the
//! diff against the server's latest versions and writes a new version only where a plan
//! differs), `plan list`, `plan show`, and `plan assign` (a tenant's plan change).

use std::collections::BTreeMap;

use clap::Subcommand;
use companyos_domain::catalog::RawPlanSpec;
use reqwest::Method;
use serde_json::{Value, json};

use super::UsageError;
use crate::Cli;
use crate::client::{ApiClient, encode};
use crate::output::{self, table};

/// Bytes of a plans file at most (a catalog is a few kilobytes).
const PLANS_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// Plans in one file at most.
const PLANS_PER_FILE_MAX: usize = 100;

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Write the plans of a TOML file: a new version of each plan whose content differs from
    /// its latest version (identical plans are left alone). Prints the diff.
    #[command(after_long_help = "\
Example plans.toml (amounts as strings, so they are read exactly):
  [plans.pro]
  name = \"Pro\"
  currency = \"EUR\"
  base_fee = \"49.00\"
  features = [\"api\", \"sso\"]

  [[plans.pro.quotas]]
  metric = \"requests\"
  period = \"month\"
  included = \"1000000\"
  thresholds_percent = [80, 100]
  enforcement = \"hard\"
  overage_unit_price = \"0.0002\"

Examples:
  companyos plan apply plans.toml --dry-run
  companyos plan apply plans.toml")]
    Apply {
        /// The TOML file: one `[plans.<name>]` table per plan.
        file: std::path::PathBuf,
        /// Print the diff only; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The latest version of every plan.
    List,
    /// One plan: its latest version, or --version N.
    Show {
        /// The plan name.
        plan: String,
        /// A version number [default: the latest].
        #[arg(long)]
        version: Option<u32>,
    },
    /// Change a tenant's plan, now or from the next period (audited as tenant.plan_change).
    Assign {
        /// The tenant id.
        tenant: String,
        /// The plan name.
        plan: String,
        /// A version [default: the latest].
        #[arg(long)]
        version: Option<u32>,
        /// now or next_period [default: now].
        #[arg(long, default_value = "now")]
        effective: String,
        /// Why (kept in the audit record).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// The plans of a TOML file, each as the JSON body of `PUT /v1/plans/{plan}`, checked for
/// shape (unknown fields, wrong types) here so a typo is a usage error before any write.
pub(super) fn read_plans_file(
    path: &std::path::Path,
) -> Result<BTreeMap<String, Value>, UsageError> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| UsageError(format!("cannot read {shown}: {e}")))?
        .len();
    if size > PLANS_FILE_BYTES_MAX {
        return Err(UsageError(format!(
            "{shown} is over {PLANS_FILE_BYTES_MAX} bytes"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read {shown}: {e}")))?;
    let file: toml::Table = toml::from_str(&text)
        .map_err(|e| UsageError(format!("{shown} is not valid TOML: {}", e.message())))?;
    let Some(toml::Value::Table(plans)) = file.get("plans") else {
        return Err(UsageError(format!("{shown} has no [plans.<name>] tables")));
    };
    if plans.len() > PLANS_PER_FILE_MAX {
        return Err(UsageError(format!(
            "{shown} has over {PLANS_PER_FILE_MAX} plans"
        )));
    }
    let mut bodies = BTreeMap::new();
    for (name, plan) in plans {
        let body = serde_json::to_value(plan)
            .map_err(|e| UsageError(format!("{shown}: plans.{name}: {e}")))?;
        serde_json::from_value::<RawPlanSpec>(body.clone())
            .map_err(|e| UsageError(format!("{shown}: plans.{name}: {e}")))?;
        bodies.insert(name.clone(), body);
    }
    Ok(bodies)
}

/// The comparable content of a plan: the server's view, or a local body as the server would
/// store it (the hash decides; these lines only show what changed).
fn comparable(view: &Value) -> BTreeMap<String, String> {
    [
        "name",
        "currency",
        "base_fee",
        "features",
        "quotas",
        "retention",
        "workloads_max",
    ]
    .iter()
    .map(|key| ((*key).to_owned(), view[*key].to_string()))
    .collect()
}

/// The local body as the server would show it, and its SHA-256 (the canonical form's).
fn local_view(body: &Value) -> Result<(Value, String), UsageError> {
    let raw: RawPlanSpec =
        serde_json::from_value(body.clone()).map_err(|e| UsageError(format!("{e}")))?;
    // Metrics are checked by the server against its declarations; the shape is checked here.
    let spec = raw
        .parse(&|_| true)
        .map_err(|e| UsageError(format!("{e}")))?;
    let canonical: Value = serde_json::from_str(&spec.canonical_json()).unwrap_or_default();
    let mut view = canonical;
    view["base_fee"] = json!(spec.currency.round(spec.base_fee).to_string());
    Ok((view, spec.sha256_hex()))
}

async fn apply(
    cli: &Cli,
    api: &ApiClient,
    file: &std::path::Path,
    dry_run: bool,
) -> anyhow::Result<u8> {
    let bodies = read_plans_file(file)?;
    let (_, latest) = api.call(Method::GET, "/v1/plans", None).await?;
    let mut results = Vec::new();
    for (name, body) in &bodies {
        let (local, sha256) =
            local_view(body).map_err(|e| UsageError(format!("plans.{name}: {e}")))?;
        let remote = latest
            .as_array()
            .and_then(|plans| plans.iter().find(|p| p["plan"] == json!(name)));
        let change = match remote {
            Some(remote) if remote["sha256"] == json!(sha256) => "unchanged",
            Some(_) => "changed",
            None => "new",
        };
        let lines = match remote.filter(|_| change == "changed") {
            Some(remote) => diff_lines(remote, &local),
            None => Vec::new(),
        };
        let mut version = remote.map(|r| r["version"].clone()).unwrap_or(Value::Null);
        if change != "unchanged" && !dry_run {
            let (_, written) = api
                .call(
                    Method::PUT,
                    &format!("/v1/plans/{}", encode(name)),
                    Some(body),
                )
                .await?;
            version = written["version"].clone();
        }
        results.push(json!({"plan": name, "change": change, "version": version, "sha256": sha256, "diff": lines}));
    }
    let value = json!({"dry_run": dry_run, "plans": results});
    output::print(cli.format(), &value, |v| apply_text(v, dry_run));
    Ok(0)
}

/// The `~ key: old -> new` lines of a changed plan.
fn diff_lines(remote: &Value, local: &Value) -> Vec<String> {
    let (old, new) = (comparable(remote), comparable(local));
    let mut lines = Vec::new();
    for (key, value) in &new {
        if old.get(key) != Some(value) {
            lines.push(format!("  ~ {key}: {} -> {value}", old[key]));
        }
    }
    lines
}

/// The text answer of `plan apply`: a line per plan, its diff, and the dry-run note.
fn apply_text(v: &Value, dry_run: bool) -> String {
    let mut out = String::new();
    for plan in v["plans"].as_array().into_iter().flatten() {
        let marker = match plan["change"].as_str() {
            Some("new") => "+",
            Some("changed") => "~",
            _ => "=",
        };
        out.push_str(&format!(
            "{marker} {} ({}{})\n",
            output::cell(&plan["plan"]),
            output::cell(&plan["change"]),
            if dry_run || plan["change"] == json!("unchanged") {
                String::new()
            } else {
                format!(", now version {}", output::cell(&plan["version"]))
            }
        ));
        for line in plan["diff"].as_array().into_iter().flatten() {
            out.push_str(&format!("{}\n", output::cell(line)));
        }
    }
    if dry_run {
        out.push_str("dry run: nothing was written\n");
    }
    out
}

pub(super) async fn plan(cli: &Cli, api: &ApiClient, command: &PlanCommand) -> anyhow::Result<u8> {
    match command {
        PlanCommand::Apply { file, dry_run } => return apply(cli, api, file, *dry_run).await,
        PlanCommand::List => {
            let (_, value) = api.call(Method::GET, "/v1/plans", None).await?;
            output::print(cli.format(), &value, |v| {
                table(
                    v.as_array().map_or(&[], Vec::as_slice),
                    &[
                        "plan", "version", "name", "currency", "base_fee", "features", "sha256",
                    ],
                )
            });
        }
        PlanCommand::Show { plan, version } => show(cli, api, plan, *version).await?,
        PlanCommand::Assign {
            tenant,
            plan,
            version,
            effective,
            reason,
        } => {
            let body =
                json!({"plan": plan, "version": version, "effective": effective, "reason": reason});
            let (_, value) = api
                .call(
                    Method::PUT,
                    &format!("/v1/tenants/{}/plan", encode(tenant)),
                    Some(&body),
                )
                .await?;
            output::print(cli.format(), &value, |v| {
                output::fields(v, &["plan", "version", "effective_from", "seq"])
            });
        }
    }
    Ok(0)
}

/// `plan show`: a plan's latest version (or `version`), its fields and quota table.
async fn show(cli: &Cli, api: &ApiClient, plan: &str, version: Option<u32>) -> anyhow::Result<()> {
    let path = match version {
        Some(n) => format!("/v1/plans/{}/versions/{n}", encode(plan)),
        None => format!("/v1/plans/{}", encode(plan)),
    };
    let (_, value) = api.call(Method::GET, &path, None).await?;
    output::print(cli.format(), &value, |v| {
        let mut out = output::fields(
            v,
            &[
                "plan",
                "version",
                "name",
                "currency",
                "base_fee",
                "features",
                "workloads_max",
                "sha256",
            ],
        );
        out.push_str(&table(
            v["quotas"].as_array().map_or(&[], Vec::as_slice),
            &[
                "metric",
                "period",
                "included",
                "thresholds_percent",
                "enforcement",
                "overage_unit_price",
            ],
        ));
        out
    });
    Ok(())
}
