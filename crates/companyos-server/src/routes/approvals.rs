//! Approvals (CONTRACT §4, ADM-2).

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Authed, JsonBody, QueryParams};
use crate::routes::ok;

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
        .list_approvals(&actor, query.status.as_deref())
        .await?;
    Ok(ok(json!(
        approvals.iter().map(|a| a.to_json()).collect::<Vec<_>>()
    )))
}

pub async fn show(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(state.app.get_approval(&actor, &id).await?.to_json()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub comment: Option<String>,
}

pub async fn approve(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> ApiResult<Response> {
    let (approval, outcome) = state
        .app
        .approve(&actor, &id, body.comment.as_deref())
        .await?;
    let mut value = json!({"approval": approval.to_json()});
    if let companyos_core::tenants::LifecycleOutcome::Done {
        tenant,
        warnings,
        evidence,
        ..
    } = outcome
    {
        value["tenant"] = tenant.to_json(companyos_core::tenants::TenantView::of(&actor.principal));
        value["warnings"] = json!(warnings);
        if let Some(evidence) = evidence {
            value["evidence_id"] = json!(evidence.id);
        }
    }
    Ok(ok(value))
}

pub async fn reject(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DecisionBody>,
) -> ApiResult<Response> {
    let approval = state
        .app
        .reject(&actor, &id, body.comment.as_deref())
        .await?;
    Ok(ok(json!({"approval": approval.to_json()})))
}
