//! Usage events, sources, daily rollups, reconciliation and integrity reports (CONTRACT §5, §6).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse as _;
use axum::response::Response;
use companyos_core::metering::ingest::{EventStatus, IngestOutcome, split_body};
use companyos_core::metering::reports::{ReconciliationDay, day_range};
use companyos_domain::{FieldError, TenantId};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::csv;
use crate::error::{ApiResult, AppError};
use crate::extract::{Authed, JsonBody, PathLookup, QueryParams, read_body};
use crate::routes::{ok_reply, reply};
use crate::wire::metering::SourceBody;
use crate::wire::reports::{DailyUsageBody, IntegrityReportBody, ReconciliationRow};

/// The answer of `POST /v1/events` (CONTRACT §5), serialized straight from the outcome: the
/// results of a thousand events are not built as a tree of JSON values first.
#[derive(Debug, Serialize)]
struct IngestResponse<'a> {
    accepted: usize,
    duplicates: usize,
    late: usize,
    rejected: usize,
    conflicts: usize,
    results: Vec<EventResultWire<'a>>,
}

#[derive(Debug, Serialize)]
struct EventResultWire<'a> {
    index: usize,
    event_id: Option<&'a str>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<&'a str>,
    /// Every error of the event in one line, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    flags: &'a [&'static str],
}

impl<'a> IngestResponse<'a> {
    fn of(outcome: &'a IngestOutcome) -> Self {
        Self {
            accepted: outcome.count(EventStatus::Accepted),
            duplicates: outcome.count(EventStatus::Duplicate),
            late: outcome.count(EventStatus::Late),
            rejected: outcome.count(EventStatus::Rejected),
            conflicts: outcome.count(EventStatus::Conflict),
            results: outcome
                .results
                .iter()
                .map(|result| EventResultWire {
                    index: result.index,
                    event_id: result.event_id.as_deref(),
                    status: result.status.as_str(),
                    seq: result.seq,
                    digest: result.digest.as_deref(),
                    error: (!result.errors.is_empty()).then(|| {
                        result
                            .errors
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    }),
                    errors: &result.errors,
                    flags: &result.flags,
                })
                .collect(),
        }
    }
}

/// `POST /v1/events`: a JSON array or NDJSON; per-event results.
pub async fn ingest(
    State(state): State<AppState>,
    Authed(actor): Authed,
    request: Request,
) -> ApiResult<Response> {
    let ndjson = match crate::media::body_type(request.headers()) {
        crate::media::BodyType::Absent => false,
        crate::media::BodyType::Given(essence) if essence == "application/json" => false,
        crate::media::BodyType::Given(essence) if crate::media::is_ndjson(&essence) => true,
        _ => {
            return Err(crate::extract::unsupported_media_type(
                "send a JSON array (application/json) or NDJSON (application/x-ndjson)",
            ));
        }
    };
    let body = read_body(request, state.body_bytes_max).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::malformed(
            "the body is empty; send a JSON array of events",
        ));
    }
    let events_max = state.app.settings().batch_events_max;
    let events = match split_body(&body, ndjson, events_max) {
        Ok(events) => events,
        Err(companyos_core::ServiceError::Validation(errors)) => {
            let detail = errors.to_string();
            let mut error = AppError::malformed(detail);
            error.errors = errors.into_vec();
            return Err(error);
        }
        Err(other) => return Err(other.into()),
    };
    let outcome = state.app.ingest(&actor, events).await?;
    Ok((StatusCode::OK, axum::Json(IngestResponse::of(&outcome))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    pub from: String,
    pub to: String,
    pub format: Option<String>,
}

pub async fn daily(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
    QueryParams(query): QueryParams<RangeQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let format = csv::negotiate(query.format.as_deref(), &headers)?;
    let (from, to) = day_range(&query.from, &query.to)?;
    let rows = state
        .app
        .metering()
        .daily_usage(&actor, id.as_str(), from, to)
        .await?;
    Ok(csv::respond(
        format,
        &DAILY_USAGE_COLUMNS,
        &rows,
        |r| {
            vec![
                r.date.clone(),
                r.service.clone(),
                r.metric.clone(),
                r.unit.clone(),
                r.quantity.normalize().to_string(),
                r.events.to_string(),
                r.late_quantity.normalize().to_string(),
                r.late_events.to_string(),
            ]
        },
        DailyUsageBody::of,
        &format!("usage-{}-{}-{}.csv", id.as_str(), query.from, query.to),
    ))
}

/// The CSV columns of the daily usage report (and the CLI's table of it).
pub const DAILY_USAGE_COLUMNS: [&str; 8] = [
    "date",
    "service",
    "metric",
    "unit",
    "quantity",
    "events",
    "late_quantity",
    "late_events",
];

/// The CSV columns of the reconciliation report (and the CLI's table of it).
pub const RECONCILIATION_COLUMNS: [&str; 12] = [
    "date",
    "accepted",
    "duplicates",
    "late",
    "invalid",
    "conflicts",
    "missing",
    "missing_ratio",
    "unsigned",
    "undeclared",
    "closed",
    "gaps",
];

pub fn reconciliation_row(day: &ReconciliationDay) -> Vec<String> {
    vec![
        day.date.clone(),
        day.accepted.to_string(),
        day.duplicates.to_string(),
        day.late.to_string(),
        day.invalid.to_string(),
        day.conflicts.to_string(),
        day.missing.to_string(),
        day.missing_ratio().to_string(),
        day.unsigned.to_string(),
        day.undeclared.to_string(),
        day.closed.to_string(),
        day.gaps
            .iter()
            .map(|g| format!("{}:{}-{}", g.source, g.from_seq, g.to_seq))
            .collect::<Vec<_>>()
            .join(" "),
    ]
}

pub async fn reconciliation(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
    QueryParams(query): QueryParams<RangeQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let format = csv::negotiate(query.format.as_deref(), &headers)?;
    let (from, to) = day_range(&query.from, &query.to)?;
    let days = state
        .app
        .metering()
        .reconciliation(&actor, id.as_str(), from, to)
        .await?;
    Ok(csv::respond(
        format,
        &RECONCILIATION_COLUMNS,
        &days,
        reconciliation_row,
        ReconciliationRow::of,
        &format!(
            "reconciliation-{}-{}-{}.csv",
            id.as_str(),
            query.from,
            query.to
        ),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityBody {
    pub from: String,
    pub to: String,
}

pub async fn integrity_report(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
    JsonBody(body): JsonBody<IntegrityBody>,
) -> ApiResult<Response> {
    let (from, to) = day_range(&body.from, &body.to)?;
    let (report, record) = state
        .app
        .metering()
        .integrity_report(&actor, id.as_str(), from, to)
        .await?;
    Ok(reply(
        StatusCode::CREATED,
        IntegrityReportBody::of(&record, &report),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    pub id: String,
    pub service: String,
    pub public_key: String,
}

pub async fn create_source(
    State(state): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<CreateSource>,
) -> ApiResult<Response> {
    let source = state
        .app
        .metering()
        .register_source(&actor, &body.id, &body.service, &body.public_key)
        .await?;
    Ok(reply(StatusCode::CREATED, SourceBody::created(&source)))
}

pub async fn list_sources(
    State(state): State<AppState>,
    Authed(actor): Authed,
) -> ApiResult<Response> {
    let sources = state.app.metering().list_sources(&actor).await?;
    Ok(ok_reply(
        sources.iter().map(SourceBody::listed).collect::<Vec<_>>(),
    ))
}
