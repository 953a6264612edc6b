//! Health, readiness, metrics, the OpenAPI document and the fallback.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::AppState;
use crate::error::AppError;
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
            "the database does not answer",
        )
        .into_response()
    }
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.app.metrics().render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

pub async fn openapi() -> Response {
    ok(crate::openapi::document())
}

pub async fn not_found() -> AppError {
    AppError::not_found("no such route; see GET /openapi.json")
}

pub async fn problem_type(axum::extract::Path(slug): axum::extract::Path<String>) -> Response {
    let text = match slug.as_str() {
        "validation-error" => {
            "The request had invalid fields; `errors` names each field and what is wrong with it."
        }
        "malformed-request" => "The body is not valid JSON (or is empty).",
        "unauthenticated" => {
            "No credential, or an unknown or revoked one. Send Authorization: Bearer <token>."
        }
        "forbidden" => {
            "The credential is known but policy does not allow this action. The attempt is audited."
        }
        "conflict" => "The request conflicts with the current state; `current_status` gives it.",
        "payload-too-large" => "The body or the batch is over its limit.",
        "not-found" => "No such resource.",
        "unavailable" => "Temporarily unable to take the request; retry after a moment.",
        "store-unavailable" => {
            "The store cannot take the request now (a full disk, a lost database connection); \
             nothing was changed: retry later. /readyz says not ready meanwhile."
        }
        _ => "CompanyOS problem type.",
    };
    ok(json!({"type": format!("/problems/{slug}"), "description": text}))
}
