//! The ledger, audit, metering and evidence commands: store verifications, exports, coverage and signed artifacts.

#[allow(unused_imports)]
use super::*;

pub(super) async fn ledger(
    cli: &Cli,
    file: &FileConfig,
    command: &LedgerCommand,
) -> anyhow::Result<u8> {
    match command {
        LedgerCommand::Verify { tenant } => verify_ledgers(cli, file, tenant.as_deref()).await,
        LedgerCommand::Proof {
            tenant,
            event_id,
            tree_size,
        } => {
            let api = api(cli, file)?;
            let mut path = format!(
                "/v1/tenants/{}/ledger/proof?event_id={}",
                encode(tenant),
                encode(event_id)
            );
            if let Some(size) = tree_size {
                path.push_str(&format!("&tree_size={size}"));
            }
            let (_, value) = api.call(Method::GET, &path, None).await?;
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(0)
        }
        LedgerCommand::Checkpoint { tenant } => {
            let api = api(cli, file)?;
            let (_, text) = api
                .call_raw(
                    Method::GET,
                    &format!("/v1/tenants/{}/ledger/checkpoint", encode(tenant)),
                    None,
                )
                .await?;
            print!("{text}");
            Ok(0)
        }
    }
}

/// `ledger verify`: every tenant's ledger (or one), with a progress bar; exit 1 on a problem.
async fn verify_ledgers(cli: &Cli, file: &FileConfig, tenant: Option<&str>) -> anyhow::Result<u8> {
    let app = open_existing(cli, file).await?;
    let bar = verify_progress_bar();
    let mut current = String::new();
    let mut on_progress = |progress: VerifyProgress<'_>| match progress {
        VerifyProgress::Tenant {
            tenant,
            index,
            total,
        } => {
            bar.set_length(total as u64);
            bar.set_position(index as u64);
            current = tenant.to_owned();
            bar.set_message(current.clone());
        }
        // Formatting every leaf would cost more than checking it; the bar redraws a
        // few times a second anyway.
        VerifyProgress::Leaves(leaves) if leaves % 4096 == 0 => {
            bar.set_message(format!("{current}: {leaves} leaves"));
        }
        VerifyProgress::Leaves(_) => {}
    };
    let result = app
        .ledger()
        .verify_with_progress(tenant, &mut on_progress)
        .await;
    bar.finish_and_clear();
    app.db().close().await;
    let problems = result?;
    if problems.is_empty() {
        println!("ledger verified: every leaf, node, root, checkpoint and payload matches");
        return Ok(0);
    }
    for problem in &problems {
        let tenant = problem
            .log_id
            .strip_prefix("tenant/")
            .unwrap_or(&problem.log_id);
        match problem.leaf_index {
            Some(index) => println!("tenant {tenant} leaf {index}: {}", problem.message),
            None => println!("tenant {tenant}: {}", problem.message),
        }
    }
    println!("ledger verification FAILED: {} problem(s)", problems.len());
    Ok(1)
}

/// The progress bar of `ledger verify`: on stderr, and only when stderr is a terminal
/// (indicatif draws nothing otherwise), so redirected output stays clean.
pub(super) fn verify_progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("verifying tenant {pos}/{len} {wide_bar} {msg}")
    {
        bar.set_style(style);
    }
    bar
}

pub(super) async fn audit(
    cli: &Cli,
    file: &FileConfig,
    command: &AuditCommand,
) -> anyhow::Result<u8> {
    match command {
        AuditCommand::Verify => {
            let app = open_existing(cli, file).await?;
            let problems = app.audit().verify().await?;
            app.db().close().await;
            if problems.is_empty() {
                println!(
                    "audit log verified: every record matches its leaf, every checkpoint its tree"
                );
                return Ok(0);
            }
            for problem in &problems {
                match problem.leaf_index {
                    Some(index) => println!("audit record {index}: {}", problem.message),
                    None => println!("audit log: {}", problem.message),
                }
            }
            println!("audit verification FAILED: {} problem(s)", problems.len());
            Ok(1)
        }
        AuditCommand::Disclose {
            tenant,
            from,
            to,
            out,
        } => super::statements::disclose(cli, file, tenant, from, to, out).await,
        AuditCommand::Export { tenant } => {
            // Table is the global default, but an export is for files: JSON lines unless csv.
            let output = match cli.output {
                Some(OutputFormat::Csv) => "csv",
                _ => "jsonl",
            };
            let api = api(cli, file)?;
            let mut path = format!("/v1/audit?format={output}");
            if let Some(tenant) = tenant {
                path.push_str(&format!("&tenant_id={}", encode(tenant)));
            }
            let (_, text) = api.call_raw(Method::GET, &path, None).await?;
            print!("{text}");
            Ok(0)
        }
    }
}

pub(super) async fn metering(
    cli: &Cli,
    file: &FileConfig,
    command: &MeteringCommand,
) -> anyhow::Result<u8> {
    match command {
        MeteringCommand::Check { file: path } => Ok(check_declaration(path)),
        MeteringCommand::Declare { file: path } => declare(cli, file, path).await,
        MeteringCommand::Coverage => {
            let api = api(cli, file)?;
            let (_, value) = api.call(Method::GET, "/v1/metering/coverage", None).await?;
            output::print(cli.format(), &value, coverage_table);
            Ok(0)
        }
        MeteringCommand::Mode { mode, service } => {
            let api = api(cli, file)?;
            let mode_value = if mode == "inherit" {
                Value::Null
            } else {
                json!(mode)
            };
            let path = match service {
                Some(service) => format!("/v1/services/{}/coverage", encode(service)),
                None => "/v1/metering/coverage".to_owned(),
            };
            let (_, value) = api
                .call(Method::PUT, &path, Some(&json!({"mode": mode_value})))
                .await?;
            output::print(cli.format(), &value, |v| {
                format!("coverage mode set: {v}\n")
            });
            Ok(0)
        }
    }
}

/// `metering check`: lints a declaration file offline; exit 1 with one line per problem.
fn check_declaration(path: &std::path::Path) -> u8 {
    match crate::commands_usage::lint_declaration(path) {
        Ok(declaration) => {
            println!(
                "{}: ok, service {} declares {} metric(s)",
                path.display(),
                declaration.service,
                declaration.metrics.len()
            );
            0
        }
        Err(problems) => {
            for problem in &problems {
                println!("{}: {problem}", path.display());
            }
            1
        }
    }
}

/// `metering declare`: lints the file, then sends it as the service's declaration.
async fn declare(cli: &Cli, file: &FileConfig, path: &std::path::Path) -> anyhow::Result<u8> {
    let declaration = crate::commands_usage::lint_declaration(path)
        .map_err(|problems| UsageError(format!("{}: {}", path.display(), problems.join("; "))))?;
    let api = api(cli, file)?;
    let body = serde_json::to_value(&declaration)?;
    let (_, value) = api
        .call(
            Method::PUT,
            &format!(
                "/v1/services/{}/metering",
                encode(declaration.service.as_str())
            ),
            Some(&body),
        )
        .await?;
    output::print(cli.format(), &value, |v| {
        format!(
            "declared service {}\n{}",
            output::cell(&v["service"]),
            table(
                v["metrics"].as_array().map_or(&[], Vec::as_slice),
                &["name", "unit", "aggregation", "description"]
            )
        )
    });
    Ok(0)
}

/// The coverage report as one table: a row per finding, named by its kind.
pub(super) fn coverage_table(value: &Value) -> String {
    let mut rows = Vec::new();
    for (key, problem) in [
        ("services_without_declaration", "service not declared"),
        ("undeclared_metrics", "metric not declared"),
        ("unit_mismatches", "unit differs from declared"),
        ("declared_metrics_never_seen", "declared, never seen"),
    ] {
        for item in value[key].as_array().into_iter().flatten() {
            let mut row = item.clone();
            row["problem"] = json!(problem);
            rows.push(row);
        }
    }
    let mut out = format!("coverage mode: {}\n", output::cell(&value["coverage_mode"]));
    if rows.is_empty() {
        out.push_str("every metric seen is declared, every declared metric seen\n");
    } else {
        out.push_str(&table(
            &rows,
            &[
                "problem",
                "service",
                "metric",
                "unit",
                "declared_unit",
                "events",
            ],
        ));
    }
    out
}

pub(super) async fn evidence(
    cli: &Cli,
    file: &FileConfig,
    command: &EvidenceCommand,
) -> anyhow::Result<u8> {
    let api = api(cli, file)?;
    match command {
        EvidenceCommand::List { tenant, kind } => {
            let mut query = Vec::new();
            if let Some(tenant) = tenant {
                query.push(format!("tenant_id={}", encode(tenant)));
            }
            if let Some(kind) = kind {
                query.push(format!("kind={}", encode(kind)));
            }
            let path = if query.is_empty() {
                "/v1/evidence".to_owned()
            } else {
                format!("/v1/evidence?{}", query.join("&"))
            };
            let (_, value) = api.call(Method::GET, &path, None).await?;
            output::print(cli.format(), &value, |v| {
                table(
                    v.as_array().map_or(&[], Vec::as_slice),
                    &[
                        "id",
                        "kind",
                        "tenant_id",
                        "file_name",
                        "size_bytes",
                        "created_at",
                    ],
                )
            });
        }
        EvidenceCommand::Get { id, out } => {
            let (_, listing) = api.call(Method::GET, "/v1/evidence", None).await?;
            let name = listing
                .as_array()
                .and_then(|items| items.iter().find(|i| i["id"] == json!(id)))
                .and_then(|i| i["file_name"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{id}.bin"));
            let (_, bytes) = api
                .call_raw(Method::GET, &format!("/v1/evidence/{}", encode(id)), None)
                .await?;
            let (_, signature) = api
                .call_raw(
                    Method::GET,
                    &format!("/v1/evidence/{}/signature", encode(id)),
                    None,
                )
                .await?;
            std::fs::create_dir_all(out)?;
            let path = out.join(&name);
            std::fs::write(&path, bytes)?;
            std::fs::write(out.join(format!("{name}.minisig")), signature)?;
            println!("{} and {}.minisig", path.display(), path.display());
        }
    }
    Ok(0)
}
