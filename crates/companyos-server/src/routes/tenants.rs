//! Tenants and their lifecycle (CONTRACT §4), regions, workloads, retention and forward auth.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use companyos_core::lifecycle::{LifecycleOutcome, LifecycleRequest, NewTenant, TenantView};
use companyos_domain::{LifecycleAction, TenantId, WorkloadName};
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Authed, JsonBody, PathLookup, PathLookups, QueryParams};
use crate::routes::{ok_reply, reply};
use crate::wire::tenants::{
    CreatedTenantBody, LifecycleDoneBody, PendingApprovalBody, ProvisioningRunBody, TenantRecord,
    TenantWithActionsBody,
};

pub async fn create(
    State(state): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<NewTenant>,
) -> ApiResult<Response> {
    let created = state.app.lifecycle().create(&actor, body).await?;
    let body = CreatedTenantBody {
        audit_webhook_secret: created.tenant.audit_webhook_url.is_some().then(|| {
            state
                .app
                .jobs()
                .audit_hook_secret(created.tenant.id.as_str())
        }),
        ..CreatedTenantBody::of(&created, TenantView::of(&actor.principal))
    };
    let status = if created.tenant.status == companyos_domain::TenantStatus::Active {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    Ok(reply(status, body))
}

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
    let tenants = state
        .app
        .lifecycle()
        .list(&actor, query.status.as_deref())
        .await?;
    let actions = state
        .app
        .approvals()
        .tenant_actions(&actor, &tenants)
        .await?;
    let view = TenantView::of(&actor.principal);
    Ok(ok_reply(
        tenants
            .iter()
            .zip(&actions)
            .map(|(tenant, actions)| TenantWithActionsBody::of(tenant, actions, view))
            .collect::<Vec<_>>(),
    ))
}

pub async fn show(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
) -> ApiResult<Response> {
    let tenant = state.app.lifecycle().get(&actor, id.as_str()).await?;
    let actions = state
        .app
        .approvals()
        .tenant_actions(&actor, std::slice::from_ref(&tenant))
        .await?;
    let view = TenantView::of(&actor.principal);
    match actions.first() {
        Some(actions) => Ok(ok_reply(TenantWithActionsBody::of(&tenant, actions, view))),
        None => Ok(ok_reply(TenantRecord::of(&tenant, view))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleBody {
    pub reason: Option<String>,
    pub confirm: Option<String>,
}

async fn lifecycle(
    state: AppState,
    actor: companyos_core::Actor,
    id: PathLookup<TenantId>,
    action: LifecycleAction,
    body: LifecycleBody,
) -> ApiResult<Response> {
    let outcome = state
        .app
        .lifecycle()
        .transition(
            &actor,
            id.as_str(),
            action,
            LifecycleRequest {
                reason: body.reason,
                confirm: body.confirm,
            },
        )
        .await?;
    Ok(outcome_response(outcome, TenantView::of(&actor.principal)))
}

/// 200 with the tenant (and warnings), or 202 with the pending approval.
pub fn outcome_response(outcome: LifecycleOutcome, view: TenantView) -> Response {
    match outcome {
        LifecycleOutcome::Done {
            tenant,
            changed,
            warnings,
            evidence,
        } => ok_reply(LifecycleDoneBody {
            tenant: TenantRecord::of(&tenant, view),
            changed,
            warnings: &warnings,
            evidence_id: evidence.as_ref().map(|e| e.id.as_str()),
        }),
        LifecycleOutcome::PendingApproval(approval) => {
            reply(StatusCode::ACCEPTED, PendingApprovalBody::of(&approval))
        }
    }
}

macro_rules! lifecycle_handler {
    ($name:ident, $action:expr) => {
        pub async fn $name(
            State(state): State<AppState>,
            Authed(actor): Authed,
            id: PathLookup<TenantId>,
            JsonBody(body): JsonBody<LifecycleBody>,
        ) -> ApiResult<Response> {
            lifecycle(state, actor, id, $action, body).await
        }
    };
}

lifecycle_handler!(suspend, LifecycleAction::Suspend);
lifecycle_handler!(reactivate, LifecycleAction::Reactivate);
lifecycle_handler!(delete, LifecycleAction::Delete);
lifecycle_handler!(restore, LifecycleAction::Restore);
lifecycle_handler!(purge, LifecycleAction::Purge);

pub async fn retry(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
) -> ApiResult<Response> {
    let created = state
        .app
        .lifecycle()
        .retry_provisioning(&actor, id.as_str())
        .await?;
    // A retry shows the new key and run, never the boundary's login again.
    Ok(ok_reply(CreatedTenantBody {
        boundary_credentials: None,
        ..CreatedTenantBody::of(&created, TenantView::of(&actor.principal))
    }))
}

pub async fn provisioning_runs(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
) -> ApiResult<Response> {
    let runs = state
        .app
        .lifecycle()
        .provisioning_runs(&actor, id.as_str())
        .await?;
    Ok(ok_reply(
        runs.iter().map(ProvisioningRunBody::of).collect::<Vec<_>>(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionsBody {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

pub async fn regions(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
    JsonBody(body): JsonBody<RegionsBody>,
) -> ApiResult<Response> {
    let tenant = state
        .app
        .lifecycle()
        .update_regions(&actor, id.as_str(), &body.add, &body.remove)
        .await?;
    Ok(ok_reply(TenantRecord::of(
        &tenant,
        TenantView::of(&actor.principal),
    )))
}

pub async fn workloads(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
) -> ApiResult<Response> {
    Ok(ok_reply(
        state
            .app
            .lifecycle()
            .list_workloads(&actor, id.as_str())
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadBody {
    pub replicas: i64,
}

pub async fn set_workload(
    State(state): State<AppState>,
    Authed(actor): Authed,
    PathLookups(id, name): PathLookups<TenantId, WorkloadName>,
    JsonBody(body): JsonBody<WorkloadBody>,
) -> ApiResult<Response> {
    Ok(ok_reply(
        state
            .app
            .lifecycle()
            .set_workload(&actor, id.as_str(), name.as_str(), body.replicas)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    pub tombstone_days: Option<u32>,
    pub legal_hold: Option<bool>,
    pub hard_delete_allowed: Option<bool>,
    pub reason: Option<String>,
}

pub async fn retention(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
    JsonBody(body): JsonBody<RetentionBody>,
) -> ApiResult<Response> {
    let tenant = state
        .app
        .lifecycle()
        .update_retention(
            &actor,
            id.as_str(),
            body.tombstone_days,
            body.legal_hold,
            body.hard_delete_allowed,
            body.reason.as_deref(),
        )
        .await?;
    Ok(ok_reply(TenantRecord::of(
        &tenant,
        TenantView::of(&actor.principal),
    )))
}

// Forward auth (`GET /v1/authz/check`) is in `routes::billing`: it also checks features and
// quotas (CONTRACT §9).

/// The webhook driver's confirmation that a tenant's boundary exists (HMAC-signed, no bearer).
pub async fn provisioning_callback(
    State(state): State<AppState>,
    id: PathLookup<TenantId>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    let body = crate::extract::read_body(request, 1024 * 1024).await?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let outcome = state
        .app
        .lifecycle()
        .provisioning_callback(
            id.as_str(),
            companyos_core::lifecycle::ProvisioningCallback {
                attempt: header("x-companyos-attempt").as_deref(),
                timestamp: header("x-companyos-timestamp").as_deref(),
                signature: header("x-companyos-signature").as_deref(),
                body: &body,
            },
        )
        .await?;
    Ok(ok_reply(TenantRecord::of(&outcome, TenantView::Tenant)))
}
