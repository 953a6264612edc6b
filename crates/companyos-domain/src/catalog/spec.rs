//! A validated plan spec: its quotas and their enforcement, and its canonical form and SHA-256.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Currency, FeatureName, QuotaPeriod, RawPlanSpec};
use crate::error::FieldError;
use crate::ids::MetricName;
use crate::plan::RetentionPolicy;

/// Whether a used-up quota only raises notices or also closes the access path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Over the limit: notices and overage, access stays open.
    Soft,
    /// Used up: forward auth answers 429 until the period resets. Usage is still recorded.
    Hard,
}

impl Enforcement {
    pub fn parse_field(text: &str, field: &str) -> Result<Self, FieldError> {
        match text {
            "soft" => Ok(Self::Soft),
            "hard" => Ok(Self::Hard),
            _ => Err(FieldError::new(field, "must be \"soft\" or \"hard\"")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Soft => "soft",
            Self::Hard => "hard",
        }
    }
}

/// A quota on one metric of a plan version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaSpec {
    pub metric: MetricName,
    pub period: QuotaPeriod,
    /// Included quantity per period; usage above it is overage.
    pub included: Decimal,
    /// Percentages of `included` whose crossing emits one quota event each; sorted, unique.
    pub thresholds_percent: Vec<u32>,
    pub enforcement: Enforcement,
    /// Price of one unit above `included`, in the plan's currency.
    pub overage_unit_price: Decimal,
}

impl QuotaSpec {
    /// The quantity at which `threshold_percent` is crossed.
    pub fn threshold_quantity(&self, threshold_percent: u32) -> Decimal {
        self.included * Decimal::from(threshold_percent) / Decimal::ONE_HUNDRED
    }

    /// Thresholds crossed when usage goes from `before` to `after` (strictly below to at or
    /// above), in ascending order. A quota of zero included units is crossed by any usage.
    pub fn thresholds_crossed(&self, before: Decimal, after: Decimal) -> Vec<u32> {
        self.thresholds_percent
            .iter()
            .copied()
            .filter(|t| {
                let at = self.threshold_quantity(*t);
                let reached = |usage: Decimal| {
                    if at.is_zero() {
                        usage > Decimal::ZERO
                    } else {
                        usage >= at
                    }
                };
                !reached(before) && reached(after)
            })
            .collect()
    }

    /// Usage above `included`, never negative.
    pub fn overage(&self, usage: Decimal) -> Decimal {
        (usage - self.included).max(Decimal::ZERO)
    }

    /// Whether a hard quota is used up at `usage` plus an operator's `top_up`.
    pub fn is_used_up(&self, usage: Decimal, top_up: Decimal) -> bool {
        self.enforcement == Enforcement::Hard && usage >= self.included + top_up
    }
}

/// The content of one plan version: everything a statement or policy needs from the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanSpec {
    /// Human name shown in statements and the console.
    pub name: String,
    pub currency: Currency,
    /// Monthly base fee, prorated by the days the version is in force.
    pub base_fee: Decimal,
    pub features: BTreeSet<FeatureName>,
    /// At most one quota per (metric, period), in the order given.
    pub quotas: Vec<QuotaSpec>,
    pub retention: RetentionPolicy,
    pub workloads_max: u32,
}

impl PlanSpec {
    /// The canonical form: RFC 8785 (JCS) of the spec's JSON, decimals as normalized strings,
    /// so the same plan always hashes the same and another language can recompute it.
    pub fn canonical_json(&self) -> String {
        let quotas: Vec<serde_json::Value> = self
            .quotas
            .iter()
            .map(|q| {
                serde_json::json!({
                    "metric": q.metric.as_str(),
                    "period": q.period.as_str(),
                    "included": q.included.normalize().to_string(),
                    "thresholds_percent": q.thresholds_percent,
                    "enforcement": q.enforcement.as_str(),
                    "overage_unit_price": q.overage_unit_price.normalize().to_string(),
                })
            })
            .collect();
        let value = serde_json::json!({
            "name": self.name,
            "currency": self.currency.as_str(),
            "base_fee": self.base_fee.normalize().to_string(),
            "features": self.features.iter().map(FeatureName::as_str).collect::<Vec<_>>(),
            "quotas": quotas,
            "retention": {
                "tombstone_days": self.retention.tombstone_days,
                "hard_delete_allowed": self.retention.hard_delete_allowed,
                "legal_hold": self.retention.legal_hold,
            },
            "workloads_max": self.workloads_max,
        });
        // Every value above is a string, a small integer, a bool or a container of them: JCS
        // cannot fail on it.
        companyos_ledger::jcs::canonicalize(&value)
            .unwrap_or_else(|e| unreachable!("plan spec is always canonicalizable: {e}"))
    }

    /// Lower-case hex SHA-256 of the canonical form.
    pub fn sha256_hex(&self) -> String {
        companyos_ledger::encoding::hex_encode(&Sha256::digest(self.canonical_json().as_bytes()))
    }

    pub fn quota(&self, metric: &MetricName, period: QuotaPeriod) -> Option<&QuotaSpec> {
        self.quotas
            .iter()
            .find(|q| &q.metric == metric && q.period == period)
    }

    pub fn has_feature(&self, feature: &FeatureName) -> bool {
        self.features.contains(feature)
    }
}

impl PlanSpec {
    /// Reads a stored canonical form back. Every stored spec was validated when it was
    /// written, so metrics are not checked against the declarations again.
    pub fn from_canonical_json(text: &str) -> Result<PlanSpec, String> {
        let raw: RawPlanSpec = serde_json::from_str(text).map_err(|e| e.to_string())?;
        raw.parse(&|_| true).map_err(|e| e.to_string())
    }
}
