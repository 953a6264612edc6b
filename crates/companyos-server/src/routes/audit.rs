//! The audit log (CONTRACT §8): JSON, JSONL and CSV exports, and its checkpoint.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use companyos_core::audit::{AUDIT_PAGE_MAX, AuditFilter};
use companyos_domain::audit::{AuditChannel, AuditRecord};
use companyos_domain::time_util::{day_end, day_start, parse_day, parse_rfc3339, to_micros};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::csv::{self, Format};
use crate::error::{ApiResult, AppError};
use crate::extract::{Authed, QueryParams};
use crate::routes::ok;

/// Upper bound on the records of one export.
pub const EXPORT_RECORDS_MAX: usize = 1_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub tenant_id: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    pub actor: Option<String>,
    pub channel: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<i64>,
    pub format: Option<String>,
}

/// A bound given as a date (whole UTC day) or an RFC 3339 instant.
fn bound(text: &str, field: &str, end: bool) -> Result<i64, AppError> {
    if text.len() == 10 {
        let day = parse_day(text, field).map_err(|e| AppError::invalid(field, e.message))?;
        return Ok(to_micros(if end { day_end(day) } else { day_start(day) }));
    }
    parse_rfc3339(text, field)
        .map(to_micros)
        .map_err(|_| AppError::invalid(field, "must be a date YYYY-MM-DD or an RFC 3339 timestamp"))
}

pub const AUDIT_COLUMNS: [&str; 14] = [
    "id",
    "seq",
    "occurred_at",
    "actor",
    "role",
    "action",
    "target",
    "tenant_id",
    "outcome",
    "reason",
    "request_id",
    "policy_sha256",
    "details",
    "channel",
];

fn csv_row(record: &AuditRecord) -> Vec<String> {
    vec![
        record.id.clone(),
        record.seq.to_string(),
        record.occurred_at.clone(),
        record.actor.clone(),
        record.role.clone(),
        record.action.clone(),
        record.target.clone(),
        record.tenant_id.clone().unwrap_or_default(),
        record.outcome.as_str().to_owned(),
        record.reason.clone().unwrap_or_default(),
        record.request_id.clone().unwrap_or_default(),
        record.policy_sha256.clone(),
        record.details.to_string(),
        record
            .channel
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default(),
    ]
}

pub async fn list(
    State(state): State<AppState>,
    Authed(actor): Authed,
    QueryParams(query): QueryParams<AuditQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let format = csv::negotiate(query.format.as_deref(), &headers)?;
    let filter = filter_of(&query)?;
    if format == Format::Json {
        let records = state.app.audit().records(&actor, &filter).await?;
        return Ok(ok(json!(
            records.iter().map(AuditRecord::to_json).collect::<Vec<_>>()
        )));
    }
    // Exports page through the whole selection (bounded), unless a limit was asked for.
    let wanted = query.limit.map_or(EXPORT_RECORDS_MAX, |l| {
        usize::try_from(l.max(1)).unwrap_or(1)
    });
    let records = export_records(&state, &actor, filter, wanted).await?;
    Ok(match format {
        Format::Csv => csv::response(
            csv::render(
                &AUDIT_COLUMNS,
                &records.iter().map(csv_row).collect::<Vec<_>>(),
            ),
            "audit.csv",
        ),
        _ => csv::ndjson_response(records.iter().map(|record| record.to_json())),
    })
}

/// The filter a query asks for, its fields checked in the order they are named.
fn filter_of(query: &AuditQuery) -> ApiResult<AuditFilter> {
    if let Some(outcome) = &query.outcome {
        if companyos_domain::audit::AuditOutcome::parse(outcome).is_none() {
            return Err(AppError::invalid(
                "outcome",
                "must be success, denied or failed",
            ));
        }
    }
    let channel = query
        .channel
        .as_deref()
        .map(|text| {
            AuditChannel::parse(text)
                .ok_or_else(|| AppError::invalid("channel", "must be api, cli or console"))
        })
        .transpose()?;
    Ok(AuditFilter {
        tenant_id: query.tenant_id.clone(),
        action: query.action.clone(),
        outcome: query.outcome.clone(),
        actor: query.actor.clone(),
        channel,
        from_micros: query
            .from
            .as_deref()
            .map(|t| bound(t, "from", false))
            .transpose()?,
        to_micros: query
            .to
            .as_deref()
            .map(|t| bound(t, "to", true))
            .transpose()?,
        after_seq: query.after,
        before_seq: None,
        newest_first: false,
        limit: query.limit.unwrap_or(1000).clamp(1, AUDIT_PAGE_MAX),
    })
}

/// Every record of the selection for an export, page after page, up to `wanted`.
async fn export_records(
    state: &AppState,
    actor: &companyos_core::Actor,
    mut filter: AuditFilter,
    wanted: usize,
) -> ApiResult<Vec<AuditRecord>> {
    filter.limit = AUDIT_PAGE_MAX;
    let mut records: Vec<AuditRecord> = Vec::new();
    loop {
        let page = state.app.audit().records(actor, &filter).await?;
        let done = (page.len() as i64) < filter.limit;
        if let Some(last) = page.last() {
            filter.after_seq = i64::try_from(last.seq).ok();
        }
        records.extend(page);
        if done || records.len() >= wanted {
            break;
        }
    }
    records.truncate(wanted);
    Ok(records)
}
