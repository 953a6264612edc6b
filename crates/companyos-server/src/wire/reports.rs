//! Usage reports (CONTRACT §6): daily usage, reconciliation and the integrity report. The
//! reconciliation row and the integrity report are the signed report's own document
//! (`companyos_core::metering::reports::integrity`), served as stored, so the two cannot drift.

use companyos_core::evidence::EvidenceRecord;
use companyos_core::metering::reports::{DailyUsage, IntegrityReport};
use serde::Serialize;

use super::evidence::EvidenceBody;

pub use companyos_core::metering::reports::ReconciliationRow;

/// One row of `GET /v1/tenants/{id}/usage/daily`: quantities as decimal strings.
#[derive(Debug, Serialize)]
pub struct DailyUsageBody<'a> {
    pub date: &'a str,
    pub service: &'a str,
    pub metric: &'a str,
    pub unit: &'a str,
    pub quantity: String,
    pub events: i64,
    pub late_quantity: String,
    pub late_events: i64,
}

impl<'a> DailyUsageBody<'a> {
    pub fn of(usage: &'a DailyUsage) -> Self {
        Self {
            date: &usage.date,
            service: &usage.service,
            metric: &usage.metric,
            unit: &usage.unit,
            quantity: usage.quantity.normalize().to_string(),
            events: usage.events,
            late_quantity: usage.late_quantity.normalize().to_string(),
            late_events: usage.late_events,
        }
    }
}

/// `POST /v1/tenants/{id}/integrity-report`: the stored artifact's entry and the report itself.
#[derive(Debug, Serialize)]
pub struct IntegrityReportBody<'a> {
    pub evidence: EvidenceBody<'a>,
    pub report: &'a IntegrityReport,
}

impl<'a> IntegrityReportBody<'a> {
    pub fn of(record: &'a EvidenceRecord, report: &'a IntegrityReport) -> Self {
        Self {
            evidence: EvidenceBody::of(record),
            report,
        }
    }
}
