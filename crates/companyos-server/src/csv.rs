//! CSV exports (RFC 4180): a header row, then one row per record; fields with commas, quotes or
//! line breaks are quoted, quotes doubled. Cells that a spreadsheet would run as a formula are
//! prefixed with a quote.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

fn escape(field: &str) -> String {
    let guarded = if field.starts_with(['=', '+', '@'])
        || (field.starts_with('-') && field.parse::<f64>().is_err())
    {
        format!("'{field}")
    } else {
        field.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// Renders rows under a header.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    out.push_str(
        &header
            .iter()
            .map(|h| escape(h))
            .collect::<Vec<_>>()
            .join(","),
    );
    out.push_str("\r\n");
    for row in rows {
        out.push_str(&row.iter().map(|f| escape(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

/// A `text/csv` response.
pub fn response(body: String, file_name: &str) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Answers a list of records as CSV (a header row, then a row each) or as a JSON array.
pub fn respond<T>(
    format: Format,
    columns: &[&str],
    items: &[T],
    row: impl Fn(&T) -> Vec<String>,
    json: impl Fn(&T) -> serde_json::Value,
    file_name: &str,
) -> Response {
    match format {
        Format::Csv => response(
            render(columns, &items.iter().map(row).collect::<Vec<_>>()),
            file_name,
        ),
        Format::Json | Format::Jsonl => {
            crate::routes::ok(serde_json::Value::Array(items.iter().map(json).collect()))
        }
    }
}

/// The export format asked for: `?format=` first, then the Accept header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Jsonl,
}

pub fn negotiate(
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Format, crate::error::AppError> {
    match query {
        Some("json") => return Ok(Format::Json),
        Some("csv") => return Ok(Format::Csv),
        Some("jsonl") | Some("ndjson") => return Ok(Format::Jsonl),
        Some(_) => {
            return Err(crate::error::AppError::invalid(
                "format",
                "must be json, csv or jsonl",
            ));
        }
        None => {}
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains("text/csv") {
        Format::Csv
    } else if accept.contains("application/x-ndjson") || accept.contains("application/jsonl") {
        Format::Jsonl
    } else {
        Format::Json
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            render(&["a", "b"], &[vec!["x,y".into(), "say \"hi\"".into()]]),
            "a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(escape("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(escape("-5"), "-5");
    }
}
