//! The counted events of a tenant's months: every stored (accepted or late) event, read in
//! bounded ranges of the ledger, bucketed by the UTC month of its timestamp. Duplicates and
//! conflicts are never stored as events, so each event counts once.

use std::collections::BTreeMap;

use companyos_domain::statement::{DayUsage, StatementMonth, UsageKey};
use companyos_domain::time_util::{parse_rfc3339, utc_day};
use companyos_domain::{MetricName, ServiceName, Unit};
use rust_decimal::Decimal;
use serde::Deserialize;
use sqlx::AnyConnection;

use crate::bundles::{StoredEvent, read_events};
use crate::db::StoreError;

/// Events read per query while scanning a tenant's ledger.
pub const EVENTS_PER_READ_MAX: u64 = 10_000;

/// The fields of a canonical event a statement needs.
#[derive(Debug, Deserialize)]
struct CountedFields {
    service: String,
    metric: String,
    unit: String,
    quantity: serde_json::Value,
    timestamp: String,
}

/// One counted event: where it sits in the ledger and what it adds to which day.
#[derive(Debug, Clone)]
pub struct CountedEvent {
    pub seq: u64,
    pub usage: DayUsage,
    pub canonical: String,
}

/// Reads the usage of a canonical event; a payload that does not parse is a corrupt store.
pub fn counted_usage(canonical: &str) -> Result<DayUsage, StoreError> {
    let fields: CountedFields = serde_json::from_str(canonical)
        .map_err(|e| StoreError::corrupt(format!("stored event does not parse: {e}")))?;
    let corrupt = |what: &str| StoreError::corrupt(format!("stored event has a bad {what}"));
    let quantity_text = match &fields.quantity {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Number(number) => number.to_string(),
        _ => return Err(corrupt("quantity")),
    };
    let quantity = quantity_text
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&quantity_text))
        .map_err(|_| corrupt("quantity"))?;
    let at = parse_rfc3339(&fields.timestamp, "timestamp").map_err(|_| corrupt("timestamp"))?;
    Ok(DayUsage {
        day: utc_day(at),
        key: UsageKey {
            service: ServiceName::parse(&fields.service).map_err(|_| corrupt("service"))?,
            metric: MetricName::parse(&fields.metric).map_err(|_| corrupt("metric"))?,
            unit: Unit::parse(&fields.unit).map_err(|_| corrupt("unit"))?,
        },
        quantity,
    })
}

/// Every stored event of a tenant below `tree_size`, by the month of its timestamp, in `seq`
/// order within a month. Only months in `months` are kept (the rest are skipped, not held).
pub async fn events_by_month(
    conn: &mut AnyConnection,
    tenant_id: &str,
    tree_size: u64,
    keep: &(dyn Fn(StatementMonth) -> bool + Sync),
) -> Result<BTreeMap<StatementMonth, Vec<CountedEvent>>, StoreError> {
    let mut months: BTreeMap<StatementMonth, Vec<CountedEvent>> = BTreeMap::new();
    let mut from = 0;
    while from < tree_size {
        let to = (from + EVENTS_PER_READ_MAX).min(tree_size);
        let events: Vec<StoredEvent> = read_events(conn, tenant_id, from, to).await?;
        for event in events {
            let usage = counted_usage(&event.canonical)?;
            let month = StatementMonth::of(usage.day);
            if keep(month) {
                months.entry(month).or_default().push(CountedEvent {
                    seq: event.seq,
                    usage,
                    canonical: event.canonical,
                });
            }
        }
        from = to;
    }
    Ok(months)
}
