//! Usage events (CONTRACT §5): parsing and validation of every field rule, exact quantities, the
//! canonical form and digest. A parsed [`UsageEvent`] is proof that the event is well formed;
//! what needs the store (tenant exists, source registered, signature key, windows) is checked by
//! the ingestion service.

use std::fmt;
use std::str::FromStr;

use companyos_ledger::jcs;
use companyos_ledger::usage_event::{self, EventDigest};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::{Collector, FieldError, ValidationErrors};
use crate::ids::{EventId, MetricName, RequestId, ServiceName, SourceId, TenantId, TraceId, Unit};
use crate::time_util::parse_rfc3339;

/// Quantities are below 10^15 ...
pub const QUANTITY_INTEGER_DIGITS_MAX: u32 = 15;
/// ... with at most 12 digits after the decimal point.
pub const QUANTITY_SCALE_MAX: u32 = 12;
/// `source_seq` stays an exact integer in every JSON implementation (2^53 - 1).
pub const SOURCE_SEQ_MAX: u64 = (1 << 53) - 1;
/// Upper bound on the size of one event's JSON, in bytes.
pub const EVENT_BYTES_MAX: usize = 16 * 1024;

/// The fields a usage event may have.
pub const FIELDS: [&str; 14] = [
    "event_id",
    "tenant_id",
    "service",
    "metric",
    "quantity",
    "unit",
    "timestamp",
    "request_id",
    "trace_id",
    "source",
    "source_seq",
    "source_signature",
    "digest",
    "attributes",
];

/// At most this many attributes (string labels) per event.
pub const ATTRIBUTES_MAX: usize = 16;
/// An attribute key is 1 to this many bytes ...
pub const ATTRIBUTE_KEY_BYTES_MAX: usize = 64;
/// ... and its value a string of at most this many characters.
pub const ATTRIBUTE_VALUE_CHARS_MAX: usize = 256;

/// Exact decimal addition: the sum, or `None` when it cannot be held exactly by a `Decimal`
/// (a 96-bit mantissa and a scale of at most 28). `rust_decimal`'s `checked_add` rounds away
/// fractional digits when the mantissa overflows instead of failing, so the sum is computed on
/// the mantissas aligned to the larger scale in `i128`, where nothing rounds; only trailing
/// zeros of the fraction, which change no value, are dropped to make it fit.
pub fn exact_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    aligned_add(a, b).or_else(|| {
        // Aligning can overflow `i128` only because of an operand's trailing zeros (`1e28`
        // plus `1.000...0` at scale 28); without them, an overflow means the sum has more
        // digits than a `Decimal` holds.
        let (a_short, b_short) = (a.normalize(), b.normalize());
        if (a_short.scale(), b_short.scale()) == (a.scale(), b.scale()) {
            return None;
        }
        aligned_add(a_short, b_short)
    })
}

fn aligned_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    let scale = a.scale().max(b.scale());
    let align = |d: Decimal| -> Option<i128> {
        d.mantissa()
            .checked_mul(10_i128.checked_pow(scale - d.scale())?)
    };
    let mut mantissa = align(a)?.checked_add(align(b)?)?;
    let mut scale = scale;
    let mantissa_max = Decimal::MAX.mantissa().unsigned_abs();
    while mantissa.unsigned_abs() > mantissa_max && scale > 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    Decimal::try_from_i128_with_scale(mantissa, scale).ok()
}

/// A non-negative exact decimal below 10^15 with at most 12 fractional digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(Decimal);

impl Quantity {
    pub const ZERO: Quantity = Quantity(Decimal::ZERO);

    pub fn from_decimal(value: Decimal) -> Result<Self, String> {
        if value.is_sign_negative() && !value.is_zero() {
            return Err("must not be negative".to_owned());
        }
        if value.scale() > QUANTITY_SCALE_MAX {
            let normalized = value.normalize();
            if normalized.scale() > QUANTITY_SCALE_MAX {
                return Err(format!(
                    "must have at most {QUANTITY_SCALE_MAX} digits after the decimal point"
                ));
            }
            return Self::from_decimal(normalized);
        }
        if value >= Decimal::from(10_i64.pow(QUANTITY_INTEGER_DIGITS_MAX)) {
            return Err("must be below 10^15".to_owned());
        }
        Ok(Self(value.abs()))
    }

    /// Parses the decimal text of a JSON string: digits with an optional fraction.
    pub fn parse_text(text: &str) -> Result<Self, String> {
        let (integer, fraction) = text.split_once('.').unwrap_or((text, ""));
        let well_formed = !integer.is_empty()
            && integer.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit())
            && (text.contains('.') != fraction.is_empty());
        if !well_formed {
            return Err("must be a non-negative decimal such as \"12.5\"".to_owned());
        }
        if integer.trim_start_matches('0').len() > QUANTITY_INTEGER_DIGITS_MAX as usize {
            return Err("must be below 10^15".to_owned());
        }
        if fraction.trim_end_matches('0').len() > QUANTITY_SCALE_MAX as usize {
            return Err(format!(
                "must have at most {QUANTITY_SCALE_MAX} digits after the decimal point"
            ));
        }
        let value = Decimal::from_str(text).map_err(|_| "is not a decimal".to_owned())?;
        Self::from_decimal(value)
    }

    /// Parses a JSON number, which must keep its exact value through its canonical (double)
    /// form: otherwise the signed digest would describe a different quantity.
    pub fn parse_number(number: &serde_json::Number) -> Result<Self, String> {
        let text = number.to_string();
        if text.starts_with('-') && text != "-0" {
            return Err("must not be negative".to_owned());
        }
        let value = Decimal::from_str(&text)
            .or_else(|_| Decimal::from_scientific(&text))
            .map_err(|_| "is out of range".to_owned())?;
        let quantity = Self::from_decimal(value)?;
        let canonical = jcs::canonical_number(number).map_err(|e| e.to_string())?;
        let canonical_value = Decimal::from_str(&canonical)
            .or_else(|_| Decimal::from_scientific(&canonical))
            .map_err(|_| "is out of range".to_owned())?;
        if canonical_value.normalize() != value.normalize() {
            return Err(
                "is not exactly representable as a JSON number; send it as a decimal string"
                    .to_owned(),
            );
        }
        Ok(quantity)
    }

    pub fn as_decimal(&self) -> Decimal {
        self.0
    }

    /// The sum, or `None` when it would leave the range of exact decimals.
    pub fn checked_add(self, other: Quantity) -> Option<Decimal> {
        self.0.checked_add(other.0)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.normalize())
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Quantity({self})")
    }
}

/// A well-formed usage event, with its canonical form and digest.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageEvent {
    pub event_id: EventId,
    pub tenant_id: TenantId,
    pub service: ServiceName,
    pub metric: MetricName,
    pub quantity: Quantity,
    pub unit: Unit,
    pub timestamp: OffsetDateTime,
    pub request_id: Option<RequestId>,
    pub trace_id: Option<TraceId>,
    pub source: Option<SourceId>,
    pub source_seq: Option<u64>,
    pub source_signature: Option<String>,
    /// RFC 8785 form of the event without `source_signature` and `digest`.
    pub canonical: String,
    pub digest: EventDigest,
}

/// An event that failed validation: what could be read of it, and every problem.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidEvent {
    pub tenant_id: Option<TenantId>,
    /// The `event_id` as sent, when it was a string (even an invalid one), for the result row.
    pub event_id: Option<String>,
    /// The UTC timestamp, when it parsed: the day the rejection is reported on.
    pub timestamp: Option<OffsetDateTime>,
    pub errors: ValidationErrors,
}

fn string_field<'a>(
    object: &'a Map<String, Value>,
    field: &str,
    required: bool,
) -> Result<Option<&'a str>, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(FieldError::new(field, "is required")),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(FieldError::new(field, "must be a string")),
    }
}

fn required<T>(
    collector: &mut Collector,
    object: &Map<String, Value>,
    field: &str,
    parse: impl FnOnce(&str) -> Result<T, FieldError>,
) -> Option<T> {
    let text = collector.take(string_field(object, field, true))??;
    collector.take(parse(text))
}

fn optional<T>(
    collector: &mut Collector,
    object: &Map<String, Value>,
    field: &str,
    parse: impl FnOnce(&str) -> Result<T, FieldError>,
) -> Option<T> {
    let text = collector.take(string_field(object, field, false))??;
    collector.take(parse(text))
}

fn parse_quantity(value: Option<&Value>) -> Result<Quantity, FieldError> {
    let result = match value {
        None | Some(Value::Null) => Err("is required".to_owned()),
        Some(Value::String(text)) => Quantity::parse_text(text),
        Some(Value::Number(number)) => Quantity::parse_number(number),
        Some(_) => Err("must be a decimal string or a number".to_owned()),
    };
    result.map_err(|message| FieldError::new("quantity", message))
}

fn parse_source_seq(value: &Value) -> Result<u64, FieldError> {
    let error = || {
        FieldError::new(
            "source_seq",
            format!("must be an integer from 1 to {SOURCE_SEQ_MAX}"),
        )
    };
    let Value::Number(number) = value else {
        return Err(error());
    };
    source_seq_of_digits(&number.to_string()).ok_or_else(error)
}

/// The `source_seq` a JSON integer literal of plain digits stands for, when it is in range
/// (shared with the fast path of [`UsageEvent::parse_bytes`]).
pub(crate) fn source_seq_of_digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>()
        .ok()
        .filter(|seq| (1..=SOURCE_SEQ_MAX).contains(seq))
}

fn check_attributes(value: &Value) -> Result<(), FieldError> {
    let Value::Object(map) = value else {
        return Err(FieldError::new(
            "attributes",
            "must be an object of strings",
        ));
    };
    if map.len() > ATTRIBUTES_MAX {
        return Err(FieldError::new(
            "attributes",
            format!("must have at most {ATTRIBUTES_MAX} entries"),
        ));
    }
    for (key, value) in map {
        let key_ok = !key.is_empty() && key.len() <= ATTRIBUTE_KEY_BYTES_MAX;
        let value_ok =
            matches!(value, Value::String(s) if s.chars().count() <= ATTRIBUTE_VALUE_CHARS_MAX);
        if !key_ok || !value_ok {
            return Err(FieldError::new(
                format!("attributes.{key}"),
                "keys must be 1 to 64 bytes and values strings of at most 256 characters",
            ));
        }
    }
    Ok(())
}

/// An event's source, its sequence number and its signature; the last two require the first.
fn source_fields(
    c: &mut Collector,
    object: &Map<String, Value>,
) -> (Option<SourceId>, Option<u64>, Option<String>) {
    let source = optional(c, object, "source", SourceId::parse);
    let source_present = !matches!(object.get("source"), None | Some(Value::Null));
    let source_seq = match object.get("source_seq") {
        None | Some(Value::Null) => None,
        Some(value) => c.take(parse_source_seq(value)),
    };
    if source_seq.is_some() && !source_present {
        c.push(FieldError::new("source_seq", "requires source"));
    }
    let source_signature = optional(c, object, "source_signature", |t| Ok(t.to_owned()));
    if source_signature.is_some() && !source_present {
        c.push(FieldError::new("source_signature", "requires source"));
    }
    (source, source_seq, source_signature)
}

/// An event's canonical form and its digest, which must equal a `digest` the event claims.
fn canonical_and_digest(
    c: &mut Collector,
    object: &Map<String, Value>,
) -> (Option<String>, Option<EventDigest>) {
    let claimed_digest = optional(c, object, "digest", |t| {
        EventDigest::from_str(t).map_err(|e| FieldError::new("digest", e.to_string()))
    });
    let canonical = c.take(
        usage_event::canonical_form(object).map_err(|e| FieldError::new("event", e.to_string())),
    );
    let digest = canonical
        .as_ref()
        .map(|canonical| EventDigest::of_canonical(canonical.as_bytes()));
    if let (Some(claimed), Some(actual)) = (claimed_digest, digest) {
        if claimed != actual {
            c.push(FieldError::new(
                "digest",
                format!("does not match the canonical form (expected {actual})"),
            ));
        }
    }
    (canonical, digest)
}

impl UsageEvent {
    /// Parses one event from its JSON value, checking every rule of CONTRACT §5 that does not
    /// need the store. All problems are reported, each naming its field.
    pub fn parse(value: &Value) -> Result<UsageEvent, InvalidEvent> {
        let Value::Object(object) = value else {
            return Err(InvalidEvent {
                tenant_id: None,
                event_id: None,
                timestamp: None,
                errors: ValidationErrors::single("event", "must be a JSON object"),
            });
        };
        let mut c = Collector::new();
        for key in object.keys() {
            if !FIELDS.contains(&key.as_str()) {
                c.push(FieldError::new(key.as_str(), "is not a usage event field"));
            }
        }
        let event_id = required(&mut c, object, "event_id", EventId::parse);
        let tenant_id = required(&mut c, object, "tenant_id", |t| {
            TenantId::parse_field(t, "tenant_id")
        });
        let service = required(&mut c, object, "service", ServiceName::parse);
        let metric = required(&mut c, object, "metric", MetricName::parse);
        let quantity = c.take(parse_quantity(object.get("quantity")));
        let unit = required(&mut c, object, "unit", Unit::parse);
        let timestamp = required(&mut c, object, "timestamp", |t| {
            parse_rfc3339(t, "timestamp")
        });
        let request_id = optional(&mut c, object, "request_id", RequestId::parse);
        let trace_id = optional(&mut c, object, "trace_id", TraceId::parse);
        let present = |key: &str| !matches!(object.get(key), None | Some(Value::Null));
        if !present("request_id") && !present("trace_id") {
            c.push(FieldError::new(
                "request_id",
                "request_id or trace_id is required",
            ));
        }
        let (source, source_seq, source_signature) = source_fields(&mut c, object);
        if let Some(attributes) = object.get("attributes") {
            c.take(check_attributes(attributes));
        }
        let (canonical, digest) = canonical_and_digest(&mut c, object);
        let invalid = |errors: ValidationErrors, tenant_id, timestamp| InvalidEvent {
            tenant_id,
            event_id: object
                .get("event_id")
                .and_then(Value::as_str)
                .map(|s| s.chars().take(128).collect()),
            timestamp,
            errors,
        };
        if let Err(errors) = c.finish() {
            return Err(invalid(errors, tenant_id, timestamp));
        }
        match (
            event_id, tenant_id, service, metric, quantity, unit, timestamp, canonical, digest,
        ) {
            (
                Some(event_id),
                Some(tenant_id),
                Some(service),
                Some(metric),
                Some(quantity),
                Some(unit),
                Some(timestamp),
                Some(canonical),
                Some(digest),
            ) => Ok(UsageEvent {
                event_id,
                tenant_id,
                service,
                metric,
                quantity,
                unit,
                timestamp,
                request_id,
                trace_id,
                source,
                source_seq,
                source_signature,
                canonical,
                digest,
            }),
            (_, tenant_id, _, _, _, _, timestamp, _, _) => Err(invalid(
                ValidationErrors::single("event", "is incomplete"),
                tenant_id,
                timestamp,
            )),
        }
    }

    /// Parses an event from raw JSON bytes, refusing duplicate keys.
    ///
    /// Events of the common shape (a flat object of known fields, strings without escapes) take
    /// a single-pass scanner (`usage_fast`) that builds no `Value` tree; everything else, and
    /// every invalid event, takes [`UsageEvent::parse_bytes_slow`]. Both give the same result.
    pub fn parse_bytes(bytes: &[u8]) -> Result<UsageEvent, InvalidEvent> {
        match crate::usage_fast::parse_event(bytes) {
            Some(event) => Ok(event),
            None => Self::parse_bytes_slow(bytes),
        }
    }

    /// The fast path of [`UsageEvent::parse_bytes`] alone: the event when the scanner handles
    /// the input, `None` when it declines it. Public for the differential tests and fuzzing.
    #[doc(hidden)]
    pub fn parse_bytes_fast(bytes: &[u8]) -> Option<UsageEvent> {
        crate::usage_fast::parse_event(bytes)
    }

    /// The general path of [`UsageEvent::parse_bytes`]: the strict JSON reader into a `Value`,
    /// then [`UsageEvent::parse`]. It handles every input and writes every error message.
    pub fn parse_bytes_slow(bytes: &[u8]) -> Result<UsageEvent, InvalidEvent> {
        if bytes.len() > EVENT_BYTES_MAX {
            return Err(InvalidEvent {
                tenant_id: None,
                event_id: None,
                timestamp: None,
                errors: ValidationErrors::single(
                    "event",
                    format!("must be at most {EVENT_BYTES_MAX} bytes"),
                ),
            });
        }
        match jcs::parse_strict(bytes) {
            Ok(value) => Self::parse(&value),
            Err(error) => Err(InvalidEvent {
                tenant_id: None,
                event_id: None,
                timestamp: None,
                errors: ValidationErrors::single("event", error.to_string()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "event_id": "evt-1",
            "tenant_id": "acme",
            "service": "api",
            "metric": "requests",
            "quantity": "12.5",
            "unit": "request",
            "timestamp": "2026-03-01T12:00:00Z",
            "request_id": "req-1"
        })
    }

    #[test]
    fn a_valid_event_parses() {
        let event = UsageEvent::parse(&base()).expect("valid event");
        assert_eq!(event.quantity.to_string(), "12.5");
        assert!(event.canonical.starts_with("{\"event_id\":\"evt-1\""));
        assert!(event.digest.to_string().starts_with("sha256:"));
    }

    fn first_error(value: &Value) -> String {
        match UsageEvent::parse(value) {
            Ok(_) => "ok".to_owned(),
            Err(invalid) => invalid.errors.errors()[0].field.clone(),
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(&str, Value)> = vec![
            ("event_id", json!("a b")),
            ("tenant_id", json!("X")),
            ("service", json!("Api")),
            ("metric", json!("9x")),
            ("quantity", json!("-1")),
            ("quantity", json!("1e3")),
            ("quantity", json!(true)),
            ("unit", json!("")),
            ("timestamp", json!("yesterday")),
            ("trace_id", json!("ABC")),
        ];
        for (field, bad) in cases {
            let mut value = base();
            value[field] = bad;
            if field == "trace_id" {
                assert_eq!(first_error(&value), "trace_id");
            } else {
                assert_eq!(first_error(&value), field, "{field}");
            }
        }
        let mut value = base();
        value.as_object_mut().map(|o| o.remove("request_id"));
        assert_eq!(first_error(&value), "request_id");
        let mut value = base();
        value["source_seq"] = json!(3);
        assert_eq!(first_error(&value), "source_seq");
        let mut value = base();
        value["colour"] = json!("red");
        assert_eq!(first_error(&value), "colour");
        let mut value = base();
        value["digest"] = json!(format!("sha256:{}", "0".repeat(64)));
        assert_eq!(first_error(&value), "digest");
    }

    #[test]
    fn numbers_are_exact_or_refused() {
        let mut value = base();
        value["quantity"] = json!(12.5);
        assert!(UsageEvent::parse(&value).is_ok());
        let number: serde_json::Number = "999999999999999.9".parse().expect("number");
        assert!(Quantity::parse_number(&number).is_ok());
        let number: serde_json::Number = "123456789.123456789".parse().expect("number");
        assert!(Quantity::parse_number(&number).is_err());
        let number: serde_json::Number = "1.5e2".parse().expect("number");
        assert_eq!(
            Quantity::parse_number(&number).map(|q| q.to_string()),
            Ok("150".to_owned())
        );
        assert!(Quantity::parse_text("1000000000000000").is_err());
        assert!(Quantity::parse_text("999999999999999.999999999999").is_ok());
        assert!(Quantity::parse_text("1.0000000000000").is_ok());
        assert!(Quantity::parse_text("1.").is_err());
        assert!(Quantity::parse_text(".5").is_err());
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let raw = br#"{"event_id":"a","event_id":"b"}"#;
        assert!(UsageEvent::parse_bytes(raw).is_err());
    }
}
