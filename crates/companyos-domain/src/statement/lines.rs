//! The money of a statement: lines per (service, metric, unit) and plan version in force, the
//! prorated base fee, adjustments for months already final, and the total. Pure and exact:
//! every amount is a `Decimal`, rounded once, half-even, to the currency's minor unit.
//!
//! The rules (ADR 0012): the month is split at every plan change; usage counts under the
//! version in force on the UTC day of its timestamp; a monthly quota's included quantity is
//! prorated by the days the version was in force (rounded half-even to
//! [`INCLUDED_DECIMALS`]), a daily quota's applies to each day; overage is usage above the
//! included quantity; a metric without a quota in the version is not charged.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use time::Date;

use crate::catalog::{Currency, PlanVersion, QuotaPeriod, prorated_base_fee};
use crate::ids::{MetricName, ServiceName, Unit};
use crate::statement::month::StatementMonth;

/// Decimal places of a prorated included quantity.
pub const INCLUDED_DECIMALS: u32 = 6;

/// What a line is counted by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UsageKey {
    pub service: ServiceName,
    pub metric: MetricName,
    pub unit: Unit,
}

/// The usage of one key on one UTC day (accepted and late events, each event once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayUsage {
    pub day: Date,
    pub key: UsageKey,
    pub quantity: Decimal,
}

/// A plan version in force over `[from, to)`, days of one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInForce {
    pub version: PlanVersion,
    pub from: Date,
    pub to: Date,
}

impl PlanInForce {
    /// Days in force: the first day counts, the last (`to`) does not.
    pub fn days(&self) -> u32 {
        u32::try_from((self.to - self.from).whole_days()).unwrap_or(0)
    }
}

/// One charged line: a usage key under one plan version in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputedLine {
    pub key: UsageKey,
    /// Index into the plans the line was computed with.
    pub plan_index: usize,
    pub quantity: Decimal,
    pub included: Decimal,
    pub overage: Decimal,
    pub unit_price: Decimal,
    pub amount: Decimal,
}

/// The money of one month before adjustments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputedMonth {
    pub currency: Currency,
    pub lines: Vec<ComputedLine>,
    pub base_fee: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementMathError {
    #[error("no plan version is in force in the month")]
    NoPlan,
    #[error("the plan versions in force in one month charge in different currencies")]
    MixedCurrencies,
    #[error("plan periods must be ordered, disjoint and inside the month")]
    BadPeriods,
}

/// Computes the lines and base fee of `month` from its daily usage and the plan versions in
/// force (ordered, disjoint, inside the month; days outside every period count under the
/// nearest one, so usage timestamped before the tenant existed is not lost).
pub fn compute_month(
    month: StatementMonth,
    plans: &[PlanInForce],
    usage: &[DayUsage],
) -> Result<ComputedMonth, StatementMathError> {
    let first = plans.first().ok_or(StatementMathError::NoPlan)?;
    let currency = first.version.spec.currency.clone();
    if plans.iter().any(|p| p.version.spec.currency != currency) {
        return Err(StatementMathError::MixedCurrencies);
    }
    check_periods(month, plans)?;
    // (plan index, key) -> day -> quantity
    let mut by_period: BTreeMap<(usize, &UsageKey), BTreeMap<Date, Decimal>> = BTreeMap::new();
    for row in usage.iter().filter(|row| month.contains(row.day)) {
        let index = plan_index_of(plans, row.day);
        *by_period
            .entry((index, &row.key))
            .or_default()
            .entry(row.day)
            .or_default() += row.quantity;
    }
    let lines = by_period
        .into_iter()
        .map(|((index, key), days)| line(month, &plans[index], index, key, &days, &currency))
        .collect();
    let base_fee: Decimal = plans
        .iter()
        .map(|p| prorated_base_fee(p.version.spec.base_fee, p.days(), month.days()))
        .sum();
    Ok(ComputedMonth {
        base_fee: currency.round(base_fee),
        currency,
        lines,
    })
}

fn check_periods(month: StatementMonth, plans: &[PlanInForce]) -> Result<(), StatementMathError> {
    let inside = plans
        .iter()
        .all(|p| p.from < p.to && p.from >= month.first_day() && p.to <= month.end());
    let ordered = plans.windows(2).all(|w| w[0].to <= w[1].from);
    if inside && ordered {
        Ok(())
    } else {
        Err(StatementMathError::BadPeriods)
    }
}

/// The period whose days contain `day`, else the last one starting before it, else the first.
fn plan_index_of(plans: &[PlanInForce], day: Date) -> usize {
    plans.iter().rposition(|p| p.from <= day).unwrap_or(0)
}

fn line(
    month: StatementMonth,
    plan: &PlanInForce,
    plan_index: usize,
    key: &UsageKey,
    days: &BTreeMap<Date, Decimal>,
    currency: &Currency,
) -> ComputedLine {
    let quantity: Decimal = days.values().copied().sum();
    let spec = &plan.version.spec;
    let quota = spec
        .quota(&key.metric, QuotaPeriod::Month)
        .or_else(|| spec.quota(&key.metric, QuotaPeriod::Day));
    let (included, overage, unit_price) = match quota {
        None => (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO),
        Some(q) if q.period == QuotaPeriod::Month => {
            let included = prorated_included(q.included, plan.days(), month.days());
            let overage = (quantity - included).max(Decimal::ZERO);
            (included, overage, q.overage_unit_price)
        }
        Some(q) => {
            let included = q.included * Decimal::from(plan.days());
            let overage = days
                .values()
                .map(|day| (*day - q.included).max(Decimal::ZERO))
                .sum();
            (included, overage, q.overage_unit_price)
        }
    };
    ComputedLine {
        key: key.clone(),
        plan_index,
        quantity: quantity.normalize(),
        included: included.normalize(),
        overage: overage.normalize(),
        unit_price: unit_price.normalize(),
        amount: currency.round(overage * unit_price),
    }
}

/// A monthly quota's included quantity for `days_in_force` of a month of `days_in_month`.
pub fn prorated_included(included: Decimal, days_in_force: u32, days_in_month: u32) -> Decimal {
    if days_in_force >= days_in_month {
        return included;
    }
    (included * Decimal::from(days_in_force) / Decimal::from(days_in_month))
        .round_dp_with_strategy(INCLUDED_DECIMALS, RoundingStrategy::MidpointNearestEven)
}

/// A correction of a month that was already final, carried by a later statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputedAdjustment {
    pub for_month: StatementMonth,
    pub key: UsageKey,
    pub quantity: Decimal,
    pub amount: Decimal,
}

/// What changed in `for_month` since its final statement: per key, the recomputed quantity and
/// amount minus the final ones and minus adjustments already carried by other statements.
/// Amounts are differences of rounded amounts, so they stay in minor units.
pub fn adjustments_for(
    for_month: StatementMonth,
    final_lines: &[(UsageKey, Decimal, Decimal)],
    recomputed: &ComputedMonth,
    already: &[ComputedAdjustment],
) -> Vec<ComputedAdjustment> {
    let mut delta: BTreeMap<&UsageKey, (Decimal, Decimal)> = BTreeMap::new();
    for line in &recomputed.lines {
        let entry = delta.entry(&line.key).or_default();
        entry.0 += line.quantity;
        entry.1 += line.amount;
    }
    let earlier = final_lines
        .iter()
        .map(|(key, quantity, amount)| (key, *quantity, *amount))
        .chain(
            already
                .iter()
                .filter(|a| a.for_month == for_month)
                .map(|a| (&a.key, a.quantity, a.amount)),
        );
    for (key, quantity, amount) in earlier {
        let entry = delta.entry(key).or_default();
        entry.0 -= quantity;
        entry.1 -= amount;
    }
    delta
        .into_iter()
        .filter(|(_, (quantity, amount))| !quantity.is_zero() || !amount.is_zero())
        .map(|(key, (quantity, amount))| ComputedAdjustment {
            for_month,
            key: key.clone(),
            quantity: quantity.normalize(),
            amount: recomputed.currency.round(amount),
        })
        .collect()
}

/// The statement's total: base fee, every line and every adjustment.
pub fn total(month: &ComputedMonth, adjustments: &[ComputedAdjustment]) -> Decimal {
    let lines: Decimal = month.lines.iter().map(|l| l.amount).sum();
    let adjusted: Decimal = adjustments.iter().map(|a| a.amount).sum();
    month.currency.round(month.base_fee + lines + adjusted)
}
