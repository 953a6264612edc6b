//! The group commit's writes and the stored rows it reads first: leaves, event bundles, keys, rejections, conflicts, counters, exact rollups (seeded from the stored rows) and source ranges.

#[allow(unused_imports)]
use super::*;

/// Writes the group's rows: leaves, event bundles, and what the key index records of them
/// (PostgreSQL's key rows; nothing on SQLite), then rejections, conflicts, counters, rollups,
/// source ranges and the catalogue of seen metrics. Returns `(event_key, bundle_id, position)`
/// of every event written.
pub(super) async fn write_state(
    tx: &mut Tx,
    state: &mut GroupState<'_>,
    now_micros: i64,
    key_index: &mut impl EventKeyIndex,
) -> Result<Vec<(i64, i64, i64)>, ServiceError> {
    ledger_store::write_many_appends(
        tx,
        state.slots.iter_mut().filter_map(|s| s.head.as_mut()),
        now_micros,
    )
    .await?;
    let written = write_event_bundles(tx, state, now_micros).await?;
    key_index.write_appended(tx, &written).await?;
    write_rejections(tx, &state.rejections, now_micros).await?;
    write_conflicts(tx, &state.conflicts, now_micros).await?;
    write_counters(tx, state).await?;
    let sorted_rollups = |late: bool| {
        let mut rows: Vec<(RollupKey<'_>, Rollup)> = state
            .slots
            .iter()
            .flat_map(|s| {
                let map = if late { &s.late_rollups } else { &s.rollups };
                map.iter().map(|((day, service, metric, unit), rollup)| {
                    (
                        (s.tenant_id, *day, *service, *metric, *unit),
                        rollup.clone(),
                    )
                })
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    };
    write_rollups(tx, "usage_daily", &sorted_rollups(false)).await?;
    write_rollups(tx, "usage_late", &sorted_rollups(true)).await?;
    for ((source, tenant_id), seqs) in &state.source_seqs {
        merge_source_ranges(tx, source, tenant_id, seqs).await?;
    }
    write_seen(tx, state, now_micros).await?;
    Ok(written)
}

/// Each tenant's new events, in seq order (slots are in tenant order), as payload bundles.
async fn write_event_bundles(
    tx: &mut Tx,
    state: &GroupState<'_>,
    now_micros: i64,
) -> Result<Vec<(i64, i64, i64)>, ServiceError> {
    let tenants: Vec<(&str, u64, Vec<bundles::NewEvent<'_>>)> = state
        .slots
        .iter()
        .filter(|s| !s.events.is_empty())
        .map(|slot| {
            let events = slot
                .events
                .iter()
                .map(|row| bundles::NewEvent {
                    key: row.checked.key,
                    event_id: row.checked.event.event_id.as_str(),
                    class: row.class,
                    flags: &row.flags,
                    canonical: row.checked.event.canonical.as_str(),
                    source_signature: row.checked.event.source_signature.as_deref(),
                })
                .collect();
            (slot.tenant_id, slot.first_seq, events)
        })
        .collect();
    Ok(bundles::write_events(tx, &tenants, now_micros).await?)
}

/// The group's rejections, for the reconciliation report.
async fn write_rejections(
    tx: &mut Tx,
    rejections: &[RejectionRow],
    now_micros: i64,
) -> Result<(), ServiceError> {
    let now = from_micros(now_micros);
    for chunk in crate::db::statement_chunks(rejections, ROWS_PER_STATEMENT) {
        let sql = format!(
            "{} usage_rejections (id, tenant_id, event_id, event_day, received_at, \
             errors, raw, raw_truncated) VALUES {}",
            Placeholders::of(tx).bulk_insert(),
            values_placeholders(Placeholders::of(tx), chunk.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = query
                .bind(new_id("rej", now))
                .bind(row.tenant_id.as_deref())
                .bind(row.event_id.as_deref())
                .bind(row.day)
                .bind(now_micros)
                .bind(row.errors.as_str())
                .bind(row.raw.as_str())
                .bind(i64::from(row.truncated));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The group's conflicts (the originals stand).
async fn write_conflicts(
    tx: &mut Tx,
    conflicts: &[ConflictRow],
    now_micros: i64,
) -> Result<(), ServiceError> {
    let now = from_micros(now_micros);
    for chunk in crate::db::statement_chunks(conflicts, ROWS_PER_STATEMENT) {
        let sql = format!(
            "{} usage_conflicts (id, tenant_id, event_id, original_seq, digest, \
             event_day, received_at, raw) VALUES {}",
            Placeholders::of(tx).bulk_insert(),
            values_placeholders(Placeholders::of(tx), chunk.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = query
                .bind(new_id("cfl", now))
                .bind(row.tenant_id.as_str())
                .bind(row.event_id.as_str())
                .bind(to_i64(row.original_seq)?)
                .bind(row.digest.as_str())
                .bind(row.day)
                .bind(now_micros)
                .bind(row.raw.as_str());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Adds the group's reconciliation counters to the stored ones.
async fn write_counters(tx: &mut Tx, state: &GroupState<'_>) -> Result<(), ServiceError> {
    // Reconciliation counts only tenants that exist (an unknown tenant id is still kept in the
    // rejection rows, for the global report). In (tenant, day) order, as every writer does.
    let mut counters: Vec<(&str, i64, Counters)> = state
        .slots
        .iter()
        .filter(|s| s.status.is_some())
        .flat_map(|s| s.counters.iter().map(|(day, c)| (s.tenant_id, *day, *c)))
        .collect();
    counters.sort_by_key(|(tenant, day, _)| (*tenant, *day));
    for chunk in crate::db::statement_chunks(&counters, ROWS_PER_STATEMENT) {
        let sql = format!(
            "{} usage_counters (tenant_id, day, accepted, duplicates, late, invalid, \
             conflicts, unsigned_events, undeclared) VALUES {} \
             ON CONFLICT (tenant_id, day) DO UPDATE SET \
             accepted = usage_counters.accepted + excluded.accepted, \
             duplicates = usage_counters.duplicates + excluded.duplicates, \
             late = usage_counters.late + excluded.late, \
             invalid = usage_counters.invalid + excluded.invalid, \
             conflicts = usage_counters.conflicts + excluded.conflicts, \
             unsigned_events = usage_counters.unsigned_events + excluded.unsigned_events, \
             undeclared = usage_counters.undeclared + excluded.undeclared",
            Placeholders::of(tx).bulk_insert(),
            values_placeholders(Placeholders::of(tx), chunk.len(), 9)
        );
        let mut query = sqlx::query(&sql);
        for (tenant_id, day, c) in chunk {
            query = query
                .bind(*tenant_id)
                .bind(*day)
                .bind(c.accepted)
                .bind(c.duplicates)
                .bind(c.late)
                .bind(c.invalid)
                .bind(c.conflicts)
                .bind(c.unsigned)
                .bind(c.undeclared);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The catalogue of metrics seen: first and last seen, and events.
async fn write_seen(
    tx: &mut Tx,
    state: &GroupState<'_>,
    now_micros: i64,
) -> Result<(), ServiceError> {
    let mut seen: Vec<(&(&str, &str, &str), &i64)> = state.seen.iter().collect();
    seen.sort();
    for chunk in crate::db::statement_chunks(&seen, ROWS_PER_STATEMENT) {
        let sql = format!(
            "{} metering_seen (service, metric, unit, first_seen, last_seen, events) \
             VALUES {} ON CONFLICT (service, metric, unit) DO UPDATE SET \
             last_seen = excluded.last_seen, events = metering_seen.events + excluded.events",
            Placeholders::of(tx).bulk_insert(),
            values_placeholders(Placeholders::of(tx), chunk.len(), 6)
        );
        let mut query = sqlx::query(&sql);
        for ((service, metric, unit), events) in chunk {
            query = query
                .bind(*service)
                .bind(*metric)
                .bind(*unit)
                .bind(now_micros)
                .bind(now_micros)
                .bind(**events);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

pub(super) fn to_i64(value: u64) -> Result<i64, ServiceError> {
    Ok(crate::db::to_i64(value)?)
}

/// An owned rollup key, as read back from the store.
pub(super) type OwnedRollupKey = (String, i64, String, String, String);

/// (late, day, service, metric, unit): a stored rollup row of a tenant, `late` naming
/// `usage_late` rather than `usage_daily`.
pub(super) type StoredSeries = (bool, i64, String, String, String);

/// Reads the stored rollup rows every new event of the group could add to (both tables, for
/// tenants whose ledger head the group holds, so no other writer changes them until commit)
/// into the tenants' slots.
pub(super) async fn load_rollups(
    tx: &mut Tx,
    jobs: &[Job],
    state: &mut GroupState<'_>,
) -> Result<(), ServiceError> {
    let mut daily: BTreeSet<RollupKey<'_>> = BTreeSet::new();
    let mut late: BTreeSet<RollupKey<'_>> = BTreeSet::new();
    for checked in jobs.iter().flat_map(|j| &j.checked) {
        let event = &checked.event;
        let Some(slot) = state
            .slot_of
            .get(event.tenant_id.as_str())
            .map(|at| &state.slots[*at])
        else {
            continue;
        };
        if slot.head.is_none() {
            continue;
        }
        let is_late = checked.late_by_age || slot.closed_days.contains(&checked.day);
        let key = (
            event.tenant_id.as_str(),
            checked.day,
            event.service.as_str(),
            event.metric.as_str(),
            event.unit.as_str(),
        );
        if is_late {
            late.insert(key);
        } else {
            daily.insert(key);
        }
    }
    for (is_late, table, keys) in [(false, "usage_daily", daily), (true, "usage_late", late)] {
        let keys: Vec<RollupKey<'_>> = keys.into_iter().collect();
        for ((tenant_id, day, service, metric, unit), rollup) in
            read_rollups(tx, table, &keys).await?
        {
            if let Some(at) = state.slot_of.get(tenant_id.as_str()) {
                state.slots[*at]
                    .stored_rollups
                    .insert((is_late, day, service, metric, unit), rollup);
            }
        }
    }
    Ok(())
}

/// The stored rows of `table` among `keys`: one read per chunk of keys.
pub(super) async fn read_rollups(
    tx: &mut Tx,
    table: &str,
    keys: &[RollupKey<'_>],
) -> Result<Vec<(OwnedRollupKey, Rollup)>, ServiceError> {
    let mut stored = Vec::new();
    for chunk in crate::db::statement_chunks(keys, ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH k (t, d, s, m, u) AS (VALUES {}) SELECT r.tenant_id, r.day, r.service, \
             r.metric, r.unit, r.quantity_sum, r.quantity_max, r.events FROM k JOIN {table} r \
             ON r.tenant_id = k.t AND r.day = k.d AND r.service = k.s AND r.metric = k.m \
             AND r.unit = k.u",
            values_placeholders(Placeholders::of(tx), chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for (tenant_id, day, service, metric, unit) in chunk {
            query = query
                .bind(*tenant_id)
                .bind(*day)
                .bind(*service)
                .bind(*metric)
                .bind(*unit);
        }
        for row in query.fetch_all(&mut **tx).await? {
            let sum: String = row.try_get("quantity_sum")?;
            let max: String = row.try_get("quantity_max")?;
            stored.push((
                (
                    row.try_get("tenant_id")?,
                    row.try_get("day")?,
                    row.try_get("service")?,
                    row.try_get("metric")?,
                    row.try_get("unit")?,
                ),
                Rollup {
                    sum: sum
                        .parse()
                        .map_err(|_| StoreError::corrupt("rollup quantity"))?,
                    max: max
                        .parse()
                        .map_err(|_| StoreError::corrupt("rollup quantity"))?,
                    events: row.try_get("events")?,
                },
            ));
        }
    }
    Ok(stored)
}

/// Writes a group's rollup totals (sorted by key; each is the stored total plus the group's
/// events, summed exactly as the events were decided) in one multi-row upsert per chunk.
pub(super) async fn write_rollups(
    tx: &mut Tx,
    table: &str,
    totals: &[(RollupKey<'_>, Rollup)],
) -> Result<(), ServiceError> {
    for chunk in crate::db::statement_chunks(totals, ROWS_PER_STATEMENT) {
        let sql = format!(
            "{} {table} (tenant_id, day, service, metric, unit, quantity_sum, \
             quantity_max, events) VALUES {} \
             ON CONFLICT (tenant_id, day, service, metric, unit) DO UPDATE SET \
             quantity_sum = excluded.quantity_sum, quantity_max = excluded.quantity_max, \
             events = excluded.events",
            Placeholders::of(tx).bulk_insert(),
            values_placeholders(Placeholders::of(tx), chunk.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for ((tenant_id, day, service, metric, unit), total) in chunk {
            query = query
                .bind(*tenant_id)
                .bind(*day)
                .bind(*service)
                .bind(*metric)
                .bind(*unit)
                .bind(total.sum.normalize().to_string())
                .bind(total.max.normalize().to_string())
                .bind(total.events);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Merges received `source_seq` values into the stored disjoint ranges of a (source, tenant).
pub(super) async fn merge_source_ranges(
    tx: &mut Tx,
    source: &str,
    tenant_id: &str,
    seqs: &[(u64, i64)],
) -> Result<(), ServiceError> {
    let (Some(low), Some(high)) = (
        seqs.iter().map(|(s, _)| *s).min(),
        seqs.iter().map(|(s, _)| *s).max(),
    ) else {
        return Ok(());
    };
    let rows = sqlx::query(
        "SELECT from_seq, to_seq, first_day FROM source_seq_ranges WHERE source = $1 \
         AND tenant_id = $2 AND to_seq >= $3 AND from_seq <= $4",
    )
    .bind(source)
    .bind(tenant_id)
    .bind(to_i64(low.saturating_sub(1))?)
    .bind(to_i64(high + 1)?)
    .fetch_all(&mut **tx)
    .await?;
    let mut ranges: Vec<(u64, u64, i64)> = Vec::with_capacity(rows.len() + seqs.len());
    for row in &rows {
        ranges.push((
            u64::try_from(row.try_get::<i64, _>("from_seq")?)
                .map_err(|_| StoreError::corrupt("seq"))?,
            u64::try_from(row.try_get::<i64, _>("to_seq")?)
                .map_err(|_| StoreError::corrupt("seq"))?,
            row.try_get("first_day")?,
        ));
    }
    for (seq, day) in seqs {
        ranges.push((*seq, *seq, *day));
    }
    ranges.sort_by_key(|r| (r.0, std::cmp::Reverse(r.1)));
    let mut merged: Vec<(u64, u64, i64)> = Vec::new();
    for (from, to, day) in ranges {
        match merged.last_mut() {
            Some(last) if from <= last.1.saturating_add(1) => {
                last.1 = last.1.max(to);
            }
            _ => merged.push((from, to, day)),
        }
    }
    sqlx::query(
        "DELETE FROM source_seq_ranges WHERE source = $1 AND tenant_id = $2 \
         AND to_seq >= $3 AND from_seq <= $4",
    )
    .bind(source)
    .bind(tenant_id)
    .bind(to_i64(low.saturating_sub(1))?)
    .bind(to_i64(high + 1)?)
    .execute(&mut **tx)
    .await?;
    for (from, to, day) in merged {
        sqlx::query(
            "INSERT INTO source_seq_ranges (source, tenant_id, from_seq, to_seq, first_day) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(source)
        .bind(tenant_id)
        .bind(to_i64(from)?)
        .bind(to_i64(to)?)
        .bind(day)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
