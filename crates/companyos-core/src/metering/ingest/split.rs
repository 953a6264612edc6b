//! Splitting a request body into its events' own texts, each parsed on its own: a JSON array
//! or NDJSON.

use super::RawEvent;
use crate::error::ServiceError;

/// Splits a request body into events: a JSON array, or NDJSON (one object per line).
pub fn split_body(
    body: &[u8],
    ndjson: bool,
    events_max: usize,
) -> Result<Vec<RawEvent>, ServiceError> {
    if ndjson {
        let text =
            std::str::from_utf8(body).map_err(|_| ServiceError::invalid("body", "is not UTF-8"))?;
        let mut events = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if events.len() == events_max {
                return Err(ServiceError::TooLarge(format!(
                    "a batch holds at most {events_max} events"
                )));
            }
            events.push(RawEvent::parse(line));
        }
        return Ok(events);
    }
    // Split the array into each element's own text first (no re-serialisation), then parse each
    // element strictly: duplicate keys are refused per event, like every other event rule.
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(body).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data {
            ServiceError::invalid(
                "body",
                "must be a JSON array of events (or application/x-ndjson)",
            )
        } else {
            ServiceError::invalid("body", format!("is not valid JSON: {e}"))
        }
    })?;
    if items.len() > events_max {
        return Err(ServiceError::TooLarge(format!(
            "a batch holds at most {events_max} events, this one has {}",
            items.len()
        )));
    }
    Ok(items
        .iter()
        .map(|item| RawEvent::parse(item.get()))
        .collect())
}
