//! Statement exports for billing systems (issue 17 item 7, ADR 0004 as amended): Stripe invoice
//! items (`?format=stripe`) and a generic ERP CSV (`?format=erp`). Money is never computed
//! here: every amount is the statement's own, only re-expressed (Stripe wants integer minor
//! units).

use companyos_core::statements::StatementDocument;
use companyos_domain::catalog::Currency;
use companyos_domain::statement::Statement;
use companyos_domain::time_util::{day_start, to_micros};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::error::AppError;

/// The period of an invoice item, Unix seconds (`end` exclusive: the first of the next month).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StripePeriod {
    pub start: i64,
    pub end: i64,
}

/// One invoice item as Stripe's `POST /v1/invoiceitems` (and its CSV import) takes it.
#[derive(Debug, Serialize)]
pub struct StripeInvoiceItem {
    /// The Stripe customer: the tenant id (map it to a `cus_…` id in the import).
    pub customer: String,
    /// Integer minor units of `currency`.
    pub amount: i64,
    /// Lower-case ISO 4217, as Stripe writes it.
    pub currency: String,
    pub description: String,
    pub period: StripePeriod,
    pub metadata: StripeMetadata,
}

#[derive(Debug, Serialize)]
pub struct StripeMetadata {
    pub tenant_id: String,
    pub month: String,
    pub kind: &'static str,
    pub statement_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<String>,
}

fn minor_units(currency: &Currency, amount: Decimal) -> Result<i64, AppError> {
    let scaled = amount * Decimal::from(10_i64.pow(currency.minor_unit_digits()));
    i64::try_from(scaled.trunc()).map_err(|_| {
        AppError::from(companyos_core::ServiceError::Internal(
            "an amount does not fit Stripe's integer minor units".to_owned(),
        ))
    })
}

/// The invoice items of a statement: the base fee, each line and adjustment with an amount.
pub fn stripe_items(document: &StatementDocument) -> Result<Vec<StripeInvoiceItem>, AppError> {
    let s = &document.statement;
    let currency = Currency::parse_field(&s.currency, "currency")
        .map_err(|e| AppError::from(companyos_core::ServiceError::Internal(e.message)))?;
    let period = StripePeriod {
        start: to_micros(day_start(s.month.first_day())) / 1_000_000,
        end: to_micros(day_start(s.month.end())) / 1_000_000,
    };
    charges(s)
        .into_iter()
        .filter(|charge| !charge.amount.is_zero())
        .map(|charge| {
            Ok(StripeInvoiceItem {
                customer: s.tenant_id.to_string(),
                amount: minor_units(&currency, charge.amount)?,
                currency: s.currency.to_ascii_lowercase(),
                description: charge.description,
                period,
                metadata: StripeMetadata {
                    tenant_id: s.tenant_id.to_string(),
                    month: s.month.label(),
                    kind: charge.kind,
                    statement_sha256: document.sha256.clone(),
                    quantity: charge.quantity.map(|q| q.to_string()),
                    unit_price: charge.unit_price.map(|p| p.to_string()),
                },
            })
        })
        .collect()
}

/// One charge of a statement, zero or not, before it becomes an invoice item.
struct Charge {
    amount: Decimal,
    description: String,
    kind: &'static str,
    quantity: Option<Decimal>,
    unit_price: Option<Decimal>,
}

/// The statement's charges in invoice order: the base fee, the lines, the adjustments.
fn charges(s: &Statement) -> Vec<Charge> {
    let plans: Vec<String> = s
        .plans
        .iter()
        .map(|p| format!("{} v{}", p.plan, p.version))
        .collect();
    let base_fee = Charge {
        amount: s.base_fee,
        description: format!("Base fee {} ({})", s.month, plans.join(", ")),
        kind: "base_fee",
        quantity: None,
        unit_price: None,
    };
    let lines = s.lines.iter().map(|line| Charge {
        amount: line.amount,
        description: format!(
            "{} {} overage {} {} at {} ({} v{})",
            line.key.service,
            line.key.metric,
            line.overage,
            line.key.unit,
            line.unit_price,
            line.plan,
            line.version
        ),
        kind: "line",
        quantity: Some(line.overage),
        unit_price: Some(line.unit_price),
    });
    let adjustments = s.adjustments.iter().map(|adjustment| Charge {
        amount: adjustment.amount,
        description: format!(
            "Adjustment of {}: {} {} {} {}",
            adjustment.for_month,
            adjustment.key.service,
            adjustment.key.metric,
            adjustment.quantity,
            adjustment.key.unit
        ),
        kind: "adjustment",
        quantity: Some(adjustment.quantity),
        unit_price: None,
    });
    std::iter::once(base_fee)
        .chain(lines)
        .chain(adjustments)
        .collect()
}

/// The generic ERP CSV: one row per charge, amounts in the statement's currency.
pub const ERP_COLUMNS: [&str; 13] = [
    "tenant_id",
    "month",
    "kind",
    "for_month",
    "service",
    "metric",
    "unit",
    "quantity",
    "unit_price",
    "amount",
    "currency",
    "plans",
    "statement_sha256",
];

pub fn erp_rows(document: &StatementDocument) -> Vec<Vec<String>> {
    let s = &document.statement;
    let plans: Vec<String> = s
        .plans
        .iter()
        .map(|p| format!("{}@{}", p.plan, p.version))
        .collect();
    let row = |kind: &str,
               for_month: String,
               key: Option<&companyos_domain::statement::UsageKey>,
               quantity: String,
               unit_price: String,
               amount: Decimal| {
        vec![
            s.tenant_id.to_string(),
            s.month.label(),
            kind.to_owned(),
            for_month,
            key.map(|k| k.service.to_string()).unwrap_or_default(),
            key.map(|k| k.metric.to_string()).unwrap_or_default(),
            key.map(|k| k.unit.to_string()).unwrap_or_default(),
            quantity,
            unit_price,
            amount.to_string(),
            s.currency.clone(),
            plans.join(" "),
            document.sha256.clone(),
        ]
    };
    let mut rows = vec![row(
        "base_fee",
        String::new(),
        None,
        String::new(),
        String::new(),
        s.base_fee,
    )];
    for l in &s.lines {
        rows.push(row(
            "line",
            String::new(),
            Some(&l.key),
            l.overage.to_string(),
            l.unit_price.to_string(),
            l.amount,
        ));
    }
    for a in &s.adjustments {
        rows.push(row(
            "adjustment",
            a.for_month.label(),
            Some(&a.key),
            a.quantity.to_string(),
            String::new(),
            a.amount,
        ));
    }
    rows
}
