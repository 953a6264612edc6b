//! The product catalog (BILL-1) and the region catalog: plans map to entitlements, soft quotas
//! and retention defaults; regions are the closed list tenants may be placed in.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::ids::{MetricName, PlanName, RegionName};

/// What happens to a tenant's data after `delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionPolicy {
    /// Days a deleted tenant stays restorable before the purge job removes it.
    pub tombstone_days: u32,
    /// Whether purge (hard delete) may run at all; when false the tombstone is kept for ever.
    pub hard_delete_allowed: bool,
    /// A legal hold blocks purge until it is lifted.
    pub legal_hold: bool,
}

/// Retention bounds: a tombstone of at most ten years.
pub const TOMBSTONE_DAYS_MAX: u32 = 3650;

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            tombstone_days: 30,
            hard_delete_allowed: true,
            legal_hold: false,
        }
    }
}

/// A plan of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub name: PlanName,
    /// Features the plan grants; exposed to policy as the tenant's entitlements.
    pub entitlements: Vec<String>,
    /// Soft monthly quotas per metric: exceeding one raises an overage notice, never a block.
    pub monthly_quotas: BTreeMap<MetricName, Decimal>,
    pub retention: RetentionPolicy,
    /// Workloads a tenant of this plan may register.
    pub workloads_max: u32,
}

fn plan(
    name: &str,
    entitlements: &[&str],
    quotas: &[(&str, i64)],
    tombstone_days: u32,
    workloads_max: u32,
) -> Option<Plan> {
    let mut monthly_quotas = BTreeMap::new();
    for (metric, quota) in quotas {
        monthly_quotas.insert(MetricName::parse(metric).ok()?, Decimal::from(*quota));
    }
    Some(Plan {
        name: PlanName::parse(name).ok()?,
        entitlements: entitlements.iter().map(|e| (*e).to_owned()).collect(),
        monthly_quotas,
        retention: RetentionPolicy {
            tombstone_days,
            ..RetentionPolicy::default()
        },
        workloads_max,
    })
}

/// The built-in plans, used when the configuration names none.
pub fn default_plans() -> Vec<Plan> {
    [
        plan("free", &["api"], &[("requests", 100_000)], 7, 2),
        plan(
            "standard",
            &["api", "webhooks", "sso"],
            &[("requests", 10_000_000), ("storage_gb_hours", 50_000)],
            30,
            20,
        ),
        plan(
            "enterprise",
            &[
                "api",
                "webhooks",
                "sso",
                "audit-export",
                "dedicated-boundary",
            ],
            &[],
            90,
            200,
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The built-in region catalog.
pub fn default_regions() -> Vec<RegionName> {
    [
        "eu-west-1",
        "eu-central-1",
        "us-east-1",
        "us-west-2",
        "ap-southeast-1",
    ]
    .into_iter()
    .filter_map(|r| RegionName::parse(r).ok())
    .collect()
}
