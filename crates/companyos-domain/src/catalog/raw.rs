//! A plan body as a person writes it (HTTP JSON or `plans.toml`), and its validation into a
//! `PlanSpec` that names every bad field.

use std::collections::BTreeSet;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{
    Currency, Enforcement, FeatureName, PLAN_AMOUNT_MAX, PLAN_DISPLAY_NAME_CHARS_MAX,
    PLAN_FEATURES_MAX, PLAN_QUOTAS_MAX, PLAN_WORKLOADS_MAX, PlanSpec, QUOTA_THRESHOLD_PERCENT_MAX,
    QUOTA_THRESHOLDS_MAX, QuotaPeriod, QuotaSpec,
};
use crate::error::{FieldError, ValidationErrors};
use crate::ids::MetricName;
use crate::plan::{RetentionPolicy, TOMBSTONE_DAYS_MAX};

/// A plan body as written by a person (HTTP JSON or `plans.toml`), before validation.
/// Money and quantities are strings or numbers; both are read exactly, never via a float.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlanSpec {
    pub name: Option<String>,
    pub currency: Option<String>,
    pub base_fee: Option<RawDecimal>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub quotas: Vec<RawQuotaSpec>,
    pub retention: Option<RawRetention>,
    pub workloads_max: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuotaSpec {
    pub metric: Option<String>,
    pub period: Option<String>,
    pub included: Option<RawDecimal>,
    #[serde(default)]
    pub thresholds_percent: Vec<u32>,
    pub enforcement: Option<String>,
    pub overage_unit_price: Option<RawDecimal>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    pub tombstone_days: Option<u32>,
    pub hard_delete_allowed: Option<bool>,
    pub legal_hold: Option<bool>,
}

/// A decimal given as a JSON/TOML string (`"49.00"`) or number, kept as its text so it is
/// read exactly (serde_json's `arbitrary_precision` keeps a JSON number's digits; a TOML float
/// gives its shortest round-trip text, which is what the person wrote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDecimal(String);

impl RawDecimal {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl<'de> Deserialize<'de> for RawDecimal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(Self(text)),
            serde_json::Value::Number(number) => Ok(Self(number.to_string())),
            _ => Err(serde::de::Error::custom(
                "must be a decimal, as a string (\"49.00\") or a number",
            )),
        }
    }
}

impl RawDecimal {
    fn parse_field(&self, field: &str) -> Result<Decimal, FieldError> {
        let text = self.0.trim();
        let value = text
            .parse::<Decimal>()
            .or_else(|_| Decimal::from_scientific(text))
            .map_err(|_| FieldError::new(field, "must be a decimal number such as \"49.00\""))?;
        if value.is_sign_negative() && !value.is_zero() {
            return Err(FieldError::new(field, "must not be negative"));
        }
        if value > PLAN_AMOUNT_MAX {
            return Err(FieldError::new(field, "is too large"));
        }
        Ok(value.normalize())
    }
}

impl RawPlanSpec {
    /// Validates every field, naming each bad one; `is_declared` says whether a metric is a
    /// declared metric of the deployment (a plan may not quota an undeclared metric).
    pub fn parse(
        self,
        is_declared: &dyn Fn(&MetricName) -> bool,
    ) -> Result<PlanSpec, ValidationErrors> {
        let mut errors = Vec::new();
        let name = match self.name {
            Some(name)
                if !name.trim().is_empty()
                    && name.chars().count() <= PLAN_DISPLAY_NAME_CHARS_MAX
                    && !name.chars().any(char::is_control) =>
            {
                name
            }
            _ => {
                errors.push(FieldError::new(
                    "name",
                    format!("is required: 1 to {PLAN_DISPLAY_NAME_CHARS_MAX} characters of text"),
                ));
                String::new()
            }
        };
        let currency = match self.currency.as_deref() {
            Some(text) => Currency::parse_field(text, "currency")
                .map_err(|e| errors.push(e))
                .ok(),
            None => {
                errors.push(FieldError::new("currency", "is required, e.g. \"USD\""));
                None
            }
        };
        let base_fee = match &self.base_fee {
            Some(raw) => raw
                .parse_field("base_fee")
                .map_err(|e| errors.push(e))
                .unwrap_or_default(),
            None => Decimal::ZERO,
        };
        let features = parse_features(self.features, &mut errors);
        let quotas = parse_quotas(self.quotas, is_declared, &mut errors);
        let retention = parse_retention(self.retention, &mut errors);
        let workloads_max = self.workloads_max.unwrap_or(20);
        if workloads_max > PLAN_WORKLOADS_MAX {
            errors.push(FieldError::new(
                "workloads_max",
                format!("must be at most {PLAN_WORKLOADS_MAX}"),
            ));
        }
        if let Some(errors) = ValidationErrors::from_vec(errors) {
            return Err(errors);
        }
        let Some(currency) = currency else {
            return Err(ValidationErrors::single("currency", "is required"));
        };
        Ok(PlanSpec {
            name,
            currency,
            base_fee,
            features,
            quotas,
            retention,
            workloads_max,
        })
    }
}

fn parse_features(raw: Vec<String>, errors: &mut Vec<FieldError>) -> BTreeSet<FeatureName> {
    if raw.len() > PLAN_FEATURES_MAX {
        errors.push(FieldError::new(
            "features",
            format!("at most {PLAN_FEATURES_MAX} features"),
        ));
    }
    raw.iter()
        .take(PLAN_FEATURES_MAX)
        .enumerate()
        .filter_map(|(index, text)| {
            FeatureName::parse_field(text, &format!("features[{index}]"))
                .map_err(|e| errors.push(e))
                .ok()
        })
        .collect()
}

fn parse_quotas(
    raw: Vec<RawQuotaSpec>,
    is_declared: &dyn Fn(&MetricName) -> bool,
    errors: &mut Vec<FieldError>,
) -> Vec<QuotaSpec> {
    if raw.len() > PLAN_QUOTAS_MAX {
        errors.push(FieldError::new(
            "quotas",
            format!("at most {PLAN_QUOTAS_MAX} quotas"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut quotas = Vec::new();
    for (index, quota) in raw.into_iter().take(PLAN_QUOTAS_MAX).enumerate() {
        let prefix = format!("quotas[{index}]");
        match parse_quota(quota, &prefix, is_declared) {
            Ok(quota) => {
                if !seen.insert((quota.metric.clone(), quota.period)) {
                    errors.push(FieldError::new(
                        format!("{prefix}.metric"),
                        "has a second quota for the same period",
                    ));
                }
                quotas.push(quota);
            }
            Err(mut quota_errors) => errors.append(&mut quota_errors),
        }
    }
    quotas
}

fn parse_quota(
    raw: RawQuotaSpec,
    prefix: &str,
    is_declared: &dyn Fn(&MetricName) -> bool,
) -> Result<QuotaSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    let field = |name: &str| format!("{prefix}.{name}");
    let metric = quota_metric(raw.metric.as_deref(), &field("metric"), is_declared)
        .map_err(|e| errors.push(e))
        .ok();
    let period =
        QuotaPeriod::parse_field(raw.period.as_deref().unwrap_or("month"), &field("period"))
            .map_err(|e| errors.push(e))
            .ok();
    let included = match &raw.included {
        Some(raw) => raw
            .parse_field(&field("included"))
            .map_err(|e| errors.push(e))
            .ok(),
        None => {
            errors.push(FieldError::new(field("included"), "is required"));
            None
        }
    };
    let thresholds = quota_thresholds(raw.thresholds_percent, &field("thresholds_percent"))
        .map_err(|e| errors.push(e))
        .unwrap_or_default();
    let enforcement = Enforcement::parse_field(
        raw.enforcement.as_deref().unwrap_or("soft"),
        &field("enforcement"),
    )
    .map_err(|e| errors.push(e))
    .ok();
    let overage_unit_price = match &raw.overage_unit_price {
        Some(raw) => raw
            .parse_field(&field("overage_unit_price"))
            .map_err(|e| errors.push(e))
            .ok(),
        None => Some(Decimal::ZERO),
    };
    match (metric, period, included, enforcement, overage_unit_price) {
        (Some(metric), Some(period), Some(included), Some(enforcement), Some(price))
            if errors.is_empty() =>
        {
            Ok(QuotaSpec {
                metric,
                period,
                included,
                thresholds_percent: thresholds,
                enforcement,
                overage_unit_price: price,
            })
        }
        _ => Err(errors),
    }
}

/// A quota's metric: given, and declared (`is_declared`).
fn quota_metric(
    text: Option<&str>,
    field: &str,
    is_declared: &dyn Fn(&MetricName) -> bool,
) -> Result<MetricName, FieldError> {
    let text = text.ok_or_else(|| FieldError::new(field, "is required"))?;
    let metric = MetricName::parse_field(text, field)?;
    if !is_declared(&metric) {
        return Err(FieldError::new(
            field,
            format!(
                "\"{text}\" is not a declared metric (declare it first: POST /v1/metrics or a meter)"
            ),
        ));
    }
    Ok(metric)
}

/// A quota's threshold percentages, sorted and each once: a few, each 1 to the maximum.
fn quota_thresholds(mut thresholds: Vec<u32>, field: &str) -> Result<Vec<u32>, FieldError> {
    thresholds.sort_unstable();
    thresholds.dedup();
    let out_of_range = |t: &u32| *t == 0 || *t > QUOTA_THRESHOLD_PERCENT_MAX;
    if thresholds.len() > QUOTA_THRESHOLDS_MAX || thresholds.iter().any(out_of_range) {
        return Err(FieldError::new(
            field,
            format!(
                "at most {QUOTA_THRESHOLDS_MAX} percentages, each 1 to {QUOTA_THRESHOLD_PERCENT_MAX}"
            ),
        ));
    }
    Ok(thresholds)
}

fn parse_retention(raw: Option<RawRetention>, errors: &mut Vec<FieldError>) -> RetentionPolicy {
    let defaults = RetentionPolicy::default();
    let Some(raw) = raw else { return defaults };
    let tombstone_days = raw.tombstone_days.unwrap_or(defaults.tombstone_days);
    if tombstone_days > TOMBSTONE_DAYS_MAX {
        errors.push(FieldError::new(
            "retention.tombstone_days",
            format!("must be at most {TOMBSTONE_DAYS_MAX}"),
        ));
    }
    RetentionPolicy {
        tombstone_days,
        hard_delete_allowed: raw
            .hard_delete_allowed
            .unwrap_or(defaults.hard_delete_allowed),
        legal_hold: raw.legal_hold.unwrap_or(defaults.legal_hold),
    }
}
