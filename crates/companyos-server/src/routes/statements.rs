//! Monthly statements (CONTRACT §10): a tenant's months and one month's statement as JSON (the
//! exact canonical bytes, stored once final) or CSV. Ids and months are parsed here.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use companyos_domain::TenantId;
use companyos_domain::statement::{STATEMENT_CSV_COLUMNS, StatementMonth};
use companyos_domain::time_util::parse_day;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::csv;
use crate::error::{ApiResult, AppError};
use crate::extract::{Authed, PathId, PathIds, QueryParams};
use crate::routes::ok;

/// One month of `GET /v1/tenants/{id}/statements`.
#[derive(Debug, Serialize)]
pub struct StatementListItem {
    pub month: String,
    pub status: &'static str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementQuery {
    pub format: Option<String>,
}

fn month_of(text: &str) -> Result<StatementMonth, AppError> {
    StatementMonth::parse(text).map_err(|e| AppError::invalid("month", e.message))
}

pub async fn list(
    State(state): State<AppState>,
    Authed(actor): Authed,
    PathId(tenant): PathId<TenantId>,
) -> ApiResult<Response> {
    let months = state.app.statements().list(&actor, &tenant).await?;
    let items: Vec<StatementListItem> = months
        .iter()
        .map(|m| StatementListItem {
            month: m.month.label(),
            status: m.status.as_str(),
        })
        .collect();
    let value = serde_json::to_value(&items)
        .map_err(|e| AppError::from(companyos_core::ServiceError::Internal(e.to_string())))?;
    Ok(ok(value))
}

/// The formats of one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatementFormat {
    Json,
    Csv,
    Pdf,
    Stripe,
    Erp,
}

fn statement_format(query: Option<&str>, headers: &HeaderMap) -> Result<StatementFormat, AppError> {
    match query {
        Some("json") => Ok(StatementFormat::Json),
        Some("csv") => Ok(StatementFormat::Csv),
        Some("pdf") => Ok(StatementFormat::Pdf),
        Some("stripe") => Ok(StatementFormat::Stripe),
        Some("erp") => Ok(StatementFormat::Erp),
        Some(_) => Err(AppError::invalid(
            "format",
            "must be json, csv, pdf, stripe or erp",
        )),
        None => match csv::negotiate(None, headers)? {
            csv::Format::Csv => Ok(StatementFormat::Csv),
            _ => Ok(StatementFormat::Json),
        },
    }
}

pub async fn get(
    State(state): State<AppState>,
    Authed(actor): Authed,
    QueryParams(query): QueryParams<StatementQuery>,
    PathIds(tenant, month): PathIds<TenantId, String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let month = month_of(&month)?;
    let format = statement_format(query.format.as_deref(), &headers)?;
    let document = state.app.statements().get(&actor, &tenant, month).await?;
    let response = match format {
        StatementFormat::Json => {
            let mut response = document.canonical.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        StatementFormat::Csv => csv::response(
            csv::render(&STATEMENT_CSV_COLUMNS, &document.statement.csv_rows()),
            &format!("statement-{tenant}-{month}.csv"),
        ),
        StatementFormat::Stripe => {
            let items = crate::routes::statement_exports::stripe_items(&document)?;
            let value = serde_json::to_value(&items).map_err(|e| {
                AppError::from(companyos_core::ServiceError::Internal(e.to_string()))
            })?;
            ok(value)
        }
        StatementFormat::Erp => csv::response(
            csv::render(
                &crate::routes::statement_exports::ERP_COLUMNS,
                &crate::routes::statement_exports::erp_rows(&document),
            ),
            &format!("erp-{tenant}-{month}.csv"),
        ),
        StatementFormat::Pdf => attachment(
            companyos_core::statements::statement_pdf(&document.statement),
            "application/pdf",
            &format!("statement-{tenant}-{month}.pdf"),
        ),
    };
    let mut response = response;
    if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", document.sha256)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(response)
}

/// Bytes served as a download.
fn attachment(bytes: Vec<u8>, content_type: &'static str, file_name: &str) -> Response {
    let mut response = bytes.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /v1/tenants/{id}/statements/{month}/pack`: the signed statement pack (zip).
pub async fn pack(
    State(state): State<AppState>,
    Authed(actor): Authed,
    PathIds(tenant, month): PathIds<TenantId, String>,
) -> ApiResult<Response> {
    let month = month_of(&month)?;
    let zip = state.app.statements().pack(&actor, &tenant, month).await?;
    Ok(attachment(
        zip,
        "application/zip",
        &format!("statement-pack-{tenant}-{month}.zip"),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureQuery {
    pub from: String,
    pub to: String,
}

/// `GET /v1/tenants/{id}/disclosure?from=&to=`: the signed disclosure pack (zip).
pub async fn disclosure(
    State(state): State<AppState>,
    Authed(actor): Authed,
    QueryParams(query): QueryParams<DisclosureQuery>,
    PathId(tenant): PathId<TenantId>,
) -> ApiResult<Response> {
    let from = parse_day(&query.from, "from").map_err(|e| AppError::invalid("from", e.message))?;
    let to = parse_day(&query.to, "to").map_err(|e| AppError::invalid("to", e.message))?;
    let zip = state
        .app
        .statements()
        .disclosure(&actor, &tenant, from, to)
        .await?;
    Ok(attachment(
        zip,
        "application/zip",
        &format!("disclosure-{tenant}-{}-{}.zip", query.from, query.to),
    ))
}
