//! The verifiable ledger (CONTRACT §7): checkpoints, proofs and the verifier key.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use companyos_domain::TenantId;
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Authed, PathLookup, QueryParams};
use crate::routes::ok_reply;
use crate::wire::ledger::{ConsistencyProofBody, InclusionProofBody};

fn text(body: String) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub async fn checkpoint(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
) -> ApiResult<Response> {
    Ok(text(
        state
            .app
            .ledger()
            .tenant_checkpoint(&actor, id.as_str())
            .await?,
    ))
}

/// The note verifier key (public: it is what lets anyone check our checkpoints).
pub async fn verifier_key(State(state): State<AppState>) -> Response {
    text(format!("{}\n", state.app.ledger().verifier_key()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofQuery {
    pub event_id: String,
    pub tree_size: Option<u64>,
}

pub async fn proof(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
    QueryParams(query): QueryParams<ProofQuery>,
) -> ApiResult<Response> {
    let proof = state
        .app
        .ledger()
        .inclusion_proof(&actor, id.as_str(), &query.event_id, query.tree_size)
        .await?;
    Ok(ok_reply(InclusionProofBody::of(&proof)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    pub from: u64,
    pub to: u64,
}

pub async fn consistency(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
    QueryParams(query): QueryParams<ConsistencyQuery>,
) -> ApiResult<Response> {
    let proof = state
        .app
        .ledger()
        .consistency_proof(&actor, id.as_str(), query.from, query.to)
        .await?;
    Ok(ok_reply(ConsistencyProofBody::of(&proof)))
}

pub async fn audit_checkpoint(
    State(state): State<AppState>,
    Authed(actor): Authed,
) -> ApiResult<Response> {
    Ok(text(state.app.ledger().audit_checkpoint(&actor).await?))
}
