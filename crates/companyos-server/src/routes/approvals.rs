//! Approvals (CONTRACT §4, ADM-2).

use axum::extract::State;
use axum::response::Response;
use companyos_core::lifecycle::{LifecycleOutcome, TenantView};
use companyos_domain::ApprovalId;
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Authed, JsonBody, PathLookup, QueryParams};
use crate::routes::ok_reply;
use crate::wire::approvals::ApprovalBody;
use crate::wire::tenants::{DecidedBody, TenantRecord};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Authed(actor): Authed,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Response> {
    let approvals = state
        .app
        .approvals()
        .list(&actor, query.status.as_deref())
        .await?;
    Ok(ok_reply(
        approvals.iter().map(ApprovalBody::of).collect::<Vec<_>>(),
    ))
}

pub async fn show(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<ApprovalId>,
) -> ApiResult<Response> {
    let approval = state.app.approvals().get(&actor, id.as_str()).await?;
    Ok(ok_reply(ApprovalBody::of(&approval)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub comment: Option<String>,
}

pub async fn approve(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<ApprovalId>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> ApiResult<Response> {
    let (approval, outcome) = state
        .app
        .approvals()
        .approve(&actor, id.as_str(), body.comment.as_deref())
        .await?;
    let mut body = DecidedBody::of(&approval);
    if let LifecycleOutcome::Done {
        tenant,
        warnings,
        evidence,
        ..
    } = &outcome
    {
        body.tenant = Some(TenantRecord::of(tenant, TenantView::of(&actor.principal)));
        body.warnings = Some(warnings);
        body.evidence_id = evidence.as_ref().map(|e| e.id.as_str());
    }
    Ok(ok_reply(body))
}

pub async fn reject(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<ApprovalId>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> ApiResult<Response> {
    let approval = state
        .app
        .approvals()
        .reject(&actor, id.as_str(), body.comment.as_deref())
        .await?;
    Ok(ok_reply(DecidedBody::of(&approval)))
}
