//! The tenant page's forms and what they post to: the lifecycle actions (each with a reason;
//! delete and purge with the typed tenant id), the integrity report, and evidence downloads.
//! A form is shown only when policy would allow it; the service decides again on the post.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use companyos_core::approvals::{AllowedAction, TenantActions};
use companyos_core::lifecycle::{LifecycleOutcome, LifecycleRequest, TenantRow};
use companyos_domain::{EvidenceId, LifecycleAction, TenantId};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::time;
use super::session::{ConsoleUser, Posted, csrf_input};
use super::{ConsoleError, ConsoleResult, see_other};
use crate::AppState;
use crate::error::AppError;
use crate::extract::{PathLookup, PathLookups};

/// Days covered by an integrity report requested from the console.
const REPORT_DAYS: i64 = 30;

fn explanation(action: LifecycleAction, tenant: &TenantRow) -> String {
    match action {
        LifecycleAction::Suspend => {
            "The tenant's API keys are refused (403) at once, on every node, until it is reactivated."
                .to_owned()
        }
        LifecycleAction::Reactivate => "The tenant's API keys work again at once.".to_owned(),
        LifecycleAction::Delete => format!(
            "The tenant stops working and enters its tombstone period of {} days, during which \
             it can be restored; then it is purged.",
            tenant.retention.tombstone_days
        ),
        LifecycleAction::Restore => {
            "The tenant returns to the state it had before it was deleted.".to_owned()
        }
        LifecycleAction::Purge => "This cannot be undone: the tenant's data is destroyed and a \
             signed deletion certificate is written. The id is never reused."
            .to_owned(),
    }
}

fn action_form(user: &ConsoleUser, tenant: &TenantRow, allowed: &AllowedAction) -> Markup {
    let action = allowed.action;
    let name = action.as_str();
    let danger = action.needs_confirmation();
    html! {
        div.action {
            form method="post" action={ "/console/tenants/" (tenant.id) "/actions/" (name) } {
                (csrf_input(user))
                h3 { (name[..1].to_uppercase()) (name[1..]) }
                p { (explanation(action, tenant)) }
                @if allowed.needs_approval {
                    p.notice.warn { "This creates an approval request: a second operator must approve it before it runs." }
                }
                label for={ (name) "-reason" } { "Reason (required, written to the audit log)" }
                textarea id={ (name) "-reason" } name="reason" required maxlength="1000" {}
                @if danger {
                    label for={ (name) "-confirm" } { "Type the tenant id " code { (tenant.id) } " to confirm" }
                    input id={ (name) "-confirm" } name="confirm" required autocomplete="off"
                        pattern=(tenant.id) size="40";
                }
                p {
                    @if danger { button.danger type="submit" { (name[..1].to_uppercase()) (name[1..]) " " (tenant.id) } }
                    @else { button type="submit" { (name[..1].to_uppercase()) (name[1..]) } }
                }
            }
        }
    }
}

/// The lifecycle actions this operator may take now (none: a note saying so).
pub fn lifecycle(user: &ConsoleUser, tenant: &TenantRow, actions: &TenantActions) -> Markup {
    let (danger, everyday): (Vec<&AllowedAction>, Vec<&AllowedAction>) = actions
        .allowed
        .iter()
        .partition(|a| a.action.needs_confirmation());
    html! {
        @if actions.allowed.is_empty() {
            div.card { h2 { "Actions" } p.muted { "Your role has no lifecycle action on this tenant in its current state." } }
        }
        @if !everyday.is_empty() {
            div.card { h2 { "Actions" } @for allowed in &everyday { (action_form(user, tenant, allowed)) } }
        }
        @if !danger.is_empty() {
            div.card.danger-zone { h2 { "Danger zone" } @for allowed in &danger { (action_form(user, tenant, allowed)) } }
        }
    }
}

/// The tenant's pending approval, if any.
pub fn pending(actions: &TenantActions) -> Markup {
    html! {
        @if let Some(approval) = &actions.pending_approval {
            div.card {
                h2 { "Pending approval" }
                p {
                    strong { (approval.action) } " requested by " (approval.requested_by_name)
                    " at " (time(approval.requested_at)) "; expires " (time(approval.expires_at)) "."
                }
                @if let Some(reason) = &approval.reason { p { "Reason: " (reason) } }
                @for warning in &approval.warnings { p.notice.warn { (warning) } }
                p { a href="/console/approvals" { "Open the approval queue" } }
            }
        }
    }
}

/// The integrity report form.
pub fn reports(user: &ConsoleUser, tenant: &TenantRow) -> Markup {
    html! {
        div.card {
            h2 { "Integrity report" }
            p { "Recomputes the last " (REPORT_DAYS) " days of usage from the ledger, checks the tree and signs the report (minisign)." }
            form method="post" action={ "/console/tenants/" (tenant.id) "/integrity-report" } {
                (csrf_input(user))
                button.secondary type="submit" { "Generate and download" }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
}

fn non_empty(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

/// `POST /console/tenants/{id}/actions/{action}`: the same `Lifecycle::transition` as the API.
pub async fn act(
    State(state): State<AppState>,
    PathLookups(id, action): PathLookups<TenantId, LifecycleAction>,
    posted: Posted<ActionForm>,
) -> ConsoleResult {
    let Some(&action) = action.parsed() else {
        return Err(ConsoleError::Page(AppError::not_found(format!(
            "no lifecycle action {:?}",
            action.as_str()
        ))));
    };
    let outcome = state
        .app
        .lifecycle()
        .transition(
            &posted.user.actor,
            id.as_str(),
            action,
            LifecycleRequest {
                reason: non_empty(&posted.form.reason),
                confirm: non_empty(&posted.form.confirm),
            },
        )
        .await?;
    let done = match outcome {
        LifecycleOutcome::Done { .. } => action.as_str(),
        LifecycleOutcome::PendingApproval(_) => "approval",
    };
    let target = form_urlencoded::byte_serialize(id.as_str().as_bytes()).collect::<String>();
    Ok(see_other(&format!("/console/tenants/{target}?done={done}")))
}

#[derive(Debug, Deserialize)]
pub struct EmptyForm {}

/// `POST /console/tenants/{id}/integrity-report`: builds, signs and stores the report (the same
/// `Metering::integrity_report` as the API), then downloads it.
pub async fn integrity_report(
    State(state): State<AppState>,
    id: PathLookup<TenantId>,
    posted: Posted<EmptyForm>,
) -> ConsoleResult {
    let to = state.app.now().date();
    let from = to - time::Duration::days(REPORT_DAYS - 1);
    let (_, record) = state
        .app
        .metering()
        .integrity_report(&posted.user.actor, id.as_str(), from, to)
        .await?;
    Ok(see_other(&format!("/console/evidence/{}", record.id)))
}

/// `GET /console/evidence/{id}`: an artifact (dossier, integrity report, certificate) as a
/// download, read with `Evidence::get` like the API.
pub async fn evidence(
    State(state): State<AppState>,
    user: ConsoleUser,
    id: PathLookup<EvidenceId>,
) -> ConsoleResult {
    let (record, bytes) = state.app.evidence().get(&user.actor, id.as_str()).await?;
    state
        .app
        .console()
        .read(
            &user.actor,
            "evidence.read",
            &format!("evidence:{}", record.id),
            record.tenant_id.as_deref(),
        )
        .await?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&record.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    let file_name: String = record
        .file_name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
