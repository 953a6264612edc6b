//! The approval queue: who asked, why, the warnings and the expiry; approve or reject with a
//! comment (the same `Approvals::approve` / `Approvals::reject` as the API, under the two-person rule).

use axum::extract::{RawQuery, State};
use axum::response::IntoResponse;
use companyos_core::approvals::ApprovalView;
use companyos_core::console::ApprovalDecisions;
use companyos_domain::ApprovalId;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav, time};
use super::session::{ConsoleUser, Posted, csrf_input};
use super::{ConsoleError, ConsoleResult, parse_query, see_other};
use crate::AppState;
use crate::error::AppError;
use crate::extract::PathLookup;

/// Statuses the queue can show.
const STATUSES: [&str; 7] = [
    "pending", "executed", "rejected", "expired", "lapsed", "failed", "approved",
];

#[derive(Debug, Default, Deserialize)]
pub struct ApprovalsQuery {
    status: Option<String>,
    done: Option<String>,
}

fn decision_form(user: &ConsoleUser, approval: &ApprovalView, may: ApprovalDecisions) -> Markup {
    html! {
        form method="post" action={ "/console/approvals/" (approval.id) "/decision" } {
            (csrf_input(user))
            label for={ "comment-" (approval.id) } { "Comment" }
            textarea id={ "comment-" (approval.id) } name="comment" maxlength="1000" {}
            p {
                @if may.approve {
                    button type="submit" name="decision" value="approve" { "Approve and run " (approval.action) }
                    " "
                }
                @if may.reject {
                    button.secondary type="submit" name="decision" value="reject" { "Reject" }
                }
            }
        }
    }
}

fn approval_card(user: &ConsoleUser, approval: &ApprovalView, may: ApprovalDecisions) -> Markup {
    html! {
        div.card {
            h2 {
                (approval.action) " of "
                a href={ "/console/tenants/" (approval.tenant_id) } { code { (approval.tenant_id) } }
                " " span.badge.info { (approval.status) }
            }
            p {
                "Requested by " strong { (approval.requested_by_name) } " at " (time(approval.requested_at))
                "; expires " (time(approval.expires_at)) "."
            }
            @if let Some(reason) = &approval.reason { p { "Why: " (reason) } }
            @for warning in &approval.warnings { p.notice.warn { (warning) } }
            @if let Some(by) = &approval.decided_by_name {
                p.muted {
                    "Decided by " (by)
                    @if let Some(at) = approval.decided_at { " at " (time(at)) }
                    @if let Some(comment) = &approval.comment { ": " (comment) }
                }
            }
            @if may.approve || may.reject { (decision_form(user, approval, may)) }
            @else if approval.status == "pending" {
                p.muted { "You may not decide this request (your role, or you asked for it yourself)." }
            }
        }
    }
}

/// `GET /console/approvals[?status=]` (pending by default).
pub async fn list(
    State(state): State<AppState>,
    user: ConsoleUser,
    RawQuery(query): RawQuery,
) -> ConsoleResult {
    let query: ApprovalsQuery = parse_query(query.as_deref())?;
    let status = query
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("pending");
    let approvals = state
        .app
        .approvals()
        .list(&user.actor, Some(status))
        .await?;
    let decisions = state
        .app
        .console()
        .approval_decisions(&user.actor, &approvals)
        .await?;
    state
        .app
        .console()
        .read(&user.actor, "approval.read", "approvals", None)
        .await?;
    let body = html! {
        h1 { "Approvals" }
        @match query.done.as_deref() {
            Some("approve") => p.notice.ok role="status" { "Approved: the action ran." },
            Some("reject") => p.notice.ok role="status" { "Rejected." },
            _ => {},
        }
        nav.filters aria-label="Approval status" {
            @for option in STATUSES {
                @if option == status { strong { (option) } } @else { a href={ "/console/approvals?status=" (option) } { (option) } }
                " "
            }
        }
        @if approvals.is_empty() { p.muted { "No " (status) " approvals." } }
        @for (approval, may) in approvals.iter().zip(decisions) { (approval_card(&user, approval, may)) }
    };
    Ok(layout::html(layout::page("Approvals", &user, Nav::Approvals, body)).into_response())
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    comment: String,
}

/// `POST /console/approvals/{id}/decision`
pub async fn decide(
    State(state): State<AppState>,
    id: PathLookup<ApprovalId>,
    posted: Posted<DecisionForm>,
) -> ConsoleResult {
    let comment = Some(posted.form.comment.trim()).filter(|c| !c.is_empty());
    let actor = &posted.user.actor;
    match posted.form.decision.as_str() {
        "approve" => {
            state
                .app
                .approvals()
                .approve(actor, id.as_str(), comment)
                .await?;
        }
        "reject" => {
            state
                .app
                .approvals()
                .reject(actor, id.as_str(), comment)
                .await?;
        }
        _ => {
            return Err(ConsoleError::Page(AppError::invalid(
                "decision",
                "must be approve or reject",
            )));
        }
    }
    Ok(see_other(&format!(
        "/console/approvals?status=pending&done={}",
        posted.form.decision
    )))
}
