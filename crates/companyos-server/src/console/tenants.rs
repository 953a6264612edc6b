//! The tenants list (filters, search, pagination, residency flags) and the tenant detail page
//! (overview, usage chart, status timeline, pending approval, lifecycle actions).

use axum::extract::{RawQuery, State};
use axum::response::IntoResponse;
use companyos_core::approvals::TenantActions;
use companyos_core::audit::AuditFilter;
use companyos_core::lifecycle::TenantRow;
use companyos_domain::Action;
use companyos_domain::audit::AuditRecord;
use companyos_domain::{TenantId, TenantStatus};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav, status_badge, time};
use super::session::ConsoleUser;
use super::{ConsoleResult, billing, chart, forms, parse_query};
use crate::AppState;
use crate::extract::PathLookup;

pub use super::forms::{act, evidence, integrity_report};

/// Tenants per page of the list.
pub const TENANTS_PER_PAGE: usize = 25;
/// Audit records shown in a tenant's timeline.
const TIMELINE_RECORDS: i64 = 25;
/// Days of the usage chart.
const USAGE_DAYS: i64 = 30;

#[derive(Debug, Default, Deserialize)]
pub struct TenantFilters {
    status: Option<String>,
    region: Option<String>,
    plan: Option<String>,
    q: Option<String>,
    page: Option<usize>,
}

/// A filter given in the form; an empty select or box means "any".
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn matches(tenant: &TenantRow, filters: &TenantFilters) -> bool {
    let region = given(&filters.region);
    let plan = given(&filters.plan);
    let search = given(&filters.q).map(str::to_lowercase);
    region.is_none_or(|r| {
        tenant.home_region.as_str() == r
            || tenant.allowed_regions.iter().any(|a| a.as_str() == r)
            || tenant.deploy_regions.iter().any(|d| d.as_str() == r)
    }) && plan.is_none_or(|p| tenant.plan.as_str() == p)
        && search.is_none_or(|s| {
            tenant.id.as_str().to_lowercase().contains(&s)
                || tenant.name.to_lowercase().contains(&s)
        })
}

/// Deploy regions outside the tenant's allowed (residency) regions.
fn outside_residency(tenant: &TenantRow) -> Vec<&str> {
    tenant
        .deploy_regions
        .iter()
        .filter(|d| !tenant.allowed_regions.contains(d))
        .map(|d| d.as_str())
        .collect()
}

/// Regions as a comma-separated list.
fn region_list(regions: &[companyos_domain::RegionName]) -> String {
    let names: Vec<&str> = regions.iter().map(|r| r.as_str()).collect();
    names.join(", ")
}

fn regions(tenant: &TenantRow) -> Markup {
    let outside = outside_residency(tenant);
    html! {
        span.muted { "allowed: " } (region_list(&tenant.allowed_regions)) br;
        span.muted { "deployed: " }
        @if tenant.deploy_regions.is_empty() { span.muted { "none" } }
        @for (i, region) in tenant.deploy_regions.iter().enumerate() {
            @if i > 0 { ", " }
            @if outside.contains(&region.as_str()) {
                span.flag title="outside the tenant's allowed regions" { "⚠ " (region) " (outside residency)" }
            } @else { (region) }
        }
    }
}

fn select(name: &str, label: &str, options: &[String], chosen: Option<&str>) -> Markup {
    html! {
        div {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                option value="" { "any" }
                @for option in options {
                    @if chosen == Some(option.as_str()) { option value=(option) selected { (option) } }
                    @else { option value=(option) { (option) } }
                }
            }
        }
    }
}

fn filters_form(state: &AppState, filters: &TenantFilters) -> Markup {
    let statuses: Vec<String> = TenantStatus::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    let settings = state.app.settings();
    let regions: Vec<String> = settings
        .regions
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    let plans: Vec<String> = settings
        .plans
        .iter()
        .map(|p| p.name.as_str().to_owned())
        .collect();
    html! {
        form.filters method="get" action="/console/tenants" role="search" {
            div {
                label for="q" { "Search id or name" }
                input id="q" name="q" type="search" value=(given(&filters.q).unwrap_or(""));
            }
            (select("status", "Status", &statuses, given(&filters.status)))
            (select("region", "Region", &regions, given(&filters.region)))
            (select("plan", "Plan", &plans, given(&filters.plan)))
            button type="submit" { "Filter" }
            a.button.secondary href="/console/tenants" { "Clear" }
        }
    }
}

fn page_link(filters: &TenantFilters, page: usize) -> String {
    let pairs = [
        ("q", given(&filters.q)),
        ("status", given(&filters.status)),
        ("region", given(&filters.region)),
        ("plan", given(&filters.plan)),
    ];
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    query.append_pair("page", &page.to_string());
    format!("/console/tenants?{}", query.finish())
}

fn tenants_table(tenants: &[(&TenantRow, &TenantActions)]) -> Markup {
    html! {
        table {
            thead { tr { th { "Tenant" } th { "Status" } th { "Plan" } th { "Home" } th { "Regions" } th { "Pending" } } }
            tbody {
                @for (tenant, actions) in tenants {
                    tr {
                        td { a href={ "/console/tenants/" (tenant.id) } { (tenant.name) } br; code { (tenant.id) } }
                        td { (status_badge(tenant.status)) }
                        td { (tenant.plan) }
                        td { (tenant.home_region) }
                        td { (regions(tenant)) }
                        td {
                            @if let Some(approval) = &actions.pending_approval {
                                span.badge.info { (approval.action) " awaiting approval" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /console/tenants`
pub async fn list(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(query): RawQuery,
) -> ConsoleResult {
    let filters: TenantFilters = parse_query(query.as_deref())?;
    let all = state
        .app
        .lifecycle()
        .list(&user.actor, given(&filters.status))
        .await?;
    let selected: Vec<TenantRow> = all.into_iter().filter(|t| matches(t, &filters)).collect();
    let pages = selected.len().div_ceil(TENANTS_PER_PAGE).max(1);
    let page = filters.page.unwrap_or(1).clamp(1, pages);
    let shown: Vec<TenantRow> = selected
        .iter()
        .skip((page - 1) * TENANTS_PER_PAGE)
        .take(TENANTS_PER_PAGE)
        .cloned()
        .collect();
    let actions = state
        .app
        .approvals()
        .tenant_actions(&user.actor, &shown)
        .await?;
    state
        .app
        .console()
        .read(&user.actor, "tenant.read", "tenants", None)
        .await?;
    let rows: Vec<(&TenantRow, &TenantActions)> = shown.iter().zip(&actions).collect();
    let body = html! {
        h1 { "Tenants" }
        (filters_form(&state, &filters))
        p.muted { (selected.len()) " tenants · page " (page) " of " (pages) }
        (tenants_table(&rows))
        nav.pager aria-label="Pages" {
            @if page > 1 { a href=(page_link(&filters, page - 1)) rel="prev" { "← Previous" } }
            @if page < pages { a href=(page_link(&filters, page + 1)) rel="next" { "Next →" } }
        }
    };
    Ok(layout::html(layout::page("Tenants", &user, Nav::Tenants, body)).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    done: Option<String>,
}

/// What a finished action says on the page it returns to (only known codes: the text never
/// comes from the query).
fn notice(done: Option<&str>) -> Option<(&'static str, &'static str)> {
    Some(match done? {
        "suspend" => (
            "ok",
            "Suspended: the tenant's API keys are refused until reactivated.",
        ),
        "reactivate" => ("ok", "Reactivated."),
        "delete" => (
            "ok",
            "Deleted: the tenant is in its tombstone period and can be restored.",
        ),
        "restore" => ("ok", "Restored."),
        "purge" => ("ok", "Purged: the deletion certificate is in the evidence."),
        "approval" => (
            "warn",
            "An approval was requested: a second operator must approve it.",
        ),
        "integrity-report" => ("ok", "The integrity report was generated and signed."),
        "plan" => ("ok", "The plan was changed."),
        _ => return None,
    })
}

fn overview(tenant: &TenantRow, may_read_evidence: bool) -> Markup {
    html! {
        div.card {
            h2 { "Overview" }
            table {
                tr { th scope="row" { "Status" } td { (status_badge(tenant.status)) } }
                tr { th scope="row" { "Plan" } td { (tenant.plan) } }
                tr { th scope="row" { "Home region" } td { (tenant.home_region) } }
                tr { th scope="row" { "Regions" } td { (regions(tenant)) } }
                tr { th scope="row" { "Created" } td { (time(tenant.created_at)) } }
                @if let Some(at) = tenant.suspended_at { tr { th scope="row" { "Suspended" } td { (time(at)) } } }
                @if let Some(at) = tenant.deleted_at { tr { th scope="row" { "Deleted" } td { (time(at)) } } }
                @if let Some(at) = tenant.purge_after { tr { th scope="row" { "Purge after" } td { (time(at)) } } }
                tr { th scope="row" { "Retention" } td {
                    (tenant.retention.tombstone_days) " days tombstone"
                    @if tenant.retention.legal_hold { " · " span.badge.bad { "legal hold" } }
                } }
                tr { th scope="row" { "Dossier" } td {
                    @match (&tenant.dossier_evidence_id, may_read_evidence) {
                        (Some(id), true) => a href={ "/console/evidence/" (id) } download { "Download the signed dossier" },
                        (Some(_), false) => span.muted { "signed; your role may not read evidence" },
                        (None, _) => span.muted { "none" },
                    }
                } }
            }
        }
    }
}

fn timeline(records: &[AuditRecord]) -> Markup {
    html! {
        div.card {
            h2 { "Timeline" }
            @if records.is_empty() { p.muted { "No audit records yet." } }
            ol.timeline {
                @for record in records {
                    li class=(record.outcome.as_str()) {
                        (layout::timestamp(&record.occurred_at))
                        " · " strong { (record.action) } " " (layout::outcome_badge(record.outcome.as_str()))
                        " by " (record.actor) " (" (record.role) ")"
                        @if let Some(channel) = record.channel { " via " (channel.as_str()) }
                        @if let Some(reason) = &record.reason { br; span.muted { (reason) } }
                    }
                }
            }
        }
    }
}

/// `GET /console/tenants/{id}`
pub async fn show(
    State(state): State<AppState>,
    user: ConsoleUser,
    id: PathLookup<TenantId>,
    RawQuery(query): RawQuery,
) -> ConsoleResult {
    let query: DetailQuery = parse_query(query.as_deref())?;
    let tenant = state.app.lifecycle().get(&user.actor, id.as_str()).await?;
    let actions = state
        .app
        .approvals()
        .tenant_actions(&user.actor, std::slice::from_ref(&tenant))
        .await?
        .pop()
        .unwrap_or(TenantActions {
            allowed: Vec::new(),
            pending_approval: None,
        });
    let today = state.app.now().date();
    let from = today - time::Duration::days(USAGE_DAYS - 1);
    let usage = state
        .app
        .metering()
        .daily_usage(&user.actor, tenant.id.as_str(), from, today)
        .await?;
    let records = if state.app.console().may(&user.actor, Action::AuditRead) {
        let filter = AuditFilter {
            tenant_id: Some(tenant.id.as_str().to_owned()),
            newest_first: true,
            limit: TIMELINE_RECORDS,
            ..AuditFilter::default()
        };
        Some(state.app.audit().records(&user.actor, &filter).await?)
    } else {
        None
    };
    state
        .app
        .console()
        .read(
            &user.actor,
            "tenant.read",
            &tenant.target(),
            Some(tenant.id.as_str()),
        )
        .await?;
    let may_report = state.app.console().may(&user.actor, Action::EvidenceCreate);
    let plan = billing::load(&state, &user, &tenant).await?;
    let body = html! {
        p { a href="/console/tenants" { "← Tenants" } }
        h1 { (tenant.name) " " code { (tenant.id) } " " (status_badge(tenant.status)) }
        @if let Some((class, text)) = notice(query.done.as_deref()) {
            p class={ "notice " (class) } role="status" { (text) }
        }
        div.grid {
            (overview(&tenant, state.app.console().may(&user.actor, Action::EvidenceRead)))
            div.card {
                h2 { "Usage, last " (USAGE_DAYS) " days" }
                (chart::daily_events(&usage, from, today))
            }
        }
        (billing::plan_section(&user, &tenant, &plan))
        (forms::pending(&actions))
        (forms::lifecycle(&user, &tenant, &actions))
        @if may_report { (forms::reports(&user, &tenant)) }
        @if let Some(records) = &records { (timeline(records)) }
    };
    Ok(layout::html(layout::page(&tenant.name, &user, Nav::Tenants, body)).into_response())
}
