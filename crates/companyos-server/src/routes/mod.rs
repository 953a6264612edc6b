//! Route handlers, grouped by resource. Each one authenticates, decodes, calls the service
//! layer and encodes: nothing else.

pub mod approvals;
pub mod audit;
pub mod billing;
pub mod evidence;
pub mod ledger;
pub mod metering;
pub mod openmeter;
pub mod operators;
pub mod statement_exports;
pub mod statements;
pub mod system;
pub mod tenants;
pub mod usage;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// A JSON response with a status.
pub fn json(status: StatusCode, value: Value) -> Response {
    (status, Json(value)).into_response()
}

/// 200 with a JSON body.
pub fn ok(value: Value) -> Response {
    json(StatusCode::OK, value)
}

/// A response with a status and a wire type (`crate::wire`), serialized straight to bytes.
pub fn reply<T: Serialize>(status: StatusCode, body: T) -> Response {
    (status, Json(body)).into_response()
}

/// 200 with a wire type.
pub fn ok_reply<T: Serialize>(value: T) -> Response {
    reply(StatusCode::OK, value)
}
