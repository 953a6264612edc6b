//! CSV exports (RFC 4180): a header row, then one row per record; fields with commas, quotes or
//! line breaks are quoted, quotes doubled. Cells that a spreadsheet would run as a formula (a
//! lead of `=`, `+`, `-`, `@`, also after spaces or line breaks, or a leading tab or CR) are
//! prefixed with a quote.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Characters that make a spreadsheet read a cell as a formula when they lead it.
const FORMULA_LEADS: [char; 4] = ['=', '+', '-', '@'];
/// What spreadsheets skip before looking for a formula's lead (and tab and CR lead DDE payloads
/// themselves, OWASP "CSV injection").
const FORMULA_PADDING: [char; 4] = [' ', '\t', '\r', '\n'];

/// Whether a cell must be neutralised: a formula lead after any padding, or a cell that starts
/// with a tab or a carriage return. A plain negative number (`-5`, no padding) is left alone.
fn is_formula(field: &str) -> bool {
    let unpadded = field.trim_start_matches(FORMULA_PADDING);
    if field.starts_with(['\t', '\r']) {
        return true;
    }
    if !unpadded.starts_with(FORMULA_LEADS) {
        return false;
    }
    !(unpadded.len() == field.len()
        && field.starts_with('-')
        && field.parse::<f64>().is_ok_and(f64::is_finite))
}

/// The text of a cell as a spreadsheet will show it: a quote before anything it would run.
pub fn guard_formula(field: &str) -> String {
    if is_formula(field) {
        format!("'{field}")
    } else {
        field.to_owned()
    }
}

/// Renders rows under a header, every cell formula-guarded.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let guard_row =
        |row: &[String]| -> Vec<String> { row.iter().map(|f| guard_formula(f)).collect() };
    let header: Vec<String> = header.iter().map(|h| guard_formula(h)).collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    companyos_core::util::csv_text(&header, rows.iter().map(|row| guard_row(row)))
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
pub fn respond<'a, T, W: Serialize>(
    format: Format,
    columns: &[&str],
    items: &'a [T],
    row: impl Fn(&T) -> Vec<String>,
    json: impl Fn(&'a T) -> W,
    file_name: &str,
) -> Response {
    match format {
        Format::Csv => response(
            render(columns, &items.iter().map(row).collect::<Vec<_>>()),
            file_name,
        ),
        Format::Json => crate::routes::ok_reply(items.iter().map(json).collect::<Vec<_>>()),
        Format::Jsonl => ndjson_response(items.iter().map(json)),
    }
}

/// Answers records as NDJSON (`application/x-ndjson`): one JSON object a line, the one meaning
/// of `?format=jsonl` on every route.
pub fn ndjson_response<W: Serialize>(records: impl Iterator<Item = W>) -> Response {
    let mut body = Vec::new();
    for record in records {
        // Wire types have string keys only, so writing one to memory cannot fail.
        if let Ok(line) = serde_json::to_vec(&record) {
            body.extend_from_slice(&line);
            body.push(b'\n');
        }
    }
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
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
    let accepted = crate::media::accepted(headers);
    // The first range we can serve wins; anything else (or nothing) is JSON.
    for essence in &accepted {
        match essence.as_str() {
            "text/csv" => return Ok(Format::Csv),
            "application/x-ndjson" | "application/jsonl" => return Ok(Format::Jsonl),
            "application/json" => return Ok(Format::Json),
            _ => {}
        }
    }
    Ok(Format::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One cell as it is written: guarded, then quoted where needed.
    fn escape(field: &str) -> String {
        let text = render(&["h"], &[vec![field.to_owned()]]);
        text["h\r\n".len()..text.len() - "\r\n".len()].to_owned()
    }

    #[test]
    fn quoting() {
        assert_eq!(
            render(&["a", "b"], &[vec!["x,y".into(), "say \"hi\"".into()]]),
            "a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n"
        );
        assert_eq!(escape("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(escape("-5"), "-5");
        assert_eq!(escape("-1.5e3"), "-1.5e3");
        assert_eq!(escape("-inf"), "'-inf");
        assert_eq!(escape("-1+1|cmd"), "'-1+1|cmd");
        assert_eq!(escape("  =1+1"), "'  =1+1");
        assert_eq!(escape(" -5"), "' -5");
        assert_eq!(escape("\t@SUM(A1)"), "'\t@SUM(A1)");
        assert_eq!(escape("\r\n+1"), "\"'\r\n+1\"");
        assert_eq!(escape("\tplain"), "'\tplain");
        assert_eq!(escape("a=b"), "a=b");
        assert_eq!(escape("  plain"), "  plain");
    }
}
