//! The audit page: the log newest first, filtered by tenant, actor, action, outcome and
//! channel on the server, a page at a time (`Audit::records`, as `GET /v1/audit`).

use axum::extract::{RawQuery, State};
use axum::response::IntoResponse;
use companyos_core::audit::AuditFilter;
use companyos_domain::audit::{AuditChannel, AuditOutcome, AuditRecord};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav, outcome_badge};
use super::session::ConsoleUser;
use super::{ConsoleError, ConsoleResult, parse_query};
use crate::AppState;
use crate::error::AppError;

/// Audit records per page.
pub const AUDIT_RECORDS_PER_PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    tenant_id: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    channel: Option<String>,
    before: Option<i64>,
}

fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn filter_of(query: &AuditQuery) -> Result<AuditFilter, ConsoleError> {
    let outcome = given(&query.outcome);
    if outcome
        .as_deref()
        .is_some_and(|o| AuditOutcome::parse(o).is_none())
    {
        return Err(AppError::invalid("outcome", "must be success, denied or failed").into());
    }
    let channel = given(&query.channel)
        .map(|c| {
            AuditChannel::parse(&c)
                .ok_or_else(|| AppError::invalid("channel", "must be api, cli or console"))
        })
        .transpose()?;
    Ok(AuditFilter {
        tenant_id: given(&query.tenant_id),
        action: given(&query.action),
        outcome,
        actor: given(&query.actor),
        channel,
        before_seq: query.before,
        newest_first: true,
        limit: AUDIT_RECORDS_PER_PAGE,
        ..AuditFilter::default()
    })
}

fn text_filter(name: &str, label: &str, value: Option<String>) -> Markup {
    html! {
        div {
            label for=(name) { (label) }
            input id=(name) name=(name) type="text" value=(value.unwrap_or_default()) size="14";
        }
    }
}

fn choice(name: &str, label: &str, options: &[&str], chosen: Option<String>) -> Markup {
    html! {
        div {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                option value="" { "any" }
                @for option in options {
                    @if chosen.as_deref() == Some(*option) { option selected { (option) } }
                    @else { option { (option) } }
                }
            }
        }
    }
}

fn next_page(query: &AuditQuery, before: u64) -> String {
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("tenant_id", &query.tenant_id),
        ("actor", &query.actor),
        ("action", &query.action),
        ("outcome", &query.outcome),
        ("channel", &query.channel),
    ] {
        if let Some(value) = given(value) {
            pairs.append_pair(name, &value);
        }
    }
    pairs.append_pair("before", &before.to_string());
    format!("/console/audit?{}", pairs.finish())
}

fn records_table(records: &[AuditRecord]) -> Markup {
    html! {
        table {
            thead { tr { th { "#" } th { "When" } th { "Actor" } th { "Action" } th { "Target" } th { "Outcome" } th { "Channel" } th { "Reason" } } }
            tbody {
                @for record in records {
                    tr {
                        td.mono { (record.seq) }
                        td { (layout::timestamp(&record.occurred_at)) }
                        td { (record.actor) br; span.muted { (record.role) } }
                        td { code { (record.action) } }
                        td { code { (record.target) } }
                        td { (outcome_badge(record.outcome.as_str())) }
                        td { (record.channel.map_or("", AuditChannel::as_str)) }
                        td { (record.reason.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

/// `GET /console/audit`
pub async fn list(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(query): RawQuery,
) -> ConsoleResult {
    let query: AuditQuery = parse_query(query.as_deref())?;
    let filter = filter_of(&query)?;
    let records = state.app.audit().records(&user.actor, &filter).await?;
    state
        .app
        .console()
        .read(
            &user.actor,
            "audit.read",
            "audit",
            filter.tenant_id.as_deref(),
        )
        .await?;
    let full = i64::try_from(records.len()).unwrap_or(0) == AUDIT_RECORDS_PER_PAGE;
    let body = html! {
        h1 { "Audit log" }
        form.filters method="get" action="/console/audit" {
            (text_filter("tenant_id", "Tenant", given(&query.tenant_id)))
            (text_filter("actor", "Actor", given(&query.actor)))
            (text_filter("action", "Action", given(&query.action)))
            (choice("outcome", "Outcome", &["success", "denied", "failed"], given(&query.outcome)))
            (choice("channel", "Channel", &["api", "cli", "console"], given(&query.channel)))
            button type="submit" { "Filter" }
            a.button.secondary href="/console/audit" { "Clear" }
        }
        (records_table(&records))
        nav.pager aria-label="Pages" {
            @if query.before.is_some() { a href="/console/audit" { "Newest" } }
            @if let (true, Some(last)) = (full, records.last()) {
                a href=(next_page(&query, last.seq)) rel="next" { "Older →" }
            }
        }
    };
    Ok(layout::html(layout::page("Audit", &user, Nav::Audit, body)).into_response())
}
