//! The versioned product catalog (BILL-1, BILL-2): what one plan version grants and charges,
//! its canonical form and SHA-256, quota periods, and the money rules statements apply
//! (proration of the base fee, half-even rounding to the currency's minor unit). No I/O.
//!
//! The parts: `names` (feature names, currencies and their rounding), `period` (quota periods
//! and month arithmetic), `spec` (a validated plan spec, its quotas and canonical form), `raw`
//! (a plan body as written, and its validation), `version` (plan versions and assignments).

use rust_decimal::Decimal;

mod names;
mod period;
mod raw;
mod spec;
mod version;

pub use names::{Currency, FeatureName};
pub use period::{
    PeriodBounds, QuotaPeriod, days_in_month, first_of_next_month, prorated_base_fee,
};
pub use raw::{RawDecimal, RawPlanSpec, RawQuotaSpec, RawRetention};
pub use spec::{Enforcement, PlanSpec, QuotaSpec};
pub use version::{
    PlanAssignment, PlanVersion, assignment_intervals, assignment_on, builtin_plan_versions,
    legacy_plan_versions,
};

/// Limits on one plan body, so a catalog entry stays small enough to sit in every tenant's
/// policy entity and statement pack.
pub const PLAN_FEATURES_MAX: usize = 64;
pub const PLAN_QUOTAS_MAX: usize = 64;
pub const QUOTA_THRESHOLDS_MAX: usize = 10;
/// A threshold above 1000% is a typo, not a plan.
pub const QUOTA_THRESHOLD_PERCENT_MAX: u32 = 1000;
pub const PLAN_DISPLAY_NAME_CHARS_MAX: usize = 200;
pub const PLAN_WORKLOADS_MAX: u32 = 100_000;
/// Money and quantities above 10^15 are refused: no real plan charges or includes that much,
/// and the bound keeps every sum of a statement far from `Decimal`'s limit.
pub const PLAN_AMOUNT_MAX: Decimal = Decimal::from_parts(0xA4C6_8000, 0x0003_8D7E, 0, false, 0);

#[cfg(test)]
mod tests;
