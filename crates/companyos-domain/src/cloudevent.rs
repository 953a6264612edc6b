//! CloudEvents 1.0 (JSON format) as OpenMeter takes them, and their mapping to native usage
//! events (CONTRACT §11): each (CloudEvent, meter) pair becomes one usage event whose
//! `event_id` a sender can compute itself. Pure rules; ingestion goes through the native path.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
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

/// One attribute as the sender wrote it.
#[derive(Debug, Clone, Copy)]
enum Attribute<'a> {
    /// Absent or `null`.
    Absent,
    Text(&'a str),
    /// Anything but a string.
    Other,
}

impl<'a> Attribute<'a> {
    fn of(value: Option<&'a Value>) -> Self {
        match value {
            None | Some(Value::Null) => Self::Absent,
            Some(Value::String(text)) => Self::Text(text),
            Some(_) => Self::Other,
        }
    }

    fn of_text(text: Option<&'a str>) -> Self {
        text.map_or(Self::Absent, Self::Text)
    }
}

fn required_string(
    attribute: Attribute<'_>,
    field: &str,
    max_chars: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match attribute {
        Attribute::Text(text) if !text.is_empty() && text.chars().count() <= max_chars => {
            Some(text.to_owned())
        }
        Attribute::Text(_) => {
            errors.push(FieldError::new(
                field,
                format!("must be 1 to {max_chars} characters"),
            ));
            None
        }
        Attribute::Absent => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
        Attribute::Other => {
            errors.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

/// What a meter needs of a CloudEvent, however it was read.
struct Attributes<'a> {
    id: Attribute<'a>,
    source: Attribute<'a>,
    event_type: Attribute<'a>,
    subject: Attribute<'a>,
    specversion: Attribute<'a>,
    time: Attribute<'a>,
    has_data_base64: bool,
    data: Value,
}

/// The plain shape of a CloudEvent, borrowed from its JSON text: string attributes, `data` left
/// as text. Most events have it, and reading it costs no tree of the whole event.
#[derive(Deserialize)]
struct PlainEvent<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    subject: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    specversion: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    data_base64: Present,
}

/// Whether a member was there at all (even as `null`).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Present(true))
    }
}

/// `data` as JSON: a string that holds JSON is read as that JSON; anything unreadable is null.
fn data_json(data: Value) -> Value {
    match data {
        Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::Null),
        value => value,
    }
}

/// [`data_json`] of `data` left as text by the plain reading.
fn data_value(data: Option<&RawValue>) -> Value {
    data.and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
        .map_or(Value::Null, data_json)
}

/// A CloudEvent that was refused before mapping: its `id` when it had a readable one, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedCloudEvent {
    pub id: Option<String>,
    pub errors: Vec<FieldError>,
}

impl CloudEvent {
    /// Parses one CloudEvent of a structured or batch body, naming every bad attribute.
    pub fn parse(value: &Value) -> Result<CloudEvent, Vec<FieldError>> {
        let Value::Object(object) = value else {
            return Err(vec![FieldError::new("event", "must be a JSON object")]);
        };
        let data = object.get("data").cloned().map_or(Value::Null, data_json);
        Self::from_attributes(Attributes {
            id: Attribute::of(object.get("id")),
            source: Attribute::of(object.get("source")),
            event_type: Attribute::of(object.get("type")),
            subject: Attribute::of(object.get("subject")),
            specversion: Attribute::of(object.get("specversion")),
            time: Attribute::of(object.get("time")),
            has_data_base64: object.contains_key("data_base64"),
            data,
        })
    }

    /// Parses one CloudEvent from its JSON text: the plain shape directly, anything else (an
    /// attribute that is no string, a repeated member, not an object) through [`Self::parse`],
    /// which names each problem. Both read the same rules.
    pub fn parse_text(text: &str) -> Result<CloudEvent, RefusedCloudEvent> {
        if let Ok(plain) = serde_json::from_str::<PlainEvent<'_>>(text) {
            let id = plain.id.as_deref().map(str::to_owned);
            return Self::from_attributes(Attributes {
                id: Attribute::of_text(plain.id.as_deref()),
                source: Attribute::of_text(plain.source.as_deref()),
                event_type: Attribute::of_text(plain.event_type.as_deref()),
                subject: Attribute::of_text(plain.subject.as_deref()),
                specversion: Attribute::of_text(plain.specversion.as_deref()),
                time: Attribute::of_text(plain.time.as_deref()),
                has_data_base64: plain.data_base64.0,
                data: data_value(plain.data),
            })
            .map_err(|errors| RefusedCloudEvent { id, errors });
        }
        match serde_json::from_str::<Value>(text) {
            Ok(value) => Self::parse(&value).map_err(|errors| RefusedCloudEvent {
                id: value.get("id").and_then(Value::as_str).map(str::to_owned),
                errors,
            }),
            Err(error) => Err(RefusedCloudEvent {
                id: None,
                errors: vec![FieldError::new(
                    "event",
                    format!("is not valid JSON: {error}"),
                )],
            }),
        }
    }

    fn from_attributes(attributes: Attributes<'_>) -> Result<CloudEvent, Vec<FieldError>> {
        let mut errors = Vec::new();
        let id = required_string(attributes.id, "id", ATTRIBUTE_CHARS_MAX, &mut errors);
        let source = required_string(
            attributes.source,
            "source",
            ATTRIBUTE_CHARS_MAX,
            &mut errors,
        );
        let event_type = required_string(
            attributes.event_type,
            "type",
            ATTRIBUTE_CHARS_MAX,
            &mut errors,
        );
        let subject = required_string(
            attributes.subject,
            "subject",
            ATTRIBUTE_VALUE_CHARS_MAX,
            &mut errors,
        );
        match attributes.specversion {
            Attribute::Text("1.0") => {}
            Attribute::Absent => errors.push(FieldError::new("specversion", "is required")),
            _ => errors.push(FieldError::new("specversion", "must be \"1.0\"")),
        }
        let time = match attributes.time {
            Attribute::Absent => None,
            Attribute::Text(text) => match parse_rfc3339(text, "time") {
                Ok(time) => Some(time),
                Err(error) => {
                    errors.push(error);
                    None
                }
            },
            Attribute::Other => {
                errors.push(FieldError::new("time", "must be an RFC 3339 string"));
                None
            }
        };
        if attributes.has_data_base64 {
            errors.push(FieldError::new(
                "data_base64",
                "is not supported; send the data as JSON in `data`",
            ));
        }
        match (id, source, event_type, subject) {
            (Some(id), Some(source), Some(event_type), Some(subject)) if errors.is_empty() => {
                Ok(CloudEvent {
                    id,
                    source,
                    event_type,
                    subject,
                    time,
                    data: attributes.data,
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
    let mut hex_digits = [0u8; 40];
    // 20 bytes always fit 40 hex digits, which are ASCII.
    let _ = hex::encode_to_slice(&digest[..20], &mut hex_digits);
    let mut id = String::with_capacity(43);
    id.push_str("ce-");
    id.push_str(std::str::from_utf8(&hex_digits).unwrap_or_default());
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

/// The native usage event of a CloudEvent for one meter, member for member (CONTRACT §11).
#[derive(Serialize)]
struct NativeEvent<'a> {
    event_id: String,
    tenant_id: &'a str,
    service: &'a str,
    metric: &'a str,
    quantity: Value,
    unit: &'a str,
    timestamp: String,
    request_id: Cow<'a, str>,
    attributes: BTreeMap<&'a str, Cow<'a, str>>,
}

/// The native usage event (its JSON text, as `POST /v1/events` takes it) of a CloudEvent for a
/// meter, for `tenant`; `now` stands in for an absent `time`.
pub fn usage_event(
    event: &CloudEvent,
    meter: &Meter,
    tenant: &TenantId,
    now: OffsetDateTime,
) -> Result<String, FieldError> {
    let mut attributes = BTreeMap::new();
    attributes.insert(SUBJECT_ATTRIBUTE, Cow::Borrowed(event.subject.as_str()));
    for (name, path) in &meter.group_by {
        if let Some(text) = path.select(&event.data).and_then(attribute_text) {
            if text.chars().count() > ATTRIBUTE_VALUE_CHARS_MAX {
                return Err(FieldError::new(
                    format!("data{}", path.as_str().trim_start_matches('$')),
                    format!("is over {ATTRIBUTE_VALUE_CHARS_MAX} characters (groupBy {name})"),
                ));
            }
            attributes.insert(name.as_str(), Cow::Owned(text));
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
            attributes.insert(UNIQUE_VALUE_ATTRIBUTE, Cow::Owned(text));
            Value::String("1".to_owned())
        }
        (_, Some(path)) => quantity_of(path.select(&event.data), path.as_str())?,
    };
    let request_id = if RequestId::parse(&event.id).is_ok() {
        Cow::Borrowed(event.id.as_str())
    } else {
        Cow::Owned(usage_event_id(&event.source, &event.id, ""))
    };
    let native = NativeEvent {
        event_id: usage_event_id(&event.source, &event.id, meter.slug.as_str()),
        tenant_id: tenant.as_str(),
        service: meter.service.as_str(),
        metric: meter.slug.as_str(),
        quantity,
        unit: meter.unit.as_str(),
        timestamp: format_rfc3339(event.time.unwrap_or(now)),
        request_id,
        attributes,
    };
    serde_json::to_string(&native).map_err(|e| FieldError::new("event", e.to_string()))
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
    fn the_plain_and_the_general_reading_agree() {
        let plain = r#"{"specversion":"1.0","id":"e\u0031","source":"svc","type":"prompt",
            "subject":"acme","time":"2026-03-02T12:00:00Z","data":"{\"tokens\": 5}"}"#;
        let value: Value = serde_json::from_str(plain).expect("JSON");
        let event = CloudEvent::parse_text(plain).expect("valid");
        assert_eq!(Ok(event.clone()), CloudEvent::parse(&value));
        assert_eq!(
            (event.id.as_str(), &event.data),
            ("e1", &json!({"tokens": 5}))
        );
        // Not the plain shape: a number id, a repeated member, `data_base64` even as null.
        for (text, field) in [
            (
                r#"{"specversion":"1.0","id":7,"source":"s","type":"t","subject":"a"}"#,
                "id",
            ),
            (
                r#"{"specversion":"1.0","id":"1","source":"s","type":"t","subject":"a","data_base64":null}"#,
                "data_base64",
            ),
            (
                r#"{"specversion":"1.0","id":"1","id":"2","source":"s","type":"t"}"#,
                "subject",
            ),
            ("[1]", "event"),
        ] {
            let refused = CloudEvent::parse_text(text).expect_err(text);
            assert_eq!(refused.errors[0].field, field, "{text}");
        }
        let refused = CloudEvent::parse_text(r#"{"id":"x","specversion":"0.3"}"#).expect_err("bad");
        assert_eq!(refused.id.as_deref(), Some("x"));
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
        let text = usage_event(&event, &meter, &tenant, OffsetDateTime::UNIX_EPOCH).expect("ok");
        let usage: Value = serde_json::from_str(&text).expect("JSON");
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
