//! The integrity report's document (CONTRACT §6): a signed evidence artifact, so its members,
//! their order and their number formats are a file format. The API serves the same document,
//! and its reconciliation rows are the rows of `GET /v1/tenants/{id}/reconciliation`.

use std::str::FromStr as _;

use companyos_domain::time_util::{day_from_number, format_day};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use serde_json::Number;

use super::{Gap, ReconciliationDay};
use crate::ledger::RollupMap;
use crate::ledger_store::LogProblem;

/// A decimal as a JSON number with its exact digits (no binary float on the way); `null` if
/// the digits are no JSON number.
pub fn decimal_number<S: Serializer>(value: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    Number::from_str(&value.normalize().to_string())
        .ok()
        .serialize(serializer)
}

/// One reconciliation day as the report (and the API) writes it; `missing_ratio` is computed.
#[derive(Debug, Serialize)]
pub struct ReconciliationRow<'a> {
    pub date: &'a str,
    pub accepted: i64,
    pub duplicates: i64,
    pub late: i64,
    pub invalid: i64,
    pub conflicts: i64,
    pub missing: i64,
    #[serde(serialize_with = "decimal_number")]
    pub missing_ratio: Decimal,
    pub unsigned: i64,
    pub undeclared: i64,
    pub closed: bool,
    pub gaps: &'a [Gap],
}

impl<'a> ReconciliationRow<'a> {
    pub fn of(day: &'a ReconciliationDay) -> Self {
        Self {
            date: &day.date,
            accepted: day.accepted,
            duplicates: day.duplicates,
            late: day.late,
            invalid: day.invalid,
            conflicts: day.conflicts,
            missing: day.missing,
            missing_ratio: day.missing_ratio(),
            unsigned: day.unsigned,
            undeclared: day.undeclared,
            closed: day.closed,
            gaps: &day.gaps,
        }
    }
}

/// The document, in its members' order.
#[derive(Debug, Serialize)]
pub struct IntegrityReport {
    pub kind: &'static str,
    pub version: u32,
    pub tenant_id: String,
    pub from: String,
    pub to: String,
    pub generated_at: String,
    pub generated_by: String,
    pub result: &'static str,
    pub checks: Checks,
    pub totals: Totals,
    pub checkpoint: Option<String>,
    pub ledger_verifier_key: String,
    pub rollups: Vec<RollupRow>,
    #[serde(serialize_with = "reconciliation_rows")]
    pub reconciliation: Vec<ReconciliationDay>,
}

fn reconciliation_rows<S: Serializer>(
    days: &[ReconciliationDay],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(days.iter().map(ReconciliationRow::of))
}

#[derive(Debug, Serialize)]
pub struct Checks {
    pub rollups_equal_ledger: RollupCheck,
    pub tree_verifies_against_checkpoint: TreeCheck,
    pub missing_ratio_below_target: MissingRatioCheck,
}

#[derive(Debug, Serialize)]
pub struct RollupCheck {
    pub pass: bool,
    pub rollups_compared: usize,
    pub mismatches: Vec<RollupMismatch>,
}

/// A rollup whose stored and recomputed values differ (`None`: that side has no row).
#[derive(Debug, Serialize)]
pub struct RollupMismatch {
    pub date: String,
    pub service: String,
    pub metric: String,
    pub unit: String,
    pub stored: Option<RollupValue>,
    pub recomputed: Option<RollupValue>,
}

#[derive(Debug, Serialize)]
pub struct RollupValue {
    pub quantity: String,
    pub events: i64,
}

#[derive(Debug, Serialize)]
pub struct TreeCheck {
    pub pass: bool,
    pub problems: Vec<TreeProblem>,
}

#[derive(Debug, Serialize)]
pub struct TreeProblem {
    pub leaf_index: Option<u64>,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct MissingRatioCheck {
    pub pass: bool,
    #[serde(serialize_with = "decimal_number")]
    pub missing_ratio: Decimal,
    #[serde(serialize_with = "decimal_number")]
    pub target: Decimal,
}

/// The counters of the period, summed over its days.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub accepted: i64,
    pub duplicates: i64,
    pub late: i64,
    pub invalid: i64,
    pub conflicts: i64,
    pub missing: i64,
    pub unsigned: i64,
    pub undeclared: i64,
}

impl Totals {
    pub fn of(days: &[ReconciliationDay]) -> Self {
        let mut totals = Totals::default();
        for day in days {
            totals.accepted += day.accepted;
            totals.duplicates += day.duplicates;
            totals.late += day.late;
            totals.invalid += day.invalid;
            totals.conflicts += day.conflicts;
            totals.missing += day.missing;
            totals.unsigned += day.unsigned;
            totals.undeclared += day.undeclared;
        }
        totals
    }

    /// The ratio of the period, by the same rule as a day's.
    pub fn missing_ratio(&self) -> Decimal {
        ReconciliationDay {
            accepted: self.accepted,
            late: self.late,
            missing: self.missing,
            ..ReconciliationDay::empty(String::new())
        }
        .missing_ratio()
    }
}

/// One stored rollup of the period.
#[derive(Debug, Serialize)]
pub struct RollupRow {
    pub date: String,
    pub service: String,
    pub metric: String,
    pub unit: String,
    pub quantity: String,
    pub events: i64,
}

type RollupKey = (i64, String, String, String);

fn rollup_value(value: &(Decimal, i64)) -> RollupValue {
    RollupValue {
        quantity: value.0.to_string(),
        events: value.1,
    }
}

/// The stored rollups and the ones recomputed from the ledger, compared.
pub(crate) fn rollup_check(stored: &RollupMap, recomputed: &RollupMap) -> RollupCheck {
    let keys: std::collections::BTreeSet<&RollupKey> =
        stored.keys().chain(recomputed.keys()).collect();
    let mismatches = keys
        .into_iter()
        .filter(|k| stored.get(*k) != recomputed.get(*k))
        .map(|k| RollupMismatch {
            date: format_day(day_from_number(k.0)),
            service: k.1.clone(),
            metric: k.2.clone(),
            unit: k.3.clone(),
            stored: stored.get(k).map(rollup_value),
            recomputed: recomputed.get(k).map(rollup_value),
        })
        .collect();
    RollupCheck {
        pass: stored == recomputed,
        rollups_compared: stored.len().max(recomputed.len()),
        mismatches,
    }
}

pub(crate) fn rollup_rows(stored: &RollupMap) -> Vec<RollupRow> {
    stored
        .iter()
        .map(|(k, v)| RollupRow {
            date: format_day(day_from_number(k.0)),
            service: k.1.clone(),
            metric: k.2.clone(),
            unit: k.3.clone(),
            quantity: v.0.to_string(),
            events: v.1,
        })
        .collect()
}

pub(crate) fn tree_check(problems: &[LogProblem]) -> TreeCheck {
    TreeCheck {
        pass: problems.is_empty(),
        problems: problems
            .iter()
            .map(|p| TreeProblem {
                leaf_index: p.leaf_index,
                message: p.message.clone(),
            })
            .collect(),
    }
}
