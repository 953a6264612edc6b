//! Metering declarations and the coverage gate (MET-4).

use axum::extract::{Path, State};
use axum::response::Response;
use companyos_domain::metering::RawDeclaration;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Authed, JsonBody};
use crate::routes::ok;

pub async fn declare(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Path(service): Path<String>,
    JsonBody(body): JsonBody<RawDeclaration>,
) -> ApiResult<Response> {
    let declaration = state.app.declare_metering(&actor, &service, &body).await?;
    Ok(ok(json!(declaration)))
}

pub async fn list(State(state): State<AppState>, Authed(actor): Authed) -> ApiResult<Response> {
    Ok(ok(state.app.list_services(&actor).await?))
}

pub async fn coverage_report(
    State(state): State<AppState>,
    Authed(actor): Authed,
) -> ApiResult<Response> {
    Ok(ok(state.app.coverage_report(&actor).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeBody {
    pub mode: Option<String>,
}

pub async fn set_deployment_mode(
    State(state): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<ModeBody>,
) -> ApiResult<Response> {
    Ok(ok(state
        .app
        .set_coverage_mode(&actor, None, body.mode.as_deref())
        .await?))
}

pub async fn set_service_mode(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Path(service): Path<String>,
    JsonBody(body): JsonBody<ModeBody>,
) -> ApiResult<Response> {
    Ok(ok(state
        .app
        .set_coverage_mode(&actor, Some(&service), body.mode.as_deref())
        .await?))
}
