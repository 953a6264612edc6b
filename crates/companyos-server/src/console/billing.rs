//! The tenant page's plan and statements: quota gauges from the entitlements, the plan change
//! form (`Billing::change_tenant_plan`, as `PUT /v1/tenants/{id}/plan`), the list of monthly
//! statements, and the statement page with its downloads (JSON, CSV, PDF, the signed pack).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use companyos_core::ServiceError;
use companyos_core::billing::{Effective, Entitlements, PlanChange};
use companyos_core::lifecycle::TenantRow;
use companyos_core::statements::{StatementDocument, StatementSummary};
use companyos_domain::Action;
use companyos_domain::statement::{Statement, StatementMonth};
use companyos_domain::{PlanName, TenantId};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::session::{ConsoleUser, Posted, csrf_input};
use super::{ConsoleError, ConsoleResult, parse_query, see_other};
use crate::AppState;
use crate::error::AppError;
use crate::extract::{PathLookup, PathLookups};

/// Months listed on the tenant page (the newest).
const STATEMENT_MONTHS_SHOWN: usize = 12;

fn tenant_id(text: &str) -> Result<TenantId, ConsoleError> {
    TenantId::parse(text).map_err(|e| AppError::invalid("id", e.message).into())
}

/// What the tenant page shows of the tenant's plan, quotas and statements.
#[derive(Debug, Default)]
pub struct PlanSection {
    entitlements: Option<Entitlements>,
    /// The catalog's plans, when the operator may change the tenant's plan.
    plans: Option<Vec<String>>,
    statements: Vec<StatementSummary>,
}

/// A read the page can do without: a plan or statement the operator may not read, or that
/// does not exist yet, leaves its part of the page out (the denial is audited by the service).
fn optional<T>(result: Result<T, ServiceError>) -> Result<Option<T>, ServiceError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(ServiceError::Forbidden(_) | ServiceError::NotFound(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Reads what [`plan_section`] shows.
pub async fn load(
    state: &AppState,
    user: &ConsoleUser,
    tenant: &TenantRow,
) -> ConsoleResult<PlanSection> {
    let id = tenant_id(tenant.id.as_str())?;
    let billing = state.app.billing();
    let entitlements = optional(billing.entitlements(&user.actor, &id).await)?;
    let plans = if state
        .app
        .console()
        .may_on_tenant(&user.actor, Action::TenantPlanChange, tenant)
    {
        optional(billing.list_plans(&user.actor).await)?.map(|plans| {
            plans
                .iter()
                .map(|p| p.version.plan.as_str().to_owned())
                .collect()
        })
    } else {
        None
    };
    let statements =
        if state
            .app
            .console()
            .may_on_tenant(&user.actor, Action::StatementRead, tenant)
        {
            optional(state.app.statements().list(&user.actor, &id).await)?.unwrap_or_default()
        } else {
            Vec::new()
        };
    Ok(PlanSection {
        entitlements,
        plans,
        statements,
    })
}

fn gauges(entitlements: &Entitlements) -> Markup {
    html! {
        p { "Plan " strong { (entitlements.plan.as_str()) } " version " (entitlements.version) }
        @for quota in &entitlements.quotas {
            @let label = format!("{} per {}", quota.quota.metric.as_str(), quota.quota.period.as_str());
            div.gauge {
                label { (label) " · " (quota.quota.enforcement.as_str())
                    @if !quota.has_access() { " " span.badge.bad { "used up" } }
                    @else if quota.is_over() { " " span.badge.warn { "over" } }
                }
                meter min="0" max=(quota.allowance().to_string()) value=(quota.usage.to_string())
                    high=(quota.allowance().to_string()) { (quota.percent_used().to_string()) "%" }
                span.muted { " " (quota.usage.normalize().to_string()) " of " (quota.allowance().normalize().to_string())
                    " (" (quota.percent_used().to_string()) "%), " (quota.bounds.start) " to " (quota.bounds.end) }
            }
        }
        @if entitlements.quotas.is_empty() { p.muted { "This plan has no quotas." } }
    }
}

fn plan_form(user: &ConsoleUser, tenant: &TenantRow, plans: &[String]) -> Markup {
    html! {
        form method="post" action={ "/console/tenants/" (tenant.id) "/plan" } {
            (csrf_input(user))
            h3 { "Change plan" }
            label for="plan" { "Plan (its latest version)" }
            select id="plan" name="plan" {
                @for plan in plans {
                    @if *plan == tenant.plan.as_str() { option value=(plan) selected { (plan) } }
                    @else { option value=(plan) { (plan) } }
                }
            }
            label for="effective" { "Effective" }
            select id="effective" name="effective" {
                option value="next_period" { "from the next month" }
                option value="now" { "today (prorated)" }
            }
            label for="plan-reason" { "Reason (required, written to the audit log)" }
            textarea id="plan-reason" name="reason" required maxlength="1000" {}
            p { button type="submit" { "Change plan" } }
        }
    }
}

/// The plan card and the statements card of the tenant page.
pub fn plan_section(user: &ConsoleUser, tenant: &TenantRow, section: &PlanSection) -> Markup {
    html! {
        div.grid {
            div.card {
                h2 { "Plan and quotas" }
                @if let Some(entitlements) = &section.entitlements { (gauges(entitlements)) }
                @else { p.muted { "Plan " (tenant.plan) "." } }
                @if let Some(plans) = &section.plans { (plan_form(user, tenant, plans)) }
            }
            @if !section.statements.is_empty() {
                div.card {
                    h2 { "Statements" }
                    ul {
                        @for summary in section.statements.iter().take(STATEMENT_MONTHS_SHOWN) {
                            li {
                                a href={ "/console/tenants/" (tenant.id) "/statements/" (summary.month.label()) } { (summary.month.label()) }
                                " " span class={ "badge " (if summary.status.as_str() == "final" { "ok" } else { "info" }) } { (summary.status.as_str()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    plan: String,
    #[serde(default)]
    effective: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/tenants/{id}/plan`
pub async fn change_plan(
    State(state): State<AppState>,
    id: PathLookup<TenantId>,
    posted: Posted<PlanForm>,
) -> ConsoleResult {
    let tenant = id.or_invalid()?;
    let plan = PlanName::parse(posted.form.plan.trim())
        .map_err(|e| ConsoleError::from(AppError::invalid("plan", e.message)))?;
    let effective = Effective::parse_field(&posted.form.effective, "effective")
        .map_err(|e| ConsoleError::from(AppError::invalid("effective", e.message)))?;
    let reason = Some(posted.form.reason.trim().to_owned()).filter(|r| !r.is_empty());
    state
        .app
        .billing()
        .change_tenant_plan(
            &posted.user.actor,
            &tenant,
            PlanChange {
                plan,
                version: None,
                effective,
                reason,
            },
        )
        .await?;
    Ok(see_other(&format!("/console/tenants/{tenant}?done=plan")))
}

fn statement_body(tenant: &TenantId, document: &Statement, sha256: &str) -> Markup {
    let base = format!(
        "/console/tenants/{tenant}/statements/{}",
        document.month.label()
    );
    html! {
        p { a href={ "/console/tenants/" (tenant) } { "← " (tenant) } }
        h1 { "Statement " (document.month.label()) " " code { (tenant) } " "
            span class={ "badge " (if document.status.as_str() == "final" { "ok" } else { "info" }) } { (document.status.as_str()) } }
        p {
            "Download: "
            a href={ (base) "/download?format=json" } download { "JSON" } " · "
            a href={ (base) "/download?format=csv" } download { "CSV" } " · "
            a href={ (base) "/download?format=pdf" } download { "PDF" } " · "
            a href={ (base) "/pack" } download { "signed pack (zip)" }
        }
        p.muted { "SHA-256 of the statement: " code { (sha256) } }
        div.card {
            h2 { "Plans in force" }
            table {
                thead { tr { th { "Plan" } th { "Version" } th { "From" } th { "To" } } }
                tbody { @for plan in &document.plans { tr { td { (plan.plan) } td { (plan.version) } td { (plan.from) } td { (plan.to) } } } }
            }
        }
        div.card {
            h2 { "Lines" }
            table {
                thead { tr { th { "Service" } th { "Metric" } th { "Unit" } th { "Quantity" } th { "Included" } th { "Overage" } th { "Unit price" } th { "Amount" } } }
                tbody {
                    @for line in &document.lines {
                        tr {
                            td { (line.key.service.as_str()) } td { (line.key.metric.as_str()) } td { (line.key.unit.as_str()) }
                            td { (line.quantity.to_string()) } td { (line.included.to_string()) } td { (line.overage.to_string()) }
                            td { (line.unit_price.to_string()) } td { (line.amount.to_string()) " " (document.currency) }
                        }
                    }
                    @for adjustment in &document.adjustments {
                        tr {
                            td { (adjustment.key.service.as_str()) } td { (adjustment.key.metric.as_str()) } td { (adjustment.key.unit.as_str()) }
                            td { (adjustment.quantity.to_string()) } td colspan="3" { "adjustment for " (adjustment.for_month.label()) }
                            td { (adjustment.amount.to_string()) " " (document.currency) }
                        }
                    }
                    tr { td colspan="7" { "Base fee" } td { (document.base_fee.to_string()) " " (document.currency) } }
                    tr { th colspan="7" scope="row" { "Total" } th { (document.total.to_string()) " " (document.currency) } }
                }
            }
        }
        div.card {
            h2 { "Counts and ledger" }
            p {
                "Accepted " (document.counts.accepted) ", duplicates " (document.counts.duplicates)
                ", late " (document.counts.late) ", rejected " (document.counts.rejected)
                ", conflicts " (document.counts.conflicts) ", missing " (document.counts.missing) "."
            }
            p { "Ledger entries " (document.ledger.from_seq.map_or("none".to_owned(), |s| s.to_string()))
                " to " (document.ledger.to_seq.map_or("none".to_owned(), |s| s.to_string())) " (inclusive)." }
            pre.mono { (document.ledger.checkpoint) }
        }
    }
}

/// Reads one statement through the same service as the API and audits the console read, for
/// both the statement page and its downloads.
async fn read_statement(
    state: &AppState,
    user: &ConsoleUser,
    id: PathLookup<TenantId>,
    month: PathLookup<StatementMonth>,
) -> Result<(TenantId, StatementMonth, StatementDocument), ConsoleError> {
    let tenant = id.or_invalid()?;
    let month = month.or_invalid()?;
    let document = state
        .app
        .statements()
        .get(&user.actor, &tenant, month)
        .await?;
    state
        .app
        .console()
        .read(
            &user.actor,
            "statement.read",
            &format!("tenant:{tenant}"),
            Some(tenant.as_str()),
        )
        .await?;
    Ok((tenant, month, document))
}

/// `GET /console/tenants/{id}/statements/{month}`
pub async fn statement(
    State(state): State<AppState>,
    user: ConsoleUser,
    PathLookups(id, month): PathLookups<TenantId, StatementMonth>,
) -> ConsoleResult {
    let (tenant, month, document) = read_statement(&state, &user, id, month).await?;
    let body = statement_body(&tenant, &document.statement, &document.sha256);
    let title = format!("Statement {}", month.label());
    Ok(layout::html(layout::page(&title, &user, Nav::Tenants, body)).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct DownloadQuery {
    format: Option<String>,
}

fn attachment(bytes: Vec<u8>, content_type: &'static str, file_name: &str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /console/tenants/{id}/statements/{month}/download?format=json|csv|pdf`
pub async fn download(
    State(state): State<AppState>,
    user: ConsoleUser,
    PathLookups(id, month): PathLookups<TenantId, StatementMonth>,
    RawQuery(query): RawQuery,
) -> ConsoleResult {
    let query: DownloadQuery = parse_query(query.as_deref())?;
    let (tenant, month, document) = read_statement(&state, &user, id, month).await?;
    let name = format!("statement-{tenant}-{month}");
    Ok(match query.format.as_deref().unwrap_or("json") {
        "json" => attachment(
            document.canonical.into_bytes(),
            "application/json",
            &format!("{name}.json"),
        ),
        "csv" => attachment(
            companyos_core::statements::statement_csv(&document.statement).into_bytes(),
            "text/csv; charset=utf-8",
            &format!("{name}.csv"),
        ),
        "pdf" => attachment(
            companyos_core::statements::statement_pdf(&document.statement),
            "application/pdf",
            &format!("{name}.pdf"),
        ),
        _ => {
            return Err(AppError::invalid("format", "must be json, csv or pdf").into());
        }
    })
}

/// `GET /console/tenants/{id}/statements/{month}/pack`: the signed pack (audited by the
/// service as `statement.pack`).
pub async fn pack(
    State(state): State<AppState>,
    user: ConsoleUser,
    PathLookups(id, month): PathLookups<TenantId, StatementMonth>,
) -> ConsoleResult {
    let tenant = id.or_invalid()?;
    let month = month.or_invalid()?;
    let zip = state
        .app
        .statements()
        .pack(&user.actor, &tenant, month)
        .await?;
    Ok(attachment(
        zip,
        "application/zip",
        &format!("statement-pack-{tenant}-{month}.zip"),
    ))
}
