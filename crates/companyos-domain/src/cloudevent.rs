//! CloudEvents 1.0 (JSON format) as OpenMeter takes them, and their mapping to native usage
//! events (CONTRACT §11): each (CloudEvent, meter) pair becomes one usage event whose
//! `event_id` a sender can compute itself. Pure rules; ingestion goes through the native path.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::FieldError;
use crate::ids::{RequestId, TenantId};
use crate::meter::{Meter, MeterAggregation, SUBJECT_ATTRIBUTE, UNIQUE_VALUE_ATTRIBUTE};
use crate::time_util::{format_rfc3339, parse_rfc3339};
use crate::usage::{ATTRIBUTE_VALUE_CHARS_MAX, Quantity};

/// `id`, `source`, `type` are at most this many characters.
pub const ATTRIBUTE_CHARS_MAX: usize = 1024;

/// A well-formed CloudEvent: what a meter needs of it.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    pub id: String,
    pub source: String,
    pub event_type: String,
    pub subject: String,
    pub time: Option<OffsetDateTime>,
    /// The JSON `data` (a string that holds JSON is read as that JSON); `Null` when absent.
    pub data: Value,
}

fn required_string(
    object: &Map<String, Value>,
    field: &str,
    max_chars: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match object.get(field) {
        Some(Value::String(text)) if !text.is_empty() && text.chars().count() <= max_chars => {
            Some(text.clone())
        }
        Some(Value::String(_)) => {
            errors.push(FieldError::new(
                field,
                format!("must be 1 to {max_chars} characters"),
            ));
            None
        }
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

impl CloudEvent {
    /// Parses one CloudEvent of a structured or batch body, naming every bad attribute.
    pub fn parse(value: &Value) -> Result<CloudEvent, Vec<FieldError>> {
        let Value::Object(object) = value else {
            return Err(vec![FieldError::new("event", "must be a JSON object")]);
        };
        let mut errors = Vec::new();
        let id = required_string(object, "id", ATTRIBUTE_CHARS_MAX, &mut errors);
        let source = required_string(object, "source", ATTRIBUTE_CHARS_MAX, &mut errors);
        let event_type = required_string(object, "type", ATTRIBUTE_CHARS_MAX, &mut errors);
        let subject = required_string(object, "subject", ATTRIBUTE_VALUE_CHARS_MAX, &mut errors);
        match object.get("specversion") {
            Some(Value::String(version)) if version == "1.0" => {}
            None | Some(Value::Null) => errors.push(FieldError::new("specversion", "is required")),
            Some(_) => errors.push(FieldError::new("specversion", "must be \"1.0\"")),
        }
        let time = match object.get("time") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => match parse_rfc3339(text, "time") {
                Ok(time) => Some(time),
                Err(error) => {
                    errors.push(error);
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new("time", "must be an RFC 3339 string"));
                None
            }
        };
        if object.contains_key("data_base64") {
            errors.push(FieldError::new(
                "data_base64",
                "is not supported; send the data as JSON in `data`",
            ));
        }
        let data = match object.get("data") {
            None => Value::Null,
            Some(Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
            Some(data) => data.clone(),
        };
        match (id, source, event_type, subject) {
            (Some(id), Some(source), Some(event_type), Some(subject)) if errors.is_empty() => {
                Ok(CloudEvent {
                    id,
                    source,
                    event_type,
                    subject,
                    time,
                    data,
                })
            }
            _ => Err(errors),
        }
    }
}

/// The `event_id` of the usage event of (CloudEvent, meter): `"ce-"` and the first 40 lower-case
/// hex digits of SHA-256(source "\n" id "\n" slug).
pub fn usage_event_id(source: &str, id: &str, slug: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(source.as_bytes());
    hasher.update(b"\n");
    hasher.update(id.as_bytes());
    hasher.update(b"\n");
    hasher.update(slug.as_bytes());
    let digest = hasher.finalize();
    let mut id = String::with_capacity(43);
    id.push_str("ce-");
    for byte in &digest[..20] {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// A group-by or unique value as the attribute text: strings as they are, numbers and booleans
/// in their JSON spelling; `None` for null, objects and arrays.
fn attribute_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The quantity of a SUM/AVG/MIN/MAX/LATEST meter's event: a number or a numeric string.
fn quantity_of(value: Option<&Value>, path: &str) -> Result<Value, FieldError> {
    let field = format!("data{}", path.trim_start_matches('$'));
    match value {
        Some(Value::Number(number)) => Quantity::parse_number(number)
            .map(|_| Value::Number(number.clone()))
            .map_err(|message| FieldError::new(field, message)),
        Some(Value::String(text)) => Quantity::parse_text(text.trim())
            .map(|quantity| Value::String(quantity.to_string()))
            .map_err(|message| FieldError::new(field, message)),
        None | Some(Value::Null) => Err(FieldError::new(
            field,
            format!("is missing: the meter's valueProperty is {path}"),
        )),
        Some(_) => Err(FieldError::new(
            field,
            "must be a number or a numeric string",
        )),
    }
}

/// The native usage event (JSON, as `POST /v1/events` takes it) of a CloudEvent for a meter,
/// for `tenant`; `now` stands in for an absent `time`.
pub fn usage_event(
    event: &CloudEvent,
    meter: &Meter,
    tenant: &TenantId,
    now: OffsetDateTime,
) -> Result<Value, FieldError> {
    let mut attributes = Map::new();
    attributes.insert(
        SUBJECT_ATTRIBUTE.to_owned(),
        Value::String(event.subject.clone()),
    );
    for (name, path) in &meter.group_by {
        if let Some(text) = path.select(&event.data).and_then(attribute_text) {
            if text.chars().count() > ATTRIBUTE_VALUE_CHARS_MAX {
                return Err(FieldError::new(
                    format!("data{}", path.as_str().trim_start_matches('$')),
                    format!("is over {ATTRIBUTE_VALUE_CHARS_MAX} characters (groupBy {name})"),
                ));
            }
            attributes.insert(name.clone(), Value::String(text));
        }
    }
    let quantity = match (meter.aggregation, &meter.value_property) {
        (MeterAggregation::Count, _) | (_, None) => Value::String("1".to_owned()),
        (MeterAggregation::UniqueCount, Some(path)) => {
            let field = format!("data{}", path.as_str().trim_start_matches('$'));
            let text = path
                .select(&event.data)
                .and_then(attribute_text)
                .filter(|t| t.chars().count() <= ATTRIBUTE_VALUE_CHARS_MAX)
                .ok_or_else(|| {
                    FieldError::new(
                        field,
                        format!("must be a string or number of at most {ATTRIBUTE_VALUE_CHARS_MAX} characters"),
                    )
                })?;
            attributes.insert(UNIQUE_VALUE_ATTRIBUTE.to_owned(), Value::String(text));
            Value::String("1".to_owned())
        }
        (_, Some(path)) => quantity_of(path.select(&event.data), path.as_str())?,
    };
    let request_id = if RequestId::parse(&event.id).is_ok() {
        event.id.clone()
    } else {
        usage_event_id(&event.source, &event.id, "")
    };
    let mut object = Map::new();
    object.insert(
        "event_id".to_owned(),
        Value::String(usage_event_id(
            &event.source,
            &event.id,
            meter.slug.as_str(),
        )),
    );
    object.insert(
        "tenant_id".to_owned(),
        Value::String(tenant.as_str().to_owned()),
    );
    object.insert(
        "service".to_owned(),
        Value::String(meter.service.as_str().to_owned()),
    );
    object.insert(
        "metric".to_owned(),
        Value::String(meter.slug.as_str().to_owned()),
    );
    object.insert("quantity".to_owned(), quantity);
    object.insert(
        "unit".to_owned(),
        Value::String(meter.unit.as_str().to_owned()),
    );
    object.insert(
        "timestamp".to_owned(),
        Value::String(format_rfc3339(event.time.unwrap_or(now))),
    );
    object.insert("request_id".to_owned(), Value::String(request_id));
    object.insert("attributes".to_owned(), Value::Object(attributes));
    Ok(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::RawMeter;
    use serde_json::json;

    #[test]
    fn the_event_id_formula() {
        // sha256("svc\n1\ntokens") computed independently (Python hashlib).
        let id = usage_event_id("svc", "1", "tokens");
        assert_eq!(id, "ce-d0e5413144647ad8c58e61e5aa80b1f930e5bc88");
        assert_ne!(id, usage_event_id("other", "1", "tokens"));
    }

    #[test]
    fn a_cloudevent_names_every_missing_attribute() {
        let errors = CloudEvent::parse(&json!({"specversion": "0.3", "time": "yesterday"}))
            .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["id", "source", "type", "subject", "specversion", "time"]
        );
    }

    #[test]
    fn maps_value_group_by_and_subject() {
        let meter = Meter::parse(&RawMeter {
            slug: Some("tokens".into()),
            event_type: Some("prompt".into()),
            aggregation: Some("SUM".into()),
            value_property: Some("$.tokens".into()),
            group_by: [("model".to_owned(), "$.model".to_owned())].into(),
            ..RawMeter::default()
        })
        .expect("valid");
        let event = CloudEvent::parse(&json!({
            "specversion": "1.0", "id": "e1", "source": "svc", "type": "prompt",
            "subject": "acme", "time": "2026-03-02T12:00:00Z",
            "data": {"tokens": "12.50", "model": "gpt"},
        }))
        .expect("valid");
        let tenant = TenantId::parse("acme").expect("id");
        let usage = usage_event(&event, &meter, &tenant, OffsetDateTime::UNIX_EPOCH).expect("ok");
        assert_eq!(usage["quantity"], json!("12.5"));
        assert_eq!(
            usage["attributes"],
            json!({"om.subject": "acme", "model": "gpt"})
        );
        assert_eq!(
            usage["event_id"],
            json!(usage_event_id("svc", "e1", "tokens"))
        );
        let parsed = crate::usage::UsageEvent::parse(&usage).expect("a valid usage event");
        assert_eq!(parsed.metric.as_str(), "tokens");
    }
}
