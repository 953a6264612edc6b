//! A tenant's daily rollups two ways, for `ledger verify`, day close and the integrity report:
//! recomputed from the ledger's payloads, and as stored in `usage_rollups`.

use std::collections::BTreeMap;

use companyos_ledger::leaf::EventClass;
use rust_decimal::Decimal;
use sqlx::{AnyConnection, Row as _};

use crate::db::StoreError;
use crate::error::ServiceError;

/// (day, service, metric, unit) -> (sum, events).
pub(crate) type RollupMap = BTreeMap<(i64, String, String, String), (Decimal, i64)>;

/// Sums the on-time events of a tenant from the ledger payloads (not from the columns).
pub(crate) async fn recompute_rollups(
    conn: &mut AnyConnection,
    tenant_id: &str,
    days: Option<(i64, i64)>,
) -> Result<RollupMap, ServiceError> {
    let mut map = RollupMap::new();
    let page = 10_000u64;
    let mut next = 0u64;
    loop {
        let events =
            crate::bundles::read_events(conn, tenant_id, next, next.saturating_add(page)).await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            // A gap of a whole page (never written, or damaged) ends the scan only if nothing
            // follows it.
            match next_bundle_from(conn, tenant_id, next).await? {
                Some(more) => {
                    next = more;
                    continue;
                }
                None => break,
            }
        };
        next = last + 1;
        for stored in &events {
            add_on_time_event(&mut map, tenant_id, stored, days)?;
        }
    }
    for value in map.values_mut() {
        value.0 = value.0.normalize();
    }
    Ok(map)
}

/// The first leaf of the first bundle of a tenant's at or after `from`, if there is one.
async fn next_bundle_from(
    conn: &mut AnyConnection,
    tenant_id: &str,
    from: u64,
) -> Result<Option<u64>, ServiceError> {
    let more: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(first_seq) FROM usage_event_bundles WHERE tenant_id = $1 \
         AND first_seq >= $2",
    )
    .bind(tenant_id)
    .bind(i64::try_from(from).unwrap_or(i64::MAX))
    .fetch_one(&mut *conn)
    .await?;
    Ok(more.and_then(|m| u64::try_from(m).ok()))
}

/// Adds one stored event to the rollups when it is on time, parses, and falls in `days`.
fn add_on_time_event(
    map: &mut RollupMap,
    tenant_id: &str,
    stored: &crate::bundles::StoredEvent,
    days: Option<(i64, i64)>,
) -> Result<(), ServiceError> {
    if stored.class != EventClass::OnTime {
        return Ok(());
    }
    let Ok(event) = companyos_domain::usage::UsageEvent::parse_bytes(stored.canonical.as_bytes())
    else {
        return Ok(());
    };
    let day = companyos_domain::time_util::day_number(companyos_domain::time_util::utc_day(
        event.timestamp,
    ));
    if let Some((from, to)) = days {
        if day < from || day > to {
            return Ok(());
        }
    }
    let entry = map
        .entry((
            day,
            event.service.into_string(),
            event.metric.into_string(),
            event.unit.into_string(),
        ))
        .or_insert((Decimal::ZERO, 0));
    // The same exact addition as ingestion: a sum that would round is a finding (the writer
    // refuses the event that would cause it), never a rounded total that happens to agree with
    // a rounded stored one.
    entry.0 = companyos_domain::usage::exact_add(entry.0, event.quantity.as_decimal()).ok_or_else(
        || {
            ServiceError::Internal(format!(
                "tenant {tenant_id}: the ledger's on-time events of day {} do not sum exactly",
                companyos_domain::time_util::format_day(
                    companyos_domain::time_util::day_from_number(day)
                ),
            ))
        },
    )?;
    entry.1 += 1;
    Ok(())
}

/// The stored on-time rollups of a tenant.
pub(crate) async fn stored_rollups(
    conn: &mut AnyConnection,
    tenant_id: &str,
    days: Option<(i64, i64)>,
) -> Result<RollupMap, ServiceError> {
    let (from, to) = days.unwrap_or((i64::MIN, i64::MAX));
    let rows = sqlx::query(
        "SELECT day, service, metric, unit, quantity_sum, events FROM usage_daily \
         WHERE tenant_id = $1 AND day >= $2 AND day <= $3",
    )
    .bind(tenant_id)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let mut map = RollupMap::new();
    for row in &rows {
        let sum: String = row.try_get("quantity_sum")?;
        let sum: Decimal = sum
            .parse()
            .map_err(|_| StoreError::corrupt("stored rollup quantity"))?;
        map.insert(
            (
                row.try_get("day")?,
                row.try_get("service")?,
                row.try_get("metric")?,
                row.try_get("unit")?,
            ),
            (sum.normalize(), row.try_get("events")?),
        );
    }
    Ok(map)
}
