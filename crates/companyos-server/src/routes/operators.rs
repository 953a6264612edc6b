//! Operators and policies (CONTRACT §3).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use companyos_domain::OperatorId;
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Authed, JsonBody, PathLookup};
use crate::routes::{ok_reply, reply};
use crate::wire::operators::{OperatorBody, PoliciesBody, RevokedBody};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOperator {
    pub name: String,
    pub role: String,
}

pub async fn create(
    State(state): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<CreateOperator>,
) -> ApiResult<Response> {
    let created = state
        .app
        .operators()
        .create(&actor, &body.name, &body.role)
        .await?;
    let body = OperatorBody {
        token: Some(&created.token),
        ..OperatorBody::of(&created.operator)
    };
    Ok(reply(StatusCode::CREATED, body))
}

pub async fn list(State(state): State<AppState>, Authed(actor): Authed) -> ApiResult<Response> {
    let operators = state.app.operators().list(&actor).await?;
    Ok(ok_reply(
        operators.iter().map(OperatorBody::of).collect::<Vec<_>>(),
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<OperatorId>,
) -> ApiResult<Response> {
    state.app.operators().revoke(&actor, id.as_str()).await?;
    Ok(ok_reply(RevokedBody {
        id: id.as_str(),
        revoked: true,
    }))
}

pub async fn policies(State(state): State<AppState>, Authed(actor): Authed) -> ApiResult<Response> {
    let (text, sha256) = state.app.policies(&actor).await?;
    Ok(ok_reply(PoliciesBody {
        sha256: &sha256,
        policies: &text,
        schema: companyos_core::authz::SCHEMA_TEXT,
        approval_required: state
            .app
            .settings()
            .approval_required
            .iter()
            .map(|a| a.cedar_action().as_str())
            .collect(),
    }))
}
