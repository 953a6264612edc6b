//! Tenants and their lifecycle (CONTRACT §4), regions, workloads, retention and forward auth.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use companyos_core::tenants::{LifecycleOutcome, LifecycleRequest, NewTenant, TenantView};
use companyos_domain::LifecycleAction;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{Authed, JsonBody, QueryParams};
use crate::routes::{json, ok};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub id: String,
    pub name: String,
    pub plan: Option<String>,
    pub home_region: Option<String>,
    pub allowed_regions: Option<Vec<String>>,
    pub deploy_regions: Option<Vec<String>>,
    pub audit_webhook_url: Option<String>,
    pub tombstone_days: Option<u32>,
    pub hard_delete_allowed: Option<bool>,
    pub legal_hold: Option<bool>,
}

pub async fn create(
    State(state): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<CreateTenant>,
) -> ApiResult<Response> {
    let created = state
        .app
        .create_tenant(
            &actor,
            NewTenant {
                id: body.id,
                name: body.name,
                plan: body.plan,
                home_region: body.home_region,
                allowed_regions: body.allowed_regions,
                deploy_regions: body.deploy_regions,
                audit_webhook_url: body.audit_webhook_url,
                tombstone_days: body.tombstone_days,
                hard_delete_allowed: body.hard_delete_allowed,
                legal_hold: body.legal_hold,
            },
        )
        .await?;
    let mut value = created.tenant.to_json(TenantView::of(&actor.principal));
    value["api_key"] = json!(created.api_key);
    value["provisioning"] = created.provisioning;
    if let Some(credentials) = created.boundary_credentials {
        value["boundary_credentials"] = credentials;
    }
    if value["audit_webhook_url"].is_string() {
        value["audit_webhook_secret"] = json!(state.app.audit_hook_secret(&created.tenant.id));
    }
    let status = if created.tenant.status == companyos_domain::TenantStatus::Active {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    Ok(json(status, value))
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
        .list_tenants(&actor, query.status.as_deref())
        .await?;
    let actions = state.app.tenant_actions(&actor, &tenants).await?;
    Ok(ok(json!(
        tenants
            .iter()
            .zip(&actions)
            .map(|(tenant, actions)| with_actions(tenant, actions, &actor))
            .collect::<Vec<_>>()
    )))
}

/// A tenant as a console needs it: the tenant, the lifecycle actions this caller may take now
/// and its pending approval (see `App::tenant_actions`).
fn with_actions(
    tenant: &companyos_core::tenants::TenantRow,
    actions: &companyos_core::approvals::TenantActions,
    actor: &companyos_core::Actor,
) -> serde_json::Value {
    let mut value = tenant.to_json(TenantView::of(&actor.principal));
    let (allowed, pending) = actions.to_json();
    value["allowed_actions"] = allowed;
    value["pending_approval"] = pending;
    value
}

pub async fn show(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let tenant = state.app.get_tenant(&actor, &id).await?;
    let actions = state
        .app
        .tenant_actions(&actor, std::slice::from_ref(&tenant))
        .await?;
    match actions.first() {
        Some(actions) => Ok(ok(with_actions(&tenant, actions, &actor))),
        None => Ok(ok(tenant.to_json(TenantView::of(&actor.principal)))),
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
    id: String,
    action: LifecycleAction,
    body: LifecycleBody,
) -> ApiResult<Response> {
    let outcome = state
        .app
        .lifecycle(
            &actor,
            &id,
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
        } => {
            let mut value = tenant.to_json(view);
            value["changed"] = json!(changed);
            value["warnings"] = json!(warnings);
            if let Some(evidence) = evidence {
                value["evidence_id"] = json!(evidence.id);
            }
            ok(value)
        }
        LifecycleOutcome::PendingApproval(approval) => json(
            StatusCode::ACCEPTED,
            json!({"approval": approval.to_json(), "warnings": approval.warnings}),
        ),
    }
}

macro_rules! lifecycle_handler {
    ($name:ident, $action:expr) => {
        pub async fn $name(
            State(state): State<AppState>,
            Authed(actor): Authed,
            Path(id): Path<String>,
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
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let created = state.app.retry_provisioning(&actor, &id).await?;
    let mut value = created.tenant.to_json(TenantView::of(&actor.principal));
    value["api_key"] = json!(created.api_key);
    value["provisioning"] = created.provisioning;
    Ok(ok(value))
}

pub async fn provisioning_runs(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(json!(state.app.provisioning_runs(&actor, &id).await?)))
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
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RegionsBody>,
) -> ApiResult<Response> {
    let tenant = state
        .app
        .update_regions(&actor, &id, &body.add, &body.remove)
        .await?;
    Ok(ok(tenant.to_json(TenantView::of(&actor.principal))))
}

pub async fn workloads(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(ok(json!(state.app.list_workloads(&actor, &id).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadBody {
    pub replicas: i64,
}

pub async fn set_workload(
    State(state): State<AppState>,
    Authed(actor): Authed,
    Path((id, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<WorkloadBody>,
) -> ApiResult<Response> {
    Ok(ok(json!(
        state
            .app
            .set_workload(&actor, &id, &name, body.replicas)
            .await?
    )))
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
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RetentionBody>,
) -> ApiResult<Response> {
    let tenant = state
        .app
        .update_retention(
            &actor,
            &id,
            body.tombstone_days,
            body.legal_hold,
            body.hard_delete_allowed,
            body.reason.as_deref(),
        )
        .await?;
    Ok(ok(tenant.to_json(TenantView::of(&actor.principal))))
}

// Forward auth (`GET /v1/authz/check`) is in `routes::billing`: it also checks features and
// quotas (CONTRACT §9).

/// The webhook driver's confirmation that a tenant's boundary exists (HMAC-signed, no bearer).
pub async fn provisioning_callback(
    State(state): State<AppState>,
    Path(id): Path<String>,
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
        .provisioning_callback(
            &id,
            companyos_core::tenants::ProvisioningCallback {
                attempt: header("x-companyos-attempt").as_deref(),
                timestamp: header("x-companyos-timestamp").as_deref(),
                signature: header("x-companyos-signature").as_deref(),
                body: &body,
            },
        )
        .await?;
    Ok(ok(outcome))
}
