//! The statement document (CONTRACT §10): the JSON a tenant receives, stored byte for byte once
//! final. Its canonical form is RFC 8785 (JCS), so its SHA-256 is recomputable anywhere.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::TenantId;
use crate::statement::lines::{
    ComputedAdjustment, ComputedLine, ComputedMonth, PlanInForce, UsageKey, total,
};
use crate::statement::month::StatementMonth;
use crate::time_util::format_day;

/// `open` while any day of the month is open; `final` once every day is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatementStatus {
    Open,
    Final,
}

impl StatementStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Final => "final",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementPlan {
    pub plan: String,
    pub version: u32,
    pub sha256: String,
    /// First day in force (`YYYY-MM-DD`).
    pub from: String,
    /// First day no longer in force (exclusive).
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    #[serde(flatten)]
    pub key: UsageKey,
    pub plan: String,
    pub version: u32,
    pub quantity: Decimal,
    pub included: Decimal,
    pub overage: Decimal,
    pub unit_price: Decimal,
    pub amount: Decimal,
}

impl StatementLine {
    /// The statement's line of a computed line, naming the plan version it was computed with
    /// (`plans`: the versions the month was computed with).
    pub fn of(line: &ComputedLine, plans: &[PlanInForce]) -> Self {
        let version = &plans[line.plan_index].version;
        Self {
            key: line.key.clone(),
            plan: version.plan.as_str().to_owned(),
            version: version.version,
            quantity: line.quantity,
            included: line.included,
            overage: line.overage,
            unit_price: line.unit_price,
            amount: line.amount,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementAdjustment {
    pub for_month: StatementMonth,
    #[serde(flatten)]
    pub key: UsageKey,
    pub quantity: Decimal,
    pub amount: Decimal,
}

/// Events of the month by what ingestion made of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementCounts {
    pub accepted: u64,
    pub duplicates: u64,
    pub late: u64,
    pub rejected: u64,
    pub conflicts: u64,
    pub missing: u64,
}

/// The ledger entries the statement counts: `from_seq..=to_seq` (none when the month has no
/// usage) and the signed checkpoint that covers `to_seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLedger {
    pub from_seq: Option<u64>,
    pub to_seq: Option<u64>,
    pub checkpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementPolicy {
    /// `global` or `tenant`.
    pub scope: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub tenant_id: TenantId,
    pub month: StatementMonth,
    pub status: StatementStatus,
    pub currency: String,
    pub plans: Vec<StatementPlan>,
    pub lines: Vec<StatementLine>,
    pub adjustments: Vec<StatementAdjustment>,
    pub base_fee: Decimal,
    pub total: Decimal,
    pub counts: StatementCounts,
    pub ledger: StatementLedger,
    pub policies: Vec<StatementPolicy>,
    pub quota_events: Vec<serde_json::Value>,
    /// When the statement was computed (RFC 3339, UTC).
    pub generated_at: String,
}

/// Everything a statement is made of besides its money.
#[derive(Debug, Clone)]
pub struct StatementFacts {
    pub tenant_id: TenantId,
    pub month: StatementMonth,
    pub status: StatementStatus,
    pub counts: StatementCounts,
    pub ledger: StatementLedger,
    pub policies: Vec<StatementPolicy>,
    pub quota_events: Vec<serde_json::Value>,
    pub generated_at: String,
}

impl Statement {
    /// Assembles the document from its facts, the plans and the computed money.
    pub fn assemble(
        facts: StatementFacts,
        plans: &[PlanInForce],
        money: &ComputedMonth,
        adjustments: &[ComputedAdjustment],
    ) -> Self {
        Self {
            tenant_id: facts.tenant_id,
            month: facts.month,
            status: facts.status,
            currency: money.currency.as_str().to_owned(),
            plans: plans
                .iter()
                .map(|p| StatementPlan {
                    plan: p.version.plan.as_str().to_owned(),
                    version: p.version.version,
                    sha256: p.version.sha256_hex(),
                    from: format_day(p.from),
                    to: format_day(p.to),
                })
                .collect(),
            lines: money
                .lines
                .iter()
                .map(|l| StatementLine::of(l, plans))
                .collect(),
            adjustments: adjustments
                .iter()
                .map(|a| StatementAdjustment {
                    for_month: a.for_month,
                    key: a.key.clone(),
                    quantity: a.quantity,
                    amount: a.amount,
                })
                .collect(),
            base_fee: money.base_fee,
            total: total(money, adjustments),
            counts: facts.counts,
            ledger: facts.ledger,
            policies: facts.policies,
            quota_events: facts.quota_events,
            generated_at: facts.generated_at,
        }
    }

    /// The canonical form (RFC 8785), the bytes stored and hashed for a final statement.
    pub fn canonical_json(&self) -> String {
        let value = serde_json::to_value(self)
            .unwrap_or_else(|e| unreachable!("a statement is always serialisable: {e}"));
        companyos_ledger::jcs::canonicalize(&value)
            .unwrap_or_else(|e| unreachable!("a statement is always canonicalizable: {e}"))
    }

    /// The adjustments' form of the final lines: per key, quantity and amount summed over the
    /// plan versions.
    pub fn line_totals(&self) -> Vec<(UsageKey, Decimal, Decimal)> {
        let mut totals: std::collections::BTreeMap<&UsageKey, (Decimal, Decimal)> =
            std::collections::BTreeMap::new();
        for line in &self.lines {
            let entry = totals.entry(&line.key).or_default();
            entry.0 += line.quantity;
            entry.1 += line.amount;
        }
        totals
            .into_iter()
            .map(|(key, (quantity, amount))| (key.clone(), quantity, amount))
            .collect()
    }

    /// Adjustments carried by this statement, in the computed form.
    pub fn computed_adjustments(&self) -> Vec<ComputedAdjustment> {
        self.adjustments
            .iter()
            .map(|a| ComputedAdjustment {
                for_month: a.for_month,
                key: a.key.clone(),
                quantity: a.quantity,
                amount: a.amount,
            })
            .collect()
    }
}

/// The CSV columns of a statement: one row per line, per adjustment, then the base fee and the
/// total (`kind` says which).
pub const STATEMENT_CSV_COLUMNS: [&str; 13] = [
    "kind",
    "month",
    "for_month",
    "service",
    "metric",
    "unit",
    "plan",
    "version",
    "quantity",
    "included",
    "overage",
    "unit_price",
    "amount",
];

impl Statement {
    /// The statement as CSV cells (the caller quotes them): see [`STATEMENT_CSV_COLUMNS`].
    pub fn csv_rows(&self) -> Vec<Vec<String>> {
        let month = self.month.label();
        let mut rows: Vec<Vec<String>> = self
            .lines
            .iter()
            .map(|l| {
                vec![
                    "line".to_owned(),
                    month.clone(),
                    String::new(),
                    l.key.service.to_string(),
                    l.key.metric.to_string(),
                    l.key.unit.to_string(),
                    l.plan.clone(),
                    l.version.to_string(),
                    l.quantity.to_string(),
                    l.included.to_string(),
                    l.overage.to_string(),
                    l.unit_price.to_string(),
                    l.amount.to_string(),
                ]
            })
            .collect();
        rows.extend(self.adjustments.iter().map(|a| {
            let mut row = vec![String::new(); STATEMENT_CSV_COLUMNS.len()];
            row[0] = "adjustment".to_owned();
            row[1] = month.clone();
            row[2] = a.for_month.label();
            row[3] = a.key.service.to_string();
            row[4] = a.key.metric.to_string();
            row[5] = a.key.unit.to_string();
            row[8] = a.quantity.to_string();
            row[12] = a.amount.to_string();
            row
        }));
        for (kind, amount) in [("base_fee", self.base_fee), ("total", self.total)] {
            let mut row = vec![String::new(); STATEMENT_CSV_COLUMNS.len()];
            row[0] = kind.to_owned();
            row[1] = month.clone();
            row[12] = amount.to_string();
            rows.push(row);
        }
        rows
    }
}
