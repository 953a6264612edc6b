//! Metering declarations and the coverage gate (MET-4).

use axum::extract::State;
use axum::response::Response;
use companyos_domain::ServiceName;
use companyos_domain::metering::RawDeclaration;
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Authed, JsonBody, PathLookup};
use crate::routes::ok_reply;
use crate::wire::metering::{CoverageBody, ModeChangeBody, ServicesBody};

pub async fn declare(
    State(state): State<AppState>,
    Authed(actor): Authed,
    service: PathLookup<ServiceName>,
    JsonBody(body): JsonBody<RawDeclaration>,
) -> ApiResult<Response> {
    let declaration = state
        .app
        .metering()
        .declare(&actor, service.as_str(), &body)
        .await?;
    // A declaration's own serialization is its wire form (and its stored one).
    Ok(ok_reply(&declaration))
}

pub async fn list(State(state): State<AppState>, Authed(actor): Authed) -> ApiResult<Response> {
    let declared = state.app.metering().list_services(&actor).await?;
    Ok(ok_reply(ServicesBody::of(&declared)))
}

pub async fn coverage_report(
    State(state): State<AppState>,
    Authed(actor): Authed,
) -> ApiResult<Response> {
    let report = state.app.metering().coverage_report(&actor).await?;
    Ok(ok_reply(CoverageBody::of(&report)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeBody {
    pub mode: Option<String>,
}

async fn set_mode(
    state: &AppState,
    actor: &companyos_core::Actor,
    service: Option<&str>,
    mode: Option<&str>,
) -> ApiResult<Response> {
    state
        .app
        .metering()
        .set_coverage_mode(actor, service, mode)
        .await?;
    Ok(ok_reply(ModeChangeBody { service, mode }))
}

pub async fn set_deployment_mode(
    State(state): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<ModeBody>,
) -> ApiResult<Response> {
    set_mode(&state, &actor, None, body.mode.as_deref()).await
}

pub async fn set_service_mode(
    State(state): State<AppState>,
    Authed(actor): Authed,
    service: PathLookup<ServiceName>,
    JsonBody(body): JsonBody<ModeBody>,
) -> ApiResult<Response> {
    set_mode(&state, &actor, Some(service.as_str()), body.mode.as_deref()).await
}
