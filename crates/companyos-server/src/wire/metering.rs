//! Metering declarations, the coverage gate and usage sources (CONTRACT §5, MET-4).

use companyos_core::metering::{
    CoverageReport, DeclaredMetric, DeclaredServices, Source, UndeclaredMetric, UndeclaredService,
    UnitMismatch,
};
use companyos_domain::metering::MetricDeclaration;
use serde::Serialize;

use super::instant;

/// `GET /v1/metering/services`.
#[derive(Debug, Serialize)]
pub struct ServicesBody<'a> {
    pub coverage_mode: &'static str,
    pub services: Vec<ServiceBody<'a>>,
}

/// One declared service: its metrics as declared, and the mode the gate applies to it.
#[derive(Debug, Serialize)]
pub struct ServiceBody<'a> {
    pub service: &'a str,
    pub metrics: &'a [MetricDeclaration],
    pub coverage_mode: &'static str,
    pub coverage_mode_override: Option<&'static str>,
    pub updated_at: String,
    pub updated_by: &'a str,
}

impl<'a> ServicesBody<'a> {
    pub fn of(declared: &'a DeclaredServices) -> Self {
        Self {
            coverage_mode: declared.deployment_mode.as_str(),
            services: declared
                .services
                .iter()
                .map(|service| ServiceBody {
                    service: service.declaration.service.as_str(),
                    metrics: &service.declaration.metrics,
                    coverage_mode: declared.mode_of(service).as_str(),
                    coverage_mode_override: service.mode_override.map(|m| m.as_str()),
                    updated_at: instant(service.updated_at),
                    updated_by: &service.updated_by,
                })
                .collect(),
        }
    }
}

/// The answer of a coverage mode change: what was asked for (`service` null for the deployment).
#[derive(Debug, Serialize)]
pub struct ModeChangeBody<'a> {
    pub service: Option<&'a str>,
    pub mode: Option<&'a str>,
}

/// `GET /v1/metering/coverage`.
#[derive(Debug, Serialize)]
pub struct CoverageBody<'a> {
    pub coverage_mode: &'static str,
    pub services_without_declaration: Vec<UndeclaredServiceBody<'a>>,
    pub undeclared_metrics: Vec<UndeclaredMetricBody<'a>>,
    pub unit_mismatches: Vec<UnitMismatchBody<'a>>,
    pub declared_metrics_never_seen: Vec<NeverSeenBody<'a>>,
}

#[derive(Debug, Serialize)]
pub struct UndeclaredServiceBody<'a> {
    pub service: &'a str,
    pub events: i64,
}

#[derive(Debug, Serialize)]
pub struct UndeclaredMetricBody<'a> {
    pub service: &'a str,
    pub metric: &'a str,
    pub events: i64,
}

#[derive(Debug, Serialize)]
pub struct UnitMismatchBody<'a> {
    pub service: &'a str,
    pub metric: &'a str,
    pub unit: &'a str,
    pub declared_unit: &'a str,
    pub events: i64,
}

#[derive(Debug, Serialize)]
pub struct NeverSeenBody<'a> {
    pub service: &'a str,
    pub metric: &'a str,
}

impl<'a> CoverageBody<'a> {
    pub fn of(report: &'a CoverageReport) -> Self {
        Self {
            coverage_mode: report.mode.as_str(),
            services_without_declaration: report
                .services_without_declaration
                .iter()
                .map(
                    |UndeclaredService { service, events }| UndeclaredServiceBody {
                        service,
                        events: *events,
                    },
                )
                .collect(),
            undeclared_metrics: report
                .undeclared_metrics
                .iter()
                .map(|m: &'a UndeclaredMetric| UndeclaredMetricBody {
                    service: &m.service,
                    metric: &m.metric,
                    events: m.events,
                })
                .collect(),
            unit_mismatches: report
                .unit_mismatches
                .iter()
                .map(|m: &'a UnitMismatch| UnitMismatchBody {
                    service: &m.service,
                    metric: &m.metric,
                    unit: &m.unit,
                    declared_unit: m.declared_unit.as_str(),
                    events: m.events,
                })
                .collect(),
            declared_metrics_never_seen: report
                .declared_metrics_never_seen
                .iter()
                .map(|m: &'a DeclaredMetric| NeverSeenBody {
                    service: &m.service,
                    metric: m.metric.as_str(),
                })
                .collect(),
        }
    }
}

/// A usage source; `created_by` only in listings (the creator knows who it is).
#[derive(Debug, Serialize)]
pub struct SourceBody<'a> {
    pub id: &'a str,
    pub service: &'a str,
    pub public_key: &'a str,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<&'a str>,
}

impl<'a> SourceBody<'a> {
    /// The source as `POST /v1/sources` answers it.
    pub fn created(source: &'a Source) -> Self {
        Self {
            created_by: None,
            ..Self::listed(source)
        }
    }

    /// The source as `GET /v1/sources` lists it.
    pub fn listed(source: &'a Source) -> Self {
        Self {
            id: source.id.as_str(),
            service: source.service.as_str(),
            public_key: &source.public_key,
            created_at: instant(source.created_at),
            created_by: Some(&source.created_by),
        }
    }
}
