//! Media types of request bodies and `Accept` headers, matched exactly (type/subtype, case
//! insensitive, parameters such as `; charset=utf-8` allowed), never by prefix or substring:
//! `application/jsonp` is not JSON and `text/csv-schema` is not CSV. The one place that sniffs
//! content types, so the JSON extractor, ingestion and exports cannot drift apart.

use axum::http::{HeaderMap, header};

/// The `type/subtype` of a media type, lower case, without parameters; `None` when the text is
/// not of that shape.
pub fn essence(value: &str) -> Option<String> {
    let essence = value.split(';').next().unwrap_or("").trim();
    let (kind, subtype) = essence.split_once('/')?;
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
    };
    (token(kind) && token(subtype)).then(|| essence.to_ascii_lowercase())
}

/// Whether a media type is JSON: `application/json` or a structured `application/*+json`
/// (RFC 6839) such as `application/merge-patch+json`.
pub fn is_json(essence: &str) -> bool {
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .and_then(|subtype| subtype.strip_suffix("+json"))
            .is_some_and(|name| !name.is_empty() && !name.contains('*'))
}

/// Whether a media type is newline-delimited JSON, under any of its common names.
pub fn is_ndjson(essence: &str) -> bool {
    matches!(
        essence,
        "application/x-ndjson" | "application/ndjson" | "application/jsonl"
    )
}

/// What a request body says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyType {
    /// No `Content-Type`: read as JSON, as before.
    Absent,
    /// The essence of a well-formed `Content-Type`.
    Given(String),
    /// A `Content-Type` that is not a media type at all.
    Malformed,
}

/// The request's `Content-Type`.
pub fn body_type(headers: &HeaderMap) -> BodyType {
    match headers.get(header::CONTENT_TYPE) {
        None => BodyType::Absent,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(essence)
            .map_or(BodyType::Malformed, BodyType::Given),
    }
}

/// The media ranges of an `Accept` header, in order, each by its essence.
pub fn accepted(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(essence)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_matches_only() {
        let json = |text: &str| essence(text).is_some_and(|e| is_json(&e));
        assert!(json("application/json"));
        assert!(json("Application/JSON; charset=utf-8"));
        assert!(json("application/problem+json"));
        assert!(json("application/cloudevents-batch+json"));
        assert!(!json("application/jsonp"));
        assert!(!json("application/json-seq"));
        assert!(!json("application/jsonx; charset=utf-8"));
        assert!(!json("text/json+evil"));
        assert!(!json("application/+json"));
        assert!(!json("application/x-ndjson"));
        assert!(!json("application/json/x"));
        let ndjson = |text: &str| essence(text).is_some_and(|e| is_ndjson(&e));
        assert!(ndjson("application/x-ndjson; charset=utf-8"));
        assert!(!ndjson("application/x-ndjsonp"));
        assert_eq!(essence("nonsense"), None);
    }
}
