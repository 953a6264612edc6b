//! Plan versions (the built-in and pre-catalog plans as version 1) and a tenant's plan
//! assignments: which version is in force on a day, and over an interval of days.

use rust_decimal::Decimal;
use serde::Serialize;
use time::Date;

use super::{Currency, Enforcement, FeatureName, PlanSpec, QuotaPeriod, QuotaSpec};
use crate::ids::PlanName;

/// One immutable version of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanVersion {
    pub plan: PlanName,
    /// From 1, one more for every change of content.
    pub version: u32,
    pub spec: PlanSpec,
}

impl PlanVersion {
    pub fn new(plan: PlanName, version: u32, spec: PlanSpec) -> Self {
        assert!(version >= 1, "plan versions count from 1");
        Self {
            plan,
            version,
            spec,
        }
    }

    pub fn sha256_hex(&self) -> String {
        self.spec.sha256_hex()
    }
}

/// The built-in plans as version 1 of the catalog, in the shape of `plan::default_plans`, so
/// tenants created before the catalog existed keep their plan. Prices are zero: a deployment
/// sets its prices with `PUT /v1/plans/{plan}`.
pub fn builtin_plan_versions() -> Vec<PlanVersion> {
    legacy_plan_versions(crate::plan::default_plans())
}

/// Version 1 of each plan of a pre-catalog plan list (the built-in one or a deployment's
/// configured one): its entitlements as features, its monthly quotas as soft quotas with
/// notices at 80% and 100%.
pub fn legacy_plan_versions(plans: Vec<crate::plan::Plan>) -> Vec<PlanVersion> {
    plans
        .into_iter()
        .filter_map(|plan| {
            let features = plan
                .entitlements
                .iter()
                .filter_map(|f| FeatureName::parse(f).ok())
                .collect();
            let quotas = plan
                .monthly_quotas
                .iter()
                .map(|(metric, included)| QuotaSpec {
                    metric: metric.clone(),
                    period: QuotaPeriod::Month,
                    included: *included,
                    thresholds_percent: vec![80, 100],
                    enforcement: Enforcement::Soft,
                    overage_unit_price: Decimal::ZERO,
                })
                .collect();
            let currency = Currency::parse_field("USD", "currency").ok()?;
            let display_name = {
                let name = plan.name.as_str();
                let mut chars = name.chars();
                chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                    .unwrap_or_default()
            };
            Some(PlanVersion::new(
                plan.name,
                1,
                PlanSpec {
                    name: display_name,
                    currency,
                    base_fee: Decimal::ZERO,
                    features,
                    quotas,
                    retention: plan.retention,
                    workloads_max: plan.workloads_max,
                },
            ))
        })
        .collect()
}

/// One assignment of a plan version to a tenant, as its history keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanAssignment {
    /// From 1, one more per assignment of the tenant.
    pub seq: u64,
    pub plan: PlanName,
    pub version: u32,
    /// The first UTC day it applies to.
    pub effective_from: Date,
}

/// The assignment in force on `day`: the one with the highest `seq` among those effective on
/// or before it. A later assignment thus overrides an earlier one from its own effective day
/// on, and cancels a pending one that would only start on or after that day.
pub fn assignment_on(assignments: &[PlanAssignment], day: Date) -> Option<&PlanAssignment> {
    assignments
        .iter()
        .filter(|a| a.effective_from <= day)
        .max_by_key(|a| a.seq)
}

/// The days of `[from, to_exclusive)` split by the assignment in force, as `(assignment,
/// from, to_exclusive)` in day order; adjacent days under the same plan version form one
/// interval. Days before the first assignment (before the tenant existed) are left out.
pub fn assignment_intervals(
    assignments: &[PlanAssignment],
    from: Date,
    to_exclusive: Date,
) -> Vec<(&PlanAssignment, Date, Date)> {
    let mut starts: Vec<Date> = assignments
        .iter()
        .map(|a| a.effective_from)
        .filter(|d| *d > from && *d < to_exclusive)
        .collect();
    starts.push(from);
    starts.sort_unstable();
    starts.dedup();
    let mut intervals: Vec<(&PlanAssignment, Date, Date)> = Vec::new();
    for (index, start) in starts.iter().enumerate() {
        let end = starts.get(index + 1).copied().unwrap_or(to_exclusive);
        if *start >= end {
            continue;
        }
        let Some(assignment) = assignment_on(assignments, *start) else {
            continue;
        };
        match intervals.last_mut() {
            Some(last)
                if last.2 == *start
                    && last.0.plan == assignment.plan
                    && last.0.version == assignment.version =>
            {
                last.2 = end;
            }
            _ => intervals.push((assignment, *start, end)),
        }
    }
    intervals
}
