//! What the group commit reads under the ledger head locks before it decides: tenant
//! statuses, closed days, and the stored events of the group's compact keys, looked up through
//! the store's key index.

#[allow(unused_imports)]
use super::*;

pub(super) async fn tenant_statuses(
    conn: &mut AnyConnection,
    tenant_ids: &[&str],
) -> Result<HashMap<String, TenantStatus>, StoreError> {
    let mut statuses = HashMap::new();
    for chunk in crate::db::statement_chunks(tenant_ids, KEYS_PER_LOOKUP) {
        let sql = format!(
            "SELECT id, status FROM tenants WHERE id IN ({})",
            list_placeholders(Placeholders::of(conn), 1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let status: String = row.try_get("status")?;
            statuses.insert(
                row.try_get("id")?,
                TenantStatus::parse(&status)
                    .ok_or_else(|| StoreError::corrupt(format!("tenant status {status:?}")))?,
            );
        }
    }
    Ok(statuses)
}

/// The closed (tenant, day) pairs among the days of the group's events, for tenants that take
/// usage.
pub(super) async fn closed_days(
    conn: &mut AnyConnection,
    jobs: &[Job],
    state: &GroupState<'_>,
) -> Result<Vec<(String, i64)>, StoreError> {
    let days: BTreeSet<i64> = jobs
        .iter()
        .flat_map(|j| &j.checked)
        .map(|c| day_number(utc_day(c.event.timestamp)))
        .collect();
    let tenants: Vec<&str> = state
        .slots
        .iter()
        .filter(|s| s.head.is_some())
        .map(|s| s.tenant_id)
        .collect();
    let mut closed = Vec::new();
    if tenants.is_empty() || days.is_empty() {
        return Ok(closed);
    }
    let days: Vec<i64> = days.into_iter().collect();
    for tenant_chunk in crate::db::statement_chunks(&tenants, KEYS_PER_LOOKUP) {
        for day_chunk in crate::db::statement_chunks(&days, KEYS_PER_LOOKUP) {
            let sql = format!(
                "SELECT tenant_id, day FROM usage_days_closed WHERE tenant_id IN ({}) AND day IN ({})",
                list_placeholders(Placeholders::of(conn), 1, tenant_chunk.len()),
                list_placeholders(
                    Placeholders::of(conn),
                    1 + tenant_chunk.len(),
                    day_chunk.len()
                )
            );
            let mut query = sqlx::query(&sql);
            for tenant in tenant_chunk {
                query = query.bind(*tenant);
            }
            for day in day_chunk {
                query = query.bind(*day);
            }
            for row in query.fetch_all(&mut *conn).await? {
                closed.push((row.try_get("tenant_id")?, row.try_get("day")?));
            }
        }
    }
    Ok(closed)
}

/// Stored events of a group's keys, by compact key.
pub(super) type StoredKeys = dedupe::KeyMap<Vec<bundles::EventIdentity>>;

pub(super) async fn existing_keys(
    conn: &mut AnyConnection,
    jobs: &[Job],
    state: &GroupState<'_>,
    key_index: &mut impl EventKeyIndex,
) -> Result<StoredKeys, StoreError> {
    // Compact keys computed when each request was checked, of tenants that take events.
    let takes_usage = |tenant_id: &str| {
        state
            .slot_of
            .get(tenant_id)
            .is_some_and(|at| state.slots[*at].head.is_some())
    };
    let mut keys: Vec<i64> = jobs
        .iter()
        .flat_map(|j| &j.checked)
        .filter(|c| takes_usage(c.event.tenant_id.as_str()))
        .map(|c| c.key)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut existing = StoredKeys::default();
    // Indexed lookups of the compact keys; a key match is only a candidate until its tenant and
    // event id match too (compared by the caller).
    for found in dedupe::lookup(conn, key_index, &keys).await? {
        existing.entry(found.key).or_default().push(found);
    }
    Ok(existing)
}
