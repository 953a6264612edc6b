//! Plans, entitlements and quotas (CONTRACT §9): the catalog, a tenant's plan and history.
//! Ids are parsed into newtypes here; the service layer does the rest.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use companyos_core::billing::{
    AssignmentRecord, Effective, Entitlements, ForwardAuthRequest, PlanChange, PlanWrite,
    QuotaEvent, QuotaState, StoredPlanVersion, TenantPlan, TopUp,
};
use companyos_domain::catalog::{FeatureName, PlanVersion, QuotaPeriod, RawPlanSpec};
use companyos_domain::time_util::{format_day, format_rfc3339};
use companyos_domain::{MetricName, PlanName, TenantId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::{ApiResult, AppError};
use crate::extract::{Authed, Credentials, JsonBody, PathId, PathIds, PathLookup, QueryParams};
use crate::routes::{json, ok};

/// One quota of a plan version, as sent.
#[derive(Debug, Serialize)]
pub struct QuotaView {
    pub metric: String,
    pub period: &'static str,
    pub included: String,
    pub thresholds_percent: Vec<u32>,
    pub enforcement: &'static str,
    pub overage_unit_price: String,
}

/// A plan version, as sent: the contract's `plan`, `version`, `sha256` and the content.
#[derive(Debug, Serialize)]
pub struct PlanVersionView {
    pub plan: String,
    pub version: u32,
    pub sha256: String,
    pub name: String,
    pub currency: String,
    pub base_fee: String,
    pub features: Vec<String>,
    pub quotas: Vec<QuotaView>,
    pub retention: RetentionView,
    pub workloads_max: u32,
    pub created_at: String,
    pub created_by: String,
    /// Only on `PUT`: whether this request wrote the version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct RetentionView {
    pub tombstone_days: u32,
    pub hard_delete_allowed: bool,
    pub legal_hold: bool,
}

fn plan_view(version: &PlanVersion, sha256: &str, created_at: String, by: &str) -> PlanVersionView {
    let spec = &version.spec;
    PlanVersionView {
        plan: version.plan.as_str().to_owned(),
        version: version.version,
        sha256: sha256.to_owned(),
        name: spec.name.clone(),
        currency: spec.currency.as_str().to_owned(),
        base_fee: spec.currency.round(spec.base_fee).to_string(),
        features: spec
            .features
            .iter()
            .map(|f| f.as_str().to_owned())
            .collect(),
        quotas: spec
            .quotas
            .iter()
            .map(|q| QuotaView {
                metric: q.metric.as_str().to_owned(),
                period: q.period.as_str(),
                included: q.included.normalize().to_string(),
                thresholds_percent: q.thresholds_percent.clone(),
                enforcement: q.enforcement.as_str(),
                overage_unit_price: q.overage_unit_price.normalize().to_string(),
            })
            .collect(),
        retention: RetentionView {
            tombstone_days: spec.retention.tombstone_days,
            hard_delete_allowed: spec.retention.hard_delete_allowed,
            legal_hold: spec.retention.legal_hold,
        },
        workloads_max: spec.workloads_max,
        created_at,
        created_by: by.to_owned(),
        created: None,
    }
}

fn stored_view(stored: &StoredPlanVersion) -> PlanVersionView {
    plan_view(
        &stored.version,
        &stored.sha256,
        format_rfc3339(stored.created_at),
        &stored.created_by,
    )
}

fn plan_name(text: &str) -> Result<PlanName, AppError> {
    PlanName::parse(text).map_err(|e| AppError::invalid("plan", e.message))
}

fn to_json<T: Serialize>(value: &T) -> ApiResult<Response> {
    let value = serde_json::to_value(value)
        .map_err(|e| AppError::from(companyos_core::ServiceError::Internal(e.to_string())))?;
    Ok(ok(value))
}

pub async fn put_plan(
    State(state): State<AppState>,
    Authed(actor): Authed,
    plan: PathLookup<PlanName>,
    JsonBody(body): JsonBody<RawPlanSpec>,
) -> ApiResult<Response> {
    // Judged after the body, as it always was: a bad body is named first.
    let plan = plan.or_invalid()?;
    let PlanWrite { stored, created } = state.app.billing().put_plan(&actor, &plan, body).await?;
    let mut view = stored_view(&stored);
    view.created = Some(created);
    to_json(&view)
}

pub async fn list_plans(
    State(state): State<AppState>,
    Authed(actor): Authed,
) -> ApiResult<Response> {
    let plans = state.app.billing().list_plans(&actor).await?;
    to_json(&plans.iter().map(stored_view).collect::<Vec<_>>())
}

pub async fn get_plan(
    State(state): State<AppState>,
    Authed(actor): Authed,
    PathId(plan): PathId<PlanName>,
) -> ApiResult<Response> {
    let stored = state.app.billing().plan(&actor, &plan, None).await?;
    to_json(&stored_view(&stored))
}

pub async fn get_plan_version(
    State(state): State<AppState>,
    Authed(actor): Authed,
    PathIds(plan, number): PathIds<PlanName, String>,
) -> ApiResult<Response> {
    let number: u32 = number
        .parse()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| AppError::invalid("version", "must be a version number from 1"))?;
    let stored = state
        .app
        .billing()
        .plan(&actor, &plan, Some(number))
        .await?;
    to_json(&stored_view(&stored))
}

/// `PUT /v1/tenants/{id}/plan`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanChangeBody {
    pub plan: String,
    pub version: Option<u32>,
    pub effective: Option<String>,
    pub reason: Option<String>,
}

/// An assignment of a tenant's plan history, as sent.
#[derive(Debug, Serialize)]
pub struct AssignmentView {
    pub plan: String,
    pub version: u32,
    pub effective_from: String,
    pub seq: u64,
    pub assigned_at: String,
    pub assigned_by: String,
    pub reason: Option<String>,
}

fn assignment_view(record: &AssignmentRecord) -> AssignmentView {
    AssignmentView {
        plan: record.plan.as_str().to_owned(),
        version: record.version,
        effective_from: format_day(record.effective_from),
        seq: record.seq,
        assigned_at: format_rfc3339(record.assigned_at),
        assigned_by: record.assigned_by.clone(),
        reason: record.reason.clone(),
    }
}

pub async fn change_tenant_plan(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
    JsonBody(body): JsonBody<PlanChangeBody>,
) -> ApiResult<Response> {
    let tenant = id.or_invalid()?;
    let plan = plan_name(&body.plan)?;
    let effective = Effective::parse_field(body.effective.as_deref().unwrap_or("now"), "effective")
        .map_err(|e| AppError::invalid("effective", e.message))?;
    if body.version == Some(0) {
        return Err(AppError::invalid(
            "version",
            "must be a version number from 1",
        ));
    }
    let record = state
        .app
        .billing()
        .change_tenant_plan(
            &actor,
            &tenant,
            PlanChange {
                plan,
                version: body.version,
                effective,
                reason: body.reason,
            },
        )
        .await?;
    to_json(&assignment_view(&record))
}

/// `GET /v1/tenants/{id}/plan`: the current assignment and the history.
#[derive(Debug, Serialize)]
pub struct TenantPlanView {
    pub tenant_id: String,
    pub plan: Option<String>,
    pub version: Option<u32>,
    pub effective_from: Option<String>,
    pub history: Vec<AssignmentView>,
}

pub async fn tenant_plan(
    State(state): State<AppState>,
    Authed(actor): Authed,
    PathId(tenant): PathId<TenantId>,
) -> ApiResult<Response> {
    let TenantPlan { current, history } = state.app.billing().tenant_plan(&actor, &tenant).await?;
    let view = TenantPlanView {
        tenant_id: tenant.as_str().to_owned(),
        plan: current.as_ref().map(|c| c.plan.as_str().to_owned()),
        version: current.as_ref().map(|c| c.version),
        effective_from: current.as_ref().map(|c| format_day(c.effective_from)),
        history: history.iter().map(assignment_view).collect(),
    };
    to_json(&view)
}

/// `GET /v1/tenants/{id}/entitlements`.
#[derive(Debug, Serialize)]
pub struct EntitlementsView {
    pub tenant_id: String,
    pub plan: String,
    pub version: u32,
    pub features: Vec<FeatureView>,
    pub quotas: Vec<QuotaStateView>,
}

#[derive(Debug, Serialize)]
pub struct FeatureView {
    pub feature: String,
    pub has_access: bool,
}

/// A quota over its current period; quantities are exact decimals as strings.
#[derive(Debug, Serialize)]
pub struct QuotaStateView {
    pub metric: String,
    pub period: &'static str,
    pub period_start: String,
    pub period_end: String,
    pub included: String,
    pub top_up: String,
    pub usage: String,
    pub remaining: String,
    pub overage: String,
    pub percent_used: String,
    pub enforcement: &'static str,
    pub has_access: bool,
}

fn quota_state_view(state: &QuotaState) -> QuotaStateView {
    QuotaStateView {
        metric: state.quota.metric.as_str().to_owned(),
        period: state.quota.period.as_str(),
        period_start: format_day(state.bounds.start),
        period_end: format_day(state.bounds.end),
        included: state.quota.included.normalize().to_string(),
        top_up: state.top_up.normalize().to_string(),
        usage: state.usage.normalize().to_string(),
        remaining: state.remaining().normalize().to_string(),
        overage: state.overage().normalize().to_string(),
        percent_used: state.percent_used().normalize().to_string(),
        enforcement: state.quota.enforcement.as_str(),
        has_access: state.has_access(),
    }
}

pub async fn entitlements(
    State(state): State<AppState>,
    Authed(actor): Authed,
    PathId(tenant): PathId<TenantId>,
) -> ApiResult<Response> {
    let found: Entitlements = state.app.billing().entitlements(&actor, &tenant).await?;
    to_json(&EntitlementsView {
        tenant_id: found.tenant_id.as_str().to_owned(),
        plan: found.plan.as_str().to_owned(),
        version: found.version,
        features: found
            .features
            .iter()
            .map(|(f, has)| FeatureView {
                feature: f.as_str().to_owned(),
                has_access: *has,
            })
            .collect(),
        quotas: found.quotas.iter().map(quota_state_view).collect(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaEventsQuery {
    pub period: Option<String>,
}

/// One quota event, as sent (`period` is its label: `YYYY-MM` or `YYYY-MM-DD`).
#[derive(Debug, Serialize)]
pub struct QuotaEventView {
    pub id: String,
    pub tenant_id: String,
    pub metric: String,
    pub period: String,
    pub period_kind: &'static str,
    pub threshold_percent: u32,
    pub usage: String,
    pub included: String,
    pub overage: String,
    pub plan: String,
    pub version: u32,
    pub occurred_at: String,
}

pub fn quota_event_view(event: &QuotaEvent) -> QuotaEventView {
    QuotaEventView {
        id: event.id.clone(),
        tenant_id: event.tenant_id.clone(),
        metric: event.metric.clone(),
        period: event.bounds.label(),
        period_kind: event.bounds.period.as_str(),
        threshold_percent: event.threshold_percent,
        usage: event.usage.normalize().to_string(),
        included: event.included.normalize().to_string(),
        overage: event.overage.normalize().to_string(),
        plan: event.plan.clone(),
        version: event.version,
        occurred_at: format_rfc3339(event.occurred_at),
    }
}

pub async fn quota_events(
    State(state): State<AppState>,
    Authed(actor): Authed,
    QueryParams(query): QueryParams<QuotaEventsQuery>,
    PathId(tenant): PathId<TenantId>,
) -> ApiResult<Response> {
    let events = state
        .app
        .billing()
        .quota_events(&actor, &tenant, query.period.as_deref())
        .await?;
    to_json(&events.iter().map(quota_event_view).collect::<Vec<_>>())
}

/// `POST /v1/tenants/{id}/quota-top-ups`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopUpBody {
    pub metric: String,
    pub period: Option<String>,
    pub quantity: RawQuantity,
    pub reason: Option<String>,
}

/// A quantity sent as a JSON string or number, read exactly.
#[derive(Debug)]
pub struct RawQuantity(String);

impl<'de> Deserialize<'de> for RawQuantity {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(Self(text)),
            serde_json::Value::Number(number) => Ok(Self(number.to_string())),
            _ => Err(serde::de::Error::custom("must be a decimal")),
        }
    }
}

pub async fn top_up(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
    JsonBody(body): JsonBody<TopUpBody>,
) -> ApiResult<Response> {
    let tenant = id.or_invalid()?;
    let metric = MetricName::parse_field(&body.metric, "metric")
        .map_err(|e| AppError::invalid("metric", e.message))?;
    let period = body
        .period
        .as_deref()
        .map(|p| QuotaPeriod::parse_field(p, "period"))
        .transpose()
        .map_err(|e| AppError::invalid("period", e.message))?;
    let quantity: Decimal = body
        .quantity
        .0
        .trim()
        .parse()
        .map_err(|_| AppError::invalid("quantity", "must be a decimal such as \"500\""))?;
    let after = state
        .app
        .billing()
        .top_up(
            &actor,
            &tenant,
            TopUp {
                metric,
                period,
                quantity,
                reason: body.reason,
            },
        )
        .await?;
    let value = serde_json::to_value(quota_state_view(&after))
        .map_err(|e| AppError::from(companyos_core::ServiceError::Internal(e.to_string())))?;
    Ok(json(StatusCode::CREATED, value))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuthQuery {
    pub feature: Option<String>,
    pub metric: Option<String>,
}

/// `GET /v1/authz/check[?feature=&metric=]`: 200 with `X-Tenant-Id` (and `X-Quota-Exceeded`
/// over a soft quota), 403, or 429 with `Retry-After`.
pub async fn forward_auth(
    State(state): State<AppState>,
    credentials: Credentials,
    QueryParams(query): QueryParams<ForwardAuthQuery>,
) -> ApiResult<Response> {
    let feature = query
        .feature
        .as_deref()
        .map(FeatureName::parse)
        .transpose()
        .map_err(|e| AppError::invalid("feature", e.message))?;
    let metric = query
        .metric
        .as_deref()
        .map(MetricName::parse)
        .transpose()
        .map_err(|e| AppError::invalid("metric", e.message))?;
    let grant = state
        .app
        .billing()
        .forward_auth_request(ForwardAuthRequest {
            token: credentials.token.as_deref(),
            request_id: Some(&credentials.request_id),
            route: &credentials.route,
            source: credentials.source,
            channel: Some(credentials.channel),
            feature: feature.as_ref(),
            metric: metric.as_ref(),
        })
        .await?;
    let mut response = (
        StatusCode::OK,
        axum::Json(serde_json::json!({"tenant_id": grant.tenant_id})),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&grant.tenant_id) {
        response.headers_mut().insert("x-tenant-id", value);
    }
    if let Some(metric) = grant.quota_exceeded {
        if let Ok(value) = HeaderValue::from_str(metric.as_str()) {
            response.headers_mut().insert("x-quota-exceeded", value);
        }
    }
    Ok(response)
}
