//! OpenMeter-compatible API (CONTRACT §11, ADR 0014): CloudEvents ingestion, meters and meter
//! queries, and the subject mapping of a tenant. Wire shapes follow OpenMeter's
//! `api/openapi.yaml`; the service work is in `companyos_core::metering::meters`.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse as _, Response};
use companyos_core::metering::meters::{
    CloudEventsOutcome, MeterQuery, MeterQueryResult, StoredMeter,
};
use companyos_domain::meter::{RawMeter, WindowSize, WindowZone};
use companyos_domain::time_util::{format_rfc3339, parse_rfc3339};
use companyos_domain::{FieldError, MetricName, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::AppState;
use crate::csv;
use crate::error::{ApiResult, AppError};
use crate::extract::{Authed, JsonBody, PathLookup, read_body};
use crate::routes::json;

/// The three body types of `POST /api/v1/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloudEventsBody {
    /// `application/cloudevents+json`: one event.
    Structured,
    /// `application/cloudevents-batch+json`: an array.
    Batch,
    /// `application/json`: one event or an array.
    Json,
}

fn body_kind(headers: &HeaderMap) -> Result<CloudEventsBody, AppError> {
    match crate::media::body_type(headers) {
        crate::media::BodyType::Given(essence) => match essence.as_str() {
            "application/cloudevents+json" => Ok(CloudEventsBody::Structured),
            "application/cloudevents-batch+json" => Ok(CloudEventsBody::Batch),
            "application/json" => Ok(CloudEventsBody::Json),
            _ => Err(unsupported()),
        },
        _ => Err(unsupported()),
    }
}

fn unsupported() -> AppError {
    crate::extract::unsupported_media_type(
        "send application/cloudevents+json, application/cloudevents-batch+json or application/json",
    )
}

/// The events of a body, each as its own JSON text (no tree of the whole body is built: each
/// event is read once, by the service).
fn events_of(kind: CloudEventsBody, body: &[u8]) -> Result<Vec<&RawValue>, AppError> {
    let whole: &RawValue = serde_json::from_slice(body)
        .map_err(|e| AppError::malformed(format!("the body is not valid JSON: {e}")))?;
    let not_an_array = || AppError::malformed("the body is not valid JSON");
    match (kind, whole.get().as_bytes().first()) {
        (CloudEventsBody::Structured, Some(b'[')) => Err(AppError::invalid(
            "body",
            "application/cloudevents+json is one event; send an array as application/cloudevents-batch+json",
        )),
        (CloudEventsBody::Batch, Some(b'{')) => Err(AppError::invalid(
            "body",
            "application/cloudevents-batch+json is an array of events",
        )),
        (_, Some(b'[')) => {
            let items: Vec<&RawValue> =
                serde_json::from_str(whole.get()).map_err(|_| not_an_array())?;
            if items.is_empty() {
                return Err(AppError::invalid("body", "has no events"));
            }
            Ok(items)
        }
        (_, Some(b'{')) => Ok(vec![whole]),
        _ => Err(AppError::invalid(
            "body",
            "must be a CloudEvent (a JSON object) or an array of them",
        )),
    }
}

/// 400 naming each refused event, OpenMeter style (its other events are kept).
fn refused(outcome: &CloudEventsOutcome) -> AppError {
    let mut error = AppError::new(
        StatusCode::BAD_REQUEST,
        "validation-error",
        "Invalid request",
        format!(
            "{} of {} events were not accepted (the others are kept): {}",
            outcome.errors.len(),
            outcome.events,
            outcome
                .errors
                .iter()
                .map(|e| format!(
                    "event {} (id {:?}): {}",
                    e.index,
                    e.id.as_deref().unwrap_or(""),
                    e.errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
                .collect::<Vec<_>>()
                .join(" | ")
        ),
    );
    for refused in &outcome.errors {
        for problem in &refused.errors {
            error.errors.push(FieldError::new(
                format!("events[{}].{}", refused.index, problem.field),
                problem.message.clone(),
            ));
        }
    }
    error.extra = Some((
        "events",
        Value::Array(
            outcome
                .errors
                .iter()
                .map(|e| json!({"index": e.index, "id": e.id, "errors": e.errors}))
                .collect(),
        ),
    ));
    error
}

/// `POST /api/v1/events`: 204 when every event was accepted or a duplicate.
pub async fn ingest(
    State(state): State<AppState>,
    Authed(actor): Authed,
    request: Request,
) -> ApiResult<Response> {
    let kind = body_kind(request.headers())?;
    let body = read_body(request, state.body_bytes_max).await?;
    let events = events_of(kind, &body)?;
    let texts: Vec<&str> = events.iter().map(|event| event.get()).collect();
    let outcome = state
        .app
        .metering()
        .ingest_cloudevents(&actor, &texts)
        .await?;
    if outcome.errors.is_empty() {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(refused(&outcome))
    }
}

/// A meter as OpenMeter answers it (plus our `service` and `unit`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MeterWire<'a> {
    id: &'a str,
    slug: &'a str,
    event_type: &'a str,
    aggregation: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_property: Option<&'a str>,
    group_by: BTreeMap<&'a str, &'a str>,
    description: &'a str,
    service: &'a str,
    unit: &'a str,
    window_size: &'static str,
    created_at: String,
    created_by: &'a str,
}

impl<'a> MeterWire<'a> {
    fn of(stored: &'a StoredMeter) -> Self {
        let meter = &stored.meter;
        Self {
            id: meter.slug.as_str(),
            slug: meter.slug.as_str(),
            event_type: &meter.event_type,
            aggregation: meter.aggregation.as_str(),
            value_property: meter.value_property.as_ref().map(|p| p.as_str()),
            group_by: meter
                .group_by
                .iter()
                .map(|(name, path)| (name.as_str(), path.as_str()))
                .collect(),
            description: &meter.description,
            service: meter.service.as_str(),
            unit: meter.unit.as_str(),
            window_size: "MINUTE",
            created_at: format_rfc3339(stored.created_at),
            created_by: &stored.created_by,
        }
    }
}

fn meter_response(status: StatusCode, stored: &StoredMeter) -> Response {
    (status, axum::Json(MeterWire::of(stored))).into_response()
}

pub async fn create_meter(
    State(state): State<AppState>,
    Authed(actor): Authed,
    JsonBody(body): JsonBody<RawMeter>,
) -> ApiResult<Response> {
    let stored = state.app.metering().create_meter(&actor, &body).await?;
    Ok(meter_response(StatusCode::CREATED, &stored))
}

pub async fn list_meters(
    State(state): State<AppState>,
    Authed(actor): Authed,
) -> ApiResult<Response> {
    let meters = state.app.metering().list_meters(&actor).await?;
    let wire: Vec<MeterWire<'_>> = meters.iter().map(MeterWire::of).collect();
    Ok((StatusCode::OK, axum::Json(wire)).into_response())
}

pub async fn get_meter(
    State(state): State<AppState>,
    Authed(actor): Authed,
    slug: PathLookup<MetricName>,
) -> ApiResult<Response> {
    let stored = state
        .app
        .metering()
        .get_meter(&actor, slug.as_str())
        .await?;
    Ok(meter_response(StatusCode::OK, &stored))
}

/// The query string of a meter query: repeated `subject` and `groupBy`, `filterGroupBy[k]=v`.
fn parse_query(raw: &str) -> Result<(MeterQuery, Option<String>), AppError> {
    let mut query = MeterQuery {
        from: None,
        to: None,
        window_size: None,
        time_zone: WindowZone::UTC,
        subjects: Vec::new(),
        group_by: Vec::new(),
        filter_group_by: BTreeMap::new(),
    };
    let mut format = None;
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        let value = value.into_owned();
        match name.as_ref() {
            "from" => query.from = Some(parse_rfc3339(&value, "from").map_err(field_error)?),
            "to" => query.to = Some(parse_rfc3339(&value, "to").map_err(field_error)?),
            "windowSize" => {
                query.window_size = Some(WindowSize::parse(&value).ok_or_else(|| {
                    AppError::invalid("windowSize", "must be MINUTE, HOUR, DAY or MONTH")
                })?);
            }
            "windowTimeZone" => {
                query.time_zone = companyos_core::metering::meters::window_zone(&value)
                    .map_err(|message| AppError::invalid("windowTimeZone", message))?;
            }
            "subject" => query.subjects.push(value),
            "groupBy" => query.group_by.push(value),
            "format" => format = Some(value),
            other => match other
                .strip_prefix("filterGroupBy[")
                .and_then(|rest| rest.strip_suffix(']'))
            {
                Some(key) => {
                    query.filter_group_by.insert(key.to_owned(), value);
                }
                None => return Err(AppError::invalid(other, "is not a known query parameter")),
            },
        }
        if query.subjects.len() + query.group_by.len() + query.filter_group_by.len() > 1000 {
            return Err(AppError::too_large(
                "a query names at most 1000 subjects and groups",
            ));
        }
    }
    Ok((query, format))
}

fn field_error(error: FieldError) -> AppError {
    AppError::invalid(&error.field, error.message)
}

/// One row of a meter query answer; `value` is a JSON number written exactly.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MeterRowWire<'a> {
    value: Box<RawValue>,
    window_start: String,
    window_end: String,
    subject: Option<&'a str>,
    group_by: &'a BTreeMap<String, Option<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MeterQueryWire<'a> {
    from: String,
    to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_size: Option<&'static str>,
    data: Vec<MeterRowWire<'a>>,
}

fn query_wire(result: &MeterQueryResult) -> Result<MeterQueryWire<'_>, AppError> {
    let mut data = Vec::with_capacity(result.rows.len());
    for row in &result.rows {
        let value = RawValue::from_string(row.value.normalize().to_string())
            .map_err(|e| AppError::from(companyos_core::ServiceError::Internal(e.to_string())))?;
        data.push(MeterRowWire {
            value,
            window_start: format_rfc3339(row.window_start),
            window_end: format_rfc3339(row.window_end),
            subject: row.subject.as_deref(),
            group_by: &row.group_by,
        });
    }
    Ok(MeterQueryWire {
        from: format_rfc3339(result.from),
        to: format_rfc3339(result.to),
        window_size: result.window_size.map(WindowSize::as_str),
        data,
    })
}

/// `GET /api/v1/meters/{slug}/query` (JSON, or CSV on `Accept: text/csv`).
pub async fn query_meter(
    State(state): State<AppState>,
    Authed(actor): Authed,
    slug: PathLookup<MetricName>,
    request: Request,
) -> ApiResult<Response> {
    let (query, format) = parse_query(request.uri().query().unwrap_or(""))?;
    let format = csv::negotiate(format.as_deref(), request.headers())?;
    let result = state
        .app
        .metering()
        .query_meter(&actor, slug.as_str(), &query)
        .await?;
    if format != csv::Format::Csv {
        return Ok((StatusCode::OK, axum::Json(query_wire(&result)?)).into_response());
    }
    let groups: Vec<&String> = result
        .rows
        .first()
        .map(|r| r.group_by.keys().collect())
        .unwrap_or_default();
    let mut header = vec!["window_start", "window_end", "subject"];
    header.extend(groups.iter().map(|g| g.as_str()));
    header.push("value");
    let rows: Vec<Vec<String>> = result
        .rows
        .iter()
        .map(|row| {
            let mut cells = vec![
                format_rfc3339(row.window_start),
                format_rfc3339(row.window_end),
                row.subject.clone().unwrap_or_default(),
            ];
            cells.extend(row.group_by.values().map(|v| v.clone().unwrap_or_default()));
            cells.push(row.value.normalize().to_string());
            cells
        })
        .collect();
    Ok(csv::response(
        csv::render(&header, &rows),
        &format!("meter-{}.csv", slug.as_str()),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectsBody {
    pub subjects: Vec<String>,
}

pub async fn get_subjects(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
) -> ApiResult<Response> {
    // A malformed id was always answered here, as a tenant that does not exist.
    let tenant = id.or_not_found("tenant")?;
    let subjects = state
        .app
        .metering()
        .tenant_subjects(&actor, &tenant)
        .await?;
    Ok(json(
        StatusCode::OK,
        json!({"tenant_id": subjects.tenant_id.as_str(), "subjects": subjects.subjects}),
    ))
}

pub async fn put_subjects(
    State(state): State<AppState>,
    Authed(actor): Authed,
    id: PathLookup<TenantId>,
    JsonBody(body): JsonBody<SubjectsBody>,
) -> ApiResult<Response> {
    // A malformed id was always answered here, as a tenant that does not exist.
    let tenant = id.or_not_found("tenant")?;
    let subjects = state
        .app
        .metering()
        .set_tenant_subjects(&actor, &tenant, &body.subjects)
        .await?;
    Ok(json(
        StatusCode::OK,
        json!({"tenant_id": subjects.tenant_id.as_str(), "subjects": subjects.subjects}),
    ))
}
