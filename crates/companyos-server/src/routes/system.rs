//! Health, readiness, metrics, the OpenAPI document and the fallback.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;
use crate::error::AppError;
use crate::extract::{Authed, PathId};
use crate::routes::ok;

pub async fn healthz() -> Response {
    ok(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.app.ready().await {
        ok(json!({"status": "ready", "store": state.app.db().backend().as_str()}))
    } else {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            "the store does not answer or cannot take writes (a full disk, a lost connection)",
        )
        .into_response()
    }
}

/// `GET /metrics`: bearer token of a role allowed `metrics.read` (a `viewer` operator for a
/// scraper); it names every tenant, so it is not for anonymous callers.
pub async fn metrics(
    State(state): State<AppState>,
    Authed(actor): Authed,
) -> Result<Response, AppError> {
    let mut response = state.app.metrics_text(&actor).await?.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

pub async fn openapi() -> Response {
    ok(crate::openapi::document())
}

pub async fn not_found() -> AppError {
    AppError::not_found("no such route; see GET /openapi.json")
}

/// Documents a problem type; an unknown slug is 404 like any unknown resource.
///
/// The slug stays text (`PathId<String>`): it is looked up in `PROBLEM_TYPES`, not parsed into an
/// id, and an unknown one is named in the 404 as sent.
pub async fn problem_type(PathId(slug): PathId<String>) -> Response {
    match crate::error::problem_description(&slug) {
        Some(text) => ok(json!({"type": format!("/problems/{slug}"), "description": text})),
        None => AppError::not_found(format!("no problem type {slug:?}")).into_response(),
    }
}
