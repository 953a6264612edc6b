//! OpenMeter-compatible meters (CONTRACT §11): a meter turns CloudEvents of one `type` into
//! usage events of one metric (its slug), with the aggregation its queries use, the JSONPath of
//! the value and of the group-by attributes. Pure rules; the store lives in companyos-core.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Collector, FieldError, ValidationErrors};
use crate::ids::{MetricName, ServiceName, Unit};
use crate::usage::{ATTRIBUTE_KEY_BYTES_MAX, ATTRIBUTES_MAX};
pub use crate::window::{WindowSize, WindowZone, window_end, window_start};

/// The attribute of a CloudEvents-sent usage event that holds the CloudEvent's `subject`.
pub const SUBJECT_ATTRIBUTE: &str = "om.subject";
/// The attribute that holds the value a `UNIQUE_COUNT` meter counts (its quantity is 1).
pub const UNIQUE_VALUE_ATTRIBUTE: &str = "om.value";
/// Group-by names: at most this many, so the reserved attributes always fit.
pub const GROUP_BY_MAX: usize = ATTRIBUTES_MAX - 2;
/// `eventType` is at most this many characters.
pub const EVENT_TYPE_CHARS_MAX: usize = 256;
/// A JSONPath is at most this many characters.
pub const PATH_CHARS_MAX: usize = 256;
/// Descriptions are at most this many characters.
pub const DESCRIPTION_CHARS_MAX: usize = 1000;
/// The service of a meter that names none.
pub const DEFAULT_SERVICE: &str = "cloudevents";
/// The unit of a meter that names none.
pub const DEFAULT_UNIT: &str = "unit";

/// How a meter's events combine in a query (OpenMeter's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeterAggregation {
    Sum,
    Count,
    UniqueCount,
    Avg,
    Min,
    Max,
    Latest,
}

impl MeterAggregation {
    pub const ALL: [MeterAggregation; 7] = [
        Self::Sum,
        Self::Count,
        Self::UniqueCount,
        Self::Avg,
        Self::Min,
        Self::Max,
        Self::Latest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sum => "SUM",
            Self::Count => "COUNT",
            Self::UniqueCount => "UNIQUE_COUNT",
            Self::Avg => "AVG",
            Self::Min => "MIN",
            Self::Max => "MAX",
            Self::Latest => "LATEST",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// Whether the usage event's quantity is always 1 (the value is not a quantity).
    pub fn counts_events(self) -> bool {
        matches!(self, Self::Count | Self::UniqueCount)
    }

    /// The metering declaration's aggregation closest to this one (the coverage gate and the
    /// daily report only know sum, count and max).
    pub fn declared(self) -> crate::metering::Aggregation {
        match self {
            Self::Count | Self::UniqueCount => crate::metering::Aggregation::Count,
            Self::Max => crate::metering::Aggregation::Max,
            _ => crate::metering::Aggregation::Sum,
        }
    }
}

impl fmt::Display for MeterAggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a JSONPath.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathStep {
    Key(String),
    Index(usize),
}

/// The subset of JSONPath that OpenMeter meters use: `$`, then `.name`, `['name']` or `[n]`
/// steps. Filters, wildcards and recursive descent are refused when the meter is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuePath {
    text: String,
    steps: Vec<PathStep>,
}

impl ValuePath {
    pub fn parse(text: &str) -> Result<ValuePath, String> {
        if text.chars().count() > PATH_CHARS_MAX {
            return Err(format!("must be at most {PATH_CHARS_MAX} characters"));
        }
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| "must be a JSONPath starting with $ (such as $.tokens)".to_owned())?;
        let mut steps = Vec::new();
        let mut rest = rest;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let name = &after[..end];
                let plain = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
                if !plain {
                    return Err(format!("has an unsupported step at {rest:?}"));
                }
                steps.push(PathStep::Key(name.to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix("['") {
                let end = after
                    .find("']")
                    .ok_or_else(|| "has an unclosed ['...'] step".to_owned())?;
                steps.push(PathStep::Key(after[..end].to_owned()));
                rest = &after[end + 2..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after
                    .find(']')
                    .ok_or_else(|| "has an unclosed [n] step".to_owned())?;
                let index = after[..end]
                    .parse::<usize>()
                    .map_err(|_| format!("has an unsupported step at {rest:?}"))?;
                steps.push(PathStep::Index(index));
                rest = &after[end + 1..];
            } else {
                return Err(format!("has an unsupported step at {rest:?}"));
            }
        }
        if steps.is_empty() {
            return Err("must select a member of the event's data (such as $.tokens)".to_owned());
        }
        Ok(ValuePath {
            text: text.to_owned(),
            steps,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value this path selects in `data`, if any.
    pub fn select<'a>(&self, data: &'a Value) -> Option<&'a Value> {
        let mut current = data;
        for step in &self.steps {
            current = match (step, current) {
                (PathStep::Key(key), Value::Object(map)) => map.get(key)?,
                (PathStep::Index(index), Value::Array(items)) => items.get(*index)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

/// A validated meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meter {
    pub slug: MetricName,
    pub event_type: String,
    pub aggregation: MeterAggregation,
    /// `None` for COUNT, which ignores it.
    pub value_property: Option<ValuePath>,
    pub group_by: BTreeMap<String, ValuePath>,
    pub description: String,
    pub service: ServiceName,
    pub unit: Unit,
}

/// A meter as sent (`POST /api/v1/meters`) and as stored.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMeter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_property: Option<String>,
    #[serde(default)]
    pub group_by: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// OpenMeter's optional display name: accepted, not kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// OpenMeter's default window size of a meter: accepted, not kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_size: Option<String>,
}

/// Records `error` and yields nothing.
fn missing<T>(c: &mut Collector, error: FieldError) -> Option<T> {
    c.push(error);
    None
}

/// Whether `name` may be a group-by key: an attribute key that none of ours shadows.
fn check_group_by_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > ATTRIBUTE_KEY_BYTES_MAX {
        return Err(format!("keys must be 1 to {ATTRIBUTE_KEY_BYTES_MAX} bytes"));
    }
    if name == "subject" || name.starts_with("om.") {
        return Err("`subject` and names starting with `om.` are reserved".to_owned());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err("keys are letters, digits, `_`, `-` and `.`".to_owned());
    }
    Ok(())
}

/// The group-by names and paths of a meter, each problem recorded in `c`.
fn parse_group_by(
    raw: &BTreeMap<String, String>,
    c: &mut Collector,
) -> BTreeMap<String, ValuePath> {
    if raw.len() > GROUP_BY_MAX {
        c.push(FieldError::new(
            "groupBy",
            format!("has at most {GROUP_BY_MAX} entries"),
        ));
    }
    let mut group_by = BTreeMap::new();
    for (name, path) in raw {
        let field = format!("groupBy.{name}");
        let checked = check_group_by_name(name)
            .and_then(|()| ValuePath::parse(path))
            .map_err(|message| FieldError::new(&field, message));
        if let Some(path) = c.take(checked) {
            group_by.insert(name.clone(), path);
        }
    }
    group_by
}

/// A meter's `eventType`: given, 1 to the maximum characters.
fn meter_event_type(c: &mut Collector, text: Option<&str>) -> Option<String> {
    match text {
        Some(text) if !text.trim().is_empty() && text.chars().count() <= EVENT_TYPE_CHARS_MAX => {
            Some(text.to_owned())
        }
        _ => missing(
            c,
            FieldError::new(
                "eventType",
                format!("is required, 1 to {EVENT_TYPE_CHARS_MAX} characters"),
            ),
        ),
    }
}

/// A meter's `aggregation`, one of OpenMeter's names.
fn meter_aggregation(c: &mut Collector, text: Option<&str>) -> Option<MeterAggregation> {
    match text.map(MeterAggregation::parse) {
        Some(Some(aggregation)) => Some(aggregation),
        _ => missing(
            c,
            FieldError::new(
                "aggregation",
                "must be one of SUM, COUNT, UNIQUE_COUNT, AVG, MIN, MAX, LATEST",
            ),
        ),
    }
}

/// A meter's `valueProperty`: required for every aggregation but COUNT, which takes none.
fn meter_value_property(
    c: &mut Collector,
    aggregation: Option<MeterAggregation>,
    text: Option<&str>,
) -> Option<ValuePath> {
    match (aggregation, text) {
        (Some(MeterAggregation::Count), _) => None,
        (_, None) => missing(
            c,
            FieldError::new(
                "valueProperty",
                "is required for every aggregation but COUNT",
            ),
        ),
        (_, Some(text)) => c.take(
            ValuePath::parse(text).map_err(|message| FieldError::new("valueProperty", message)),
        ),
    }
}

impl Meter {
    /// Validates a raw meter, naming every bad field.
    pub fn parse(raw: &RawMeter) -> Result<Meter, ValidationErrors> {
        let mut c = Collector::new();
        let slug = match raw.slug.as_deref() {
            None => missing(&mut c, FieldError::new("slug", "is required")),
            Some(text) => c.take(MetricName::parse_field(text, "slug")),
        };
        let event_type = meter_event_type(&mut c, raw.event_type.as_deref());
        let aggregation = meter_aggregation(&mut c, raw.aggregation.as_deref());
        let value_property =
            meter_value_property(&mut c, aggregation, raw.value_property.as_deref());
        let group_by = parse_group_by(&raw.group_by, &mut c);
        let description = raw.description.clone().unwrap_or_default();
        if description.chars().count() > DESCRIPTION_CHARS_MAX {
            c.push(FieldError::new(
                "description",
                format!("is at most {DESCRIPTION_CHARS_MAX} characters"),
            ));
        }
        let service = c.take(ServiceName::parse_field(
            raw.service.as_deref().unwrap_or(DEFAULT_SERVICE),
            "service",
        ));
        let unit = c.take(Unit::parse_field(
            raw.unit.as_deref().unwrap_or(DEFAULT_UNIT),
            "unit",
        ));
        c.finish()?;
        match (slug, event_type, aggregation, service, unit) {
            (Some(slug), Some(event_type), Some(aggregation), Some(service), Some(unit)) => {
                Ok(Meter {
                    slug,
                    event_type,
                    aggregation,
                    value_property,
                    group_by,
                    description,
                    service,
                    unit,
                })
            }
            _ => Err(ValidationErrors::single("body", "is not a meter")),
        }
    }

    /// The raw form this meter is stored as (and read back through [`Meter::parse`]).
    pub fn to_raw(&self) -> RawMeter {
        RawMeter {
            slug: Some(self.slug.as_str().to_owned()),
            event_type: Some(self.event_type.clone()),
            aggregation: Some(self.aggregation.as_str().to_owned()),
            value_property: self.value_property.as_ref().map(|p| p.as_str().to_owned()),
            group_by: self
                .group_by
                .iter()
                .map(|(name, path)| (name.clone(), path.as_str().to_owned()))
                .collect(),
            description: Some(self.description.clone()),
            service: Some(self.service.as_str().to_owned()),
            unit: Some(self.unit.as_str().to_owned()),
            name: None,
            window_size: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_select_members_and_items() {
        let data = json!({"a": {"b c": [1, {"d": "x"}]}, "tokens": 5});
        let path = ValuePath::parse("$.a['b c'][1].d").expect("valid");
        assert_eq!(path.select(&data), Some(&json!("x")));
        assert_eq!(
            ValuePath::parse("$.tokens").expect("valid").select(&data),
            Some(&json!(5))
        );
        assert_eq!(
            ValuePath::parse("$.missing").expect("valid").select(&data),
            None
        );
        for bad in ["tokens", "$", "$..a", "$.a[*]", "$[?(@.a)]", "$.a["] {
            assert!(ValuePath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn meters_name_every_bad_field() {
        let raw = RawMeter {
            slug: Some("Tokens".into()),
            aggregation: Some("MEDIAN".into()),
            group_by: [("subject".to_owned(), "$.s".to_owned())].into(),
            ..RawMeter::default()
        };
        let errors = Meter::parse(&raw).expect_err("invalid");
        let fields: Vec<&str> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "slug",
                "eventType",
                "aggregation",
                "valueProperty",
                "groupBy.subject"
            ]
        );
        let count = Meter::parse(&RawMeter {
            slug: Some("api_calls".into()),
            event_type: Some("request".into()),
            aggregation: Some("COUNT".into()),
            value_property: Some("ignored".into()),
            ..RawMeter::default()
        })
        .expect("COUNT ignores valueProperty");
        assert_eq!(count.value_property, None);
        assert_eq!(count.service.as_str(), "cloudevents");
        assert_eq!(count.unit.as_str(), "unit");
    }
}
