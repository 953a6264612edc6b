//! The evidence depot (CONTRACT §8): artifacts, their minisign signatures and the public key.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use companyos_domain::EvidenceId;
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Authed, PathLookup, QueryParams};
use crate::routes::ok_reply;
use crate::wire::evidence::EvidenceBody;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub tenant_id: Option<String>,
    pub kind: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Authed(actor): Authed,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<Response> {
    let records = state
        .app
        .evidence()
        .list(&actor, query.tenant_id.as_deref(), query.kind.as_deref())
        .await?;
    Ok(ok_reply(
        records.iter().map(EvidenceBody::of).collect::<Vec<_>>(),
    ))
}

fn with_headers(
    body: Vec<u8>,
    content_type: &str,
    record: &companyos_core::evidence::EvidenceRecord,
) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    for (name, value) in [
        ("x-evidence-id", record.id.as_str()),
        ("x-evidence-kind", record.kind.as_str()),
        ("x-evidence-sha256", record.sha256.as_str()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}

/// The artifact's bytes, exactly as signed.
pub async fn get(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<EvidenceId>,
) -> ApiResult<Response> {
    let (record, bytes) = state.app.evidence().get(&actor, id.as_str()).await?;
    let content_type = record.content_type.clone();
    let mut response = with_headers(bytes, &content_type, &record);
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", record.file_name))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The artifact's `.minisig`.
pub async fn signature(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<EvidenceId>,
) -> ApiResult<Response> {
    let (record, _) = state.app.evidence().get(&actor, id.as_str()).await?;
    let signature = record.signature.clone().into_bytes();
    Ok(with_headers(
        signature,
        "text/plain; charset=utf-8",
        &record,
    ))
}

/// The minisign public key (public), as `minisign -P` takes it.
pub async fn public_key(State(state): State<AppState>) -> Response {
    let mut response = format!("{}\n", state.app.evidence().public_key()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
