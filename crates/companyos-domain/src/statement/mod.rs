//! Monthly statements (BILL-3): the month, the money maths and the statement document. No I/O:
//! the service layer feeds it usage, plans and facts; a verifier recomputes with it.

pub mod document;
pub mod lines;
pub mod month;

pub use document::{
    STATEMENT_CSV_COLUMNS, Statement, StatementAdjustment, StatementCounts, StatementFacts,
    StatementLedger, StatementLine, StatementPlan, StatementPolicy, StatementStatus,
};
pub use lines::{
    ComputedAdjustment, ComputedLine, ComputedMonth, DayUsage, PlanInForce, StatementMathError,
    UsageKey, adjustments_for, compute_month, prorated_included, total,
};
pub use month::StatementMonth;

#[cfg(test)]
mod tests;
