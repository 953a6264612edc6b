//! The tenant, approval and usage commands: lifecycle actions through the API, their tables, and the usage report.

#[allow(unused_imports)]
use super::*;

pub(super) const TENANT_COLUMNS: [&str; 7] = [
    "id",
    "name",
    "status",
    "plan",
    "home_region",
    "allowed_regions",
    "deploy_regions",
];
pub(super) const TENANT_FIELDS: [&str; 14] = [
    "id",
    "name",
    "status",
    "plan",
    "home_region",
    "allowed_regions",
    "deploy_regions",
    "created_at",
    "suspended_at",
    "deleted_at",
    "purge_after",
    "purged_at",
    "policy_sha256",
    "dossier_evidence_id",
];

/// What the caller may do with a shown tenant, and its pending approval.
pub(super) fn actions_lines(tenant: &Value) -> String {
    let mut out = String::new();
    if let Some(actions) = tenant["allowed_actions"].as_array() {
        let names: Vec<String> = actions
            .iter()
            .map(|a| match a["needs_approval"].as_bool() {
                Some(true) => format!("{} (needs approval)", output::cell(&a["action"])),
                _ => output::cell(&a["action"]),
            })
            .collect();
        let names = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        // Aligned with `fields` of TENANT_FIELDS (its longest key is dossier_evidence_id).
        out.push_str(&format!("{:<19}  {names}\n", "allowed_actions"));
    }
    let pending = &tenant["pending_approval"];
    if !pending.is_null() {
        out.push_str(&format!(
            "{:<19}  {} {} by {}, expires {}\n",
            "pending_approval",
            output::cell(&pending["id"]),
            output::cell(&pending["action"]),
            output::cell(&pending["requested_by"]),
            output::cell(&pending["expires_at"])
        ));
    }
    out
}

pub(super) fn print_lifecycle(format: OutputFormat, status: u16, value: &Value) {
    output::print(format, value, |v| {
        let mut out = String::new();
        for warning in v["warnings"].as_array().into_iter().flatten() {
            out.push_str(&format!("WARNING: {}\n", output::cell(warning)));
        }
        if status == 202 {
            out.push_str(&format!(
                "approval {} is pending: a second operator with the approver role must run\n  companyos approval approve {}\n",
                output::cell(&v["approval"]["id"]),
                output::cell(&v["approval"]["id"])
            ));
        } else {
            out.push_str(&fields(v, &TENANT_FIELDS));
            if !v["evidence_id"].is_null() {
                out.push_str(&format!("evidence   {}\n", output::cell(&v["evidence_id"])));
            }
        }
        out
    });
}

pub(super) async fn tenant(
    cli: &Cli,
    file: &FileConfig,
    command: &TenantCommand,
) -> anyhow::Result<u8> {
    let api = api(cli, file)?;
    let (method, path) = tenant_route(command)?;
    let body = tenant_body(command);
    let (status, value) = api.call(method, &path, body.as_ref()).await?;
    print_tenant_answer(cli.format(), command, status, &value);
    Ok(0)
}

/// Where a tenant command's request goes: its method and path.
fn tenant_route(command: &TenantCommand) -> Result<(Method, String), UsageError> {
    let tenant = |id: &str, rest: &str| format!("/v1/tenants/{}{rest}", encode(id));
    Ok(match command {
        TenantCommand::Create { .. } => (Method::POST, "/v1/tenants".to_owned()),
        TenantCommand::List {
            status: Some(status),
        } => (
            Method::GET,
            format!("/v1/tenants?status={}", encode(status)),
        ),
        TenantCommand::List { status: None } => (Method::GET, "/v1/tenants".to_owned()),
        TenantCommand::Show { id } => (Method::GET, tenant(id, "")),
        TenantCommand::Suspend { id, .. } => (Method::POST, tenant(id, "/suspend")),
        TenantCommand::Reactivate { id, .. } => (Method::POST, tenant(id, "/reactivate")),
        TenantCommand::Restore { id, .. } => (Method::POST, tenant(id, "/restore")),
        TenantCommand::Delete { id, .. } => (Method::POST, tenant(id, "/delete")),
        TenantCommand::Purge { id, .. } => (Method::POST, tenant(id, "/purge")),
        TenantCommand::Regions { id, .. } => (Method::POST, tenant(id, "/regions")),
        TenantCommand::Workload {
            id,
            name: Some(name),
            replicas: Some(_),
        } => (
            Method::PUT,
            tenant(id, &format!("/workloads/{}", encode(name))),
        ),
        TenantCommand::Workload {
            id,
            name: None,
            replicas: None,
        } => (Method::GET, tenant(id, "/workloads")),
        TenantCommand::Workload { .. } => {
            return Err(UsageError(
                "give both a workload name and --replicas, or neither".to_owned(),
            ));
        }
        TenantCommand::Retention { id, .. } => (Method::PUT, tenant(id, "/retention")),
        TenantCommand::Retry { id } => (Method::POST, tenant(id, "/retry")),
    })
}

/// What a tenant command's request carries.
fn tenant_body(command: &TenantCommand) -> Option<Value> {
    match command {
        TenantCommand::Create {
            id,
            name,
            plan,
            home_region,
            allowed_regions,
            deploy_regions,
        } => {
            let mut body = json!({"id": id, "name": name});
            if let Some(plan) = plan {
                body["plan"] = json!(plan);
            }
            if let Some(region) = home_region {
                body["home_region"] = json!(region);
            }
            if let Some(regions) = allowed_regions {
                body["allowed_regions"] = json!(regions);
            }
            if let Some(regions) = deploy_regions {
                body["deploy_regions"] = json!(regions);
            }
            Some(body)
        }
        TenantCommand::List { .. } | TenantCommand::Show { .. } | TenantCommand::Retry { .. } => {
            None
        }
        TenantCommand::Suspend { reason, .. }
        | TenantCommand::Reactivate { reason, .. }
        | TenantCommand::Restore { reason, .. } => Some(json!({"reason": reason})),
        TenantCommand::Delete {
            reason, confirm, ..
        }
        | TenantCommand::Purge {
            reason, confirm, ..
        } => {
            let mut body = json!({"reason": reason});
            if let Some(confirm) = confirm {
                body["confirm"] = json!(confirm);
            }
            Some(body)
        }
        TenantCommand::Regions { add, remove, .. } => Some(json!({"add": add, "remove": remove})),
        TenantCommand::Workload { replicas, .. } => {
            replicas.map(|replicas| json!({"replicas": replicas}))
        }
        TenantCommand::Retention {
            tombstone_days,
            legal_hold,
            hard_delete_allowed,
            reason,
            ..
        } => Some(
            json!({"tombstone_days": tombstone_days, "legal_hold": legal_hold,
                     "hard_delete_allowed": hard_delete_allowed, "reason": reason}),
        ),
    }
}

/// Prints the answer to a tenant command.
fn print_tenant_answer(format: OutputFormat, command: &TenantCommand, status: u16, value: &Value) {
    match command {
        TenantCommand::Create { .. } | TenantCommand::Retry { .. } => {
            output::print(format, value, |v| {
                format!(
                    "{}api key (shown once): {}\n",
                    fields(v, &TENANT_FIELDS),
                    output::cell(&v["api_key"])
                )
            });
        }
        TenantCommand::List { .. } => output::print(format, value, |v| {
            table(v.as_array().map_or(&[], Vec::as_slice), &TENANT_COLUMNS)
        }),
        TenantCommand::Show { .. } => output::print(format, value, |v| {
            format!("{}{}", fields(v, &TENANT_FIELDS), actions_lines(v))
        }),
        TenantCommand::Suspend { .. }
        | TenantCommand::Reactivate { .. }
        | TenantCommand::Restore { .. }
        | TenantCommand::Delete { .. }
        | TenantCommand::Purge { .. } => print_lifecycle(format, status, value),
        TenantCommand::Regions { .. } => {
            output::print(format, value, |v| fields(v, &TENANT_FIELDS));
        }
        TenantCommand::Workload { .. } => output::print(format, value, |v| {
            table(
                v.as_array().map_or(&[], Vec::as_slice),
                &["name", "replicas", "suspended_replicas", "updated_at"],
            )
        }),
        TenantCommand::Retention { .. } => output::print(format, value, |v| {
            format!(
                "{}retention  {}\n",
                fields(v, &TENANT_FIELDS),
                v["retention"]
            )
        }),
    }
}

pub(super) async fn approval(
    cli: &Cli,
    file: &FileConfig,
    command: &ApprovalCommand,
) -> anyhow::Result<u8> {
    let api = api(cli, file)?;
    match command {
        ApprovalCommand::List { status } => {
            let path = match status {
                Some(status) => format!("/v1/approvals?status={}", encode(status)),
                None => "/v1/approvals".to_owned(),
            };
            let (_, value) = api.call(Method::GET, &path, None).await?;
            output::print(cli.format(), &value, |v| {
                table(
                    v.as_array().map_or(&[], Vec::as_slice),
                    &[
                        "id",
                        "action",
                        "tenant_id",
                        "status",
                        "requested_by",
                        "reason",
                        "expires_at",
                    ],
                )
            });
        }
        ApprovalCommand::Approve { id, comment } | ApprovalCommand::Reject { id, comment } => {
            let decision = if matches!(command, ApprovalCommand::Approve { .. }) {
                "approve"
            } else {
                "reject"
            };
            let (_, value) = api
                .call(
                    Method::POST,
                    &format!("/v1/approvals/{}/{decision}", encode(id)),
                    Some(&json!({"comment": comment})),
                )
                .await?;
            output::print(cli.format(), &value, decision_text);
        }
    }
    Ok(0)
}

/// An approval decision's answer as text: the approval, its warnings, and the tenant and
/// evidence it produced.
fn decision_text(v: &Value) -> String {
    let mut out = fields(
        &v["approval"],
        &[
            "id",
            "action",
            "tenant_id",
            "status",
            "requested_by",
            "decided_by",
        ],
    );
    for warning in v["warnings"].as_array().into_iter().flatten() {
        out.push_str(&format!("WARNING: {}\n", output::cell(warning)));
    }
    if !v["tenant"].is_null() {
        out.push_str(&format!(
            "tenant {} is now {}\n",
            output::cell(&v["tenant"]["id"]),
            output::cell(&v["tenant"]["status"])
        ));
    }
    if !v["evidence_id"].is_null() {
        out.push_str(&format!("evidence {}\n", output::cell(&v["evidence_id"])));
    }
    out
}

pub(super) async fn usage(
    cli: &Cli,
    file: &FileConfig,
    command: &UsageCommand,
) -> anyhow::Result<u8> {
    let api = api(cli, file)?;
    match command {
        UsageCommand::Send {
            file: path,
            batch_size,
            all_errors,
        } => {
            return crate::commands_usage::send(&api, path, *batch_size, *all_errors, cli.format())
                .await;
        }
        UsageCommand::Report {
            tenant,
            from,
            to,
            what,
        } => report(cli, &api, tenant, from, to, *what).await?,
        UsageCommand::Integrity { tenant, from, to } => {
            let (_, value) = api
                .call(
                    Method::POST,
                    &format!("/v1/tenants/{}/integrity-report", encode(tenant)),
                    Some(&json!({"from": from, "to": to})),
                )
                .await?;
            output::print(cli.format(), &value, |v| {
                format!(
                    "integrity report {}: {}\n",
                    output::cell(&v["evidence"]["id"]),
                    output::cell(&v["report"]["result"])
                )
            });
            if value["report"]["result"] != json!("pass") {
                return Ok(1);
            }
        }
        UsageCommand::Source {
            id,
            service,
            public_key,
        } => {
            let (_, value) = api
                .call(
                    Method::POST,
                    "/v1/sources",
                    Some(&json!({"id": id, "service": service, "public_key": public_key})),
                )
                .await?;
            output::print(cli.format(), &value, |v| {
                fields(v, &["id", "service", "public_key", "created_at"])
            });
        }
    }
    Ok(0)
}

// One list of columns per report, the server's: the CLI's tables and the CSV cannot drift.
use companyos_server::routes::usage::{
    DAILY_USAGE_COLUMNS as DAILY_COLUMNS, RECONCILIATION_COLUMNS,
};

/// `usage report`: CSV is one table (a stream of two tables back to back is no CSV file), so
/// `--what` picks it; table and json show both unless `--what` picks one.
pub(super) async fn report(
    cli: &Cli,
    api: &ApiClient,
    tenant: &str,
    from: &str,
    to: &str,
    what: Option<ReportPart>,
) -> anyhow::Result<()> {
    let query = format!("from={}&to={}", encode(from), encode(to));
    let path = |part: ReportPart| match part {
        ReportPart::Daily => format!("/v1/tenants/{}/usage/daily?{query}", encode(tenant)),
        ReportPart::Reconciliation => {
            format!("/v1/tenants/{}/reconciliation?{query}", encode(tenant))
        }
    };
    if cli.format() == OutputFormat::Csv {
        let part = what.unwrap_or(ReportPart::Daily);
        let (_, text) = api
            .call_raw(Method::GET, &format!("{}&format=csv", path(part)), None)
            .await?;
        print!("{text}");
        return Ok(());
    }
    let mut value = json!({"tenant_id": tenant, "from": from, "to": to});
    for (part, key) in [
        (ReportPart::Daily, "daily"),
        (ReportPart::Reconciliation, "reconciliation"),
    ] {
        if what.is_none_or(|w| w == part) {
            value[key] = api.call(Method::GET, &path(part), None).await?.1;
        }
    }
    output::print(cli.format(), &value, |v| {
        let mut out = String::new();
        if let Some(rows) = v["daily"].as_array() {
            out.push_str(&format!("Daily usage of {tenant}, {from} to {to}\n"));
            out.push_str(&table(rows, &DAILY_COLUMNS));
        }
        if let Some(rows) = v["reconciliation"].as_array() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("Reconciliation of {tenant}, {from} to {to}\n"));
            out.push_str(&table(rows, &RECONCILIATION_COLUMNS));
        }
        out
    });
    Ok(())
}
