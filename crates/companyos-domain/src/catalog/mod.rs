//! The versioned product catalog (BILL-1, BILL-2): what one plan version grants and charges,
//! its canonical form and SHA-256, quota periods, and the money rules statements apply
//! (proration of the base fee, half-even rounding to the currency's minor unit). No I/O.

use std::collections::BTreeSet;
use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::error::{FieldError, ValidationErrors};
use crate::ids::{MetricName, PlanName};
use crate::plan::{RetentionPolicy, TOMBSTONE_DAYS_MAX};

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

/// A feature a plan grants (a boolean entitlement): `^[a-z][a-z0-9_.-]{0,63}$`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FeatureName(String);

impl FeatureName {
    pub fn parse_field(text: &str, field: &str) -> Result<Self, FieldError> {
        let bytes = text.as_bytes();
        let first_ok = bytes.first().is_some_and(u8::is_ascii_lowercase);
        let rest_ok = bytes.iter().skip(1).all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        });
        if !first_ok || !rest_ok || bytes.len() > 64 {
            return Err(FieldError::new(
                field,
                "must match ^[a-z][a-z0-9_.-]{0,63}$",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn parse(text: &str) -> Result<Self, FieldError> {
        Self::parse_field(text, "feature")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FeatureName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FeatureName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeatureName({:?})", self.0)
    }
}

/// An ISO 4217 currency code with the number of digits of its minor unit.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Currency(String);

impl Currency {
    pub fn parse_field(text: &str, field: &str) -> Result<Self, FieldError> {
        if text.len() != 3 || !text.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(FieldError::new(
                field,
                "must be an ISO 4217 code of three upper-case letters",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Digits after the decimal point of the currency's minor unit (ISO 4217): 0 for the
    /// currencies without one, 3 for the dinars and rials that have mils, 2 otherwise.
    pub fn minor_unit_digits(&self) -> u32 {
        match self.0.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }

    /// Rounds once, half to even (banker's rounding), to the minor unit, and writes the
    /// result with exactly that many digits (`49` in USD is `49.00`).
    pub fn round(&self, amount: Decimal) -> Decimal {
        let digits = self.minor_unit_digits();
        let mut rounded =
            amount.round_dp_with_strategy(digits, RoundingStrategy::MidpointNearestEven);
        rounded.rescale(digits);
        rounded
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({:?})", self.0)
    }
}

/// The length of a quota's usage period, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    Day,
    Month,
}

impl QuotaPeriod {
    pub fn parse_field(text: &str, field: &str) -> Result<Self, FieldError> {
        match text {
            "day" => Ok(Self::Day),
            "month" => Ok(Self::Month),
            _ => Err(FieldError::new(field, "must be \"day\" or \"month\"")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The period that contains `at`: `[start, end)`, both at UTC midnight.
    pub fn bounds(self, at: OffsetDateTime) -> PeriodBounds {
        let date = at.to_offset(time::UtcOffset::UTC).date();
        let (start, end) = match self {
            Self::Day => (date, date.next_day().unwrap_or(Date::MAX)),
            Self::Month => {
                let first = date.replace_day(1).unwrap_or(date);
                (first, first_of_next_month(first))
            }
        };
        PeriodBounds {
            period: self,
            start,
            end,
        }
    }
}

/// One quota period: `[start, end)` in UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeriodBounds {
    pub period: QuotaPeriod,
    pub start: Date,
    pub end: Date,
}

impl PeriodBounds {
    /// The period's name: `YYYY-MM` for a month, `YYYY-MM-DD` for a day.
    pub fn label(&self) -> String {
        match self.period {
            QuotaPeriod::Month => {
                format!("{:04}-{:02}", self.start.year(), self.start.month() as u8)
            }
            QuotaPeriod::Day => format!(
                "{:04}-{:02}-{:02}",
                self.start.year(),
                self.start.month() as u8,
                self.start.day()
            ),
        }
    }

    pub fn start_at(&self) -> OffsetDateTime {
        PrimitiveDateTime::new(self.start, Time::MIDNIGHT).assume_utc()
    }

    pub fn end_at(&self) -> OffsetDateTime {
        PrimitiveDateTime::new(self.end, Time::MIDNIGHT).assume_utc()
    }

    /// Whole seconds from `now` to the period's end, at least 1 (a `Retry-After` value).
    pub fn seconds_to_end(&self, now: OffsetDateTime) -> i64 {
        (self.end_at() - now).whole_seconds().max(1)
    }
}

/// The first day of the month after the one `first` is in.
pub fn first_of_next_month(first: Date) -> Date {
    let (year, month) = match first.month() {
        Month::December => (first.year() + 1, Month::January),
        other => (first.year(), other.next()),
    };
    Date::from_calendar_date(year, month, 1).unwrap_or(Date::MAX)
}

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

/// The base fee for the days a version was in force, before rounding: `base_fee *
/// days_in_force / days_in_month`. The first day of an interval counts, the last does not.
pub fn prorated_base_fee(base_fee: Decimal, days_in_force: u32, days_in_month: u32) -> Decimal {
    assert!(
        (28..=31).contains(&days_in_month),
        "a month has 28 to 31 days"
    );
    assert!(
        days_in_force <= days_in_month,
        "a version is in force within its month"
    );
    if days_in_force == days_in_month {
        return base_fee;
    }
    base_fee * Decimal::from(days_in_force) / Decimal::from(days_in_month)
}

/// The number of days of the month that starts on `first`.
pub fn days_in_month(first: Date) -> u32 {
    u32::from(first.month().length(first.year()))
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

impl PlanSpec {
    /// Reads a stored canonical form back. Every stored spec was validated when it was
    /// written, so metrics are not checked against the declarations again.
    pub fn from_canonical_json(text: &str) -> Result<PlanSpec, String> {
        let raw: RawPlanSpec = serde_json::from_str(text).map_err(|e| e.to_string())?;
        raw.parse(&|_| true).map_err(|e| e.to_string())
    }
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

#[cfg(test)]
mod tests;
