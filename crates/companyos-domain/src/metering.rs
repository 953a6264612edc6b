//! Metering declarations (MET-4): what a service says it meters, with the lint that a service's
//! own CI runs offline, and the coverage gate mode.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Collector, FieldError, ValidationErrors};
use crate::ids::{MetricName, ServiceName, Unit};

/// At most this many metrics per service.
pub const METRICS_PER_SERVICE_MAX: usize = 256;
/// Descriptions are at most this many characters.
pub const DESCRIPTION_CHARS_MAX: usize = 1000;

/// How a metric's events combine into a daily quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    #[default]
    Sum,
    Count,
    Max,
}

impl Aggregation {
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Sum => "sum",
            Aggregation::Count => "count",
            Aggregation::Max => "max",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "sum" => Some(Self::Sum),
            "count" => Some(Self::Count),
            "max" => Some(Self::Max),
            _ => None,
        }
    }
}

/// Whether undeclared usage is accepted with a warning or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CoverageMode {
    #[default]
    Warn,
    Enforce,
}

impl CoverageMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CoverageMode::Warn => "warn",
            CoverageMode::Enforce => "enforce",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "warn" => Some(Self::Warn),
            "enforce" => Some(Self::Enforce),
            _ => None,
        }
    }
}

impl fmt::Display for CoverageMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declared metric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricDeclaration {
    pub name: MetricName,
    pub unit: Unit,
    pub aggregation: Aggregation,
    pub description: String,
}

/// A service's declaration of what it meters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeteringDeclaration {
    pub service: ServiceName,
    pub metrics: Vec<MetricDeclaration>,
}

/// The unvalidated shape of a declaration, as read from JSON or TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeclaration {
    pub service: Option<String>,
    #[serde(default)]
    pub metrics: Vec<RawMetric>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    pub name: Option<String>,
    pub unit: Option<String>,
    pub aggregation: Option<String>,
    pub description: Option<String>,
}

impl MeteringDeclaration {
    /// Validates a raw declaration; `service` overrides the one in the document (from a URL).
    pub fn parse(
        raw: &RawDeclaration,
        service: Option<&str>,
    ) -> Result<MeteringDeclaration, ValidationErrors> {
        let mut c = Collector::new();
        let service = declared_service(&mut c, raw, service);
        if raw.metrics.is_empty() {
            c.push(FieldError::new(
                "metrics",
                "must declare at least one metric",
            ));
        }
        if raw.metrics.len() > METRICS_PER_SERVICE_MAX {
            c.push(FieldError::new(
                "metrics",
                format!("must declare at most {METRICS_PER_SERVICE_MAX} metrics"),
            ));
        }
        let mut names = BTreeSet::new();
        let mut metrics = Vec::new();
        for (i, metric) in raw.metrics.iter().enumerate() {
            if let Some(metric) = declared_metric(&mut c, i, metric, &mut names) {
                metrics.push(metric);
            }
        }
        c.finish()?;
        match service {
            Some(service) => Ok(MeteringDeclaration { service, metrics }),
            None => Err(ValidationErrors::single("service", "is required")),
        }
    }

    pub fn metric(&self, name: &MetricName) -> Option<&MetricDeclaration> {
        self.metrics.iter().find(|m| &m.name == name)
    }
}

/// The declared service: the one in the path (`service`) or else the document's, which must
/// agree when both are given.
fn declared_service(
    c: &mut Collector,
    raw: &RawDeclaration,
    service: Option<&str>,
) -> Option<ServiceName> {
    let service = match service.or(raw.service.as_deref()) {
        Some(text) => c.take(ServiceName::parse(text)),
        None => {
            c.push(FieldError::new("service", "is required"));
            None
        }
    };
    if let (Some(url), Some(body)) = (&service, raw.service.as_deref()) {
        if url.as_str() != body {
            c.push(FieldError::new(
                "service",
                format!("is {body:?} in the document but {url:?} in the path"),
            ));
        }
    }
    service
}

/// Metric `i` of a declaration, when it is valid; `names` holds the names declared before it.
fn declared_metric(
    c: &mut Collector,
    i: usize,
    metric: &RawMetric,
    names: &mut BTreeSet<MetricName>,
) -> Option<MetricDeclaration> {
    let field = |name: &str| format!("metrics[{i}].{name}");
    let name = match metric.name.as_deref() {
        Some(text) => c.take(MetricName::parse_field(text, &field("name"))),
        None => {
            c.push(FieldError::new(field("name"), "is required"));
            None
        }
    };
    let unit = match metric.unit.as_deref() {
        Some(text) => c.take(Unit::parse_field(text, &field("unit"))),
        None => {
            c.push(FieldError::new(field("unit"), "is required"));
            None
        }
    };
    let aggregation = match metric.aggregation.as_deref() {
        None => Some(Aggregation::Sum),
        Some(text) => {
            let parsed = Aggregation::parse(text);
            if parsed.is_none() {
                c.push(FieldError::new(
                    field("aggregation"),
                    "must be sum, count or max",
                ));
            }
            parsed
        }
    };
    let description = metric.description.clone().unwrap_or_default();
    if description.chars().count() > DESCRIPTION_CHARS_MAX {
        c.push(FieldError::new(
            field("description"),
            format!("must be at most {DESCRIPTION_CHARS_MAX} characters"),
        ));
    }
    if description.trim().is_empty() {
        c.push(FieldError::new(
            field("description"),
            "is required: say what one unit of this metric is",
        ));
    }
    if let Some(name) = &name {
        if !names.insert(name.clone()) {
            c.push(FieldError::new(field("name"), "is declared twice"));
        }
    }
    Some(MetricDeclaration {
        name: name?,
        unit: unit?,
        aggregation: aggregation?,
        description,
    })
}

/// How an event relates to its service's declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    Declared,
    UndeclaredService,
    UndeclaredMetric,
    UnitMismatch { declared: Unit },
}

impl Coverage {
    pub fn of(
        declaration: Option<&MeteringDeclaration>,
        metric: &MetricName,
        unit: &Unit,
    ) -> Coverage {
        let Some(declaration) = declaration else {
            return Coverage::UndeclaredService;
        };
        match declaration.metric(metric) {
            None => Coverage::UndeclaredMetric,
            Some(declared) if &declared.unit != unit => Coverage::UnitMismatch {
                declared: declared.unit.clone(),
            },
            Some(_) => Coverage::Declared,
        }
    }

    /// The field and message describing a coverage problem; `None` when declared.
    pub fn problem(&self) -> Option<FieldError> {
        match self {
            Coverage::Declared => None,
            Coverage::UndeclaredService => {
                Some(FieldError::new("service", "has no metering declaration"))
            }
            Coverage::UndeclaredMetric => {
                Some(FieldError::new("metric", "is not declared by its service"))
            }
            Coverage::UnitMismatch { declared } => Some(FieldError::new(
                "unit",
                format!("differs from the declared unit {declared:?}"),
            )),
        }
    }

    /// A short flag for results and counters.
    pub fn flag(&self) -> Option<&'static str> {
        match self {
            Coverage::Declared => None,
            Coverage::UndeclaredService => Some("undeclared_service"),
            Coverage::UndeclaredMetric => Some("undeclared_metric"),
            Coverage::UnitMismatch { .. } => Some("unit_mismatch"),
        }
    }
}
