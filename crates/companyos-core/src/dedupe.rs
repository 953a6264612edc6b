//! The dedupe key index: compact event keys of every stored usage event, pointing at the event's
//! bundle and position (ADR 0005, ADR 0006). On SQLite it is an on-disk index merged in bulk
//! plus an in-memory tail of the bundles written since; on PostgreSQL an ordinary B-tree index
//! written in the ingestion transaction.
//!
//! Why not a plain index on SQLite: event ids are random UUIDs, so each group commit would write
//! its keys onto random pages of that index, and SQLite writes every dirtied 8 KiB page to the
//! WAL. Once the index outgrows the keys of one commit, each event costs kilobytes of WAL and
//! ingestion slows down as the store grows (measured: 29,997 events/s on an empty store, 18,087
//! with 1M events stored, 11,812 with 10M; docs/BENCHMARKS.md). Here the commit only appends
//! bundles; the keys of bundles above `usage_key_index.indexed_bundle_id` (the *tail*) are
//! looked up in memory, and once the tail holds `tail_rows_max` keys the writer merges it into
//! `usage_event_keys` in one sorted bulk insert, which dirties each index page at most once per
//! merge.
//!
//! Correctness does not rest on the memory: the tail is a cache of rows in the database, checked
//! inside every write transaction (which holds SQLite's write lock) against the index state row
//! and the highest bundle id, and reloaded when another process (or a purge) changed either.
//! PostgreSQL logs tuples, not pages, and several nodes write at once: it keeps the B-tree.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use companyos_ledger::usage_event::EventDigest;
use sqlx::{AnyConnection, Row as _};

use crate::bundles;
use crate::db::{Backend, Placeholders, StoreError, list_placeholders};

/// Keys per lookup statement.
const KEYS_PER_LOOKUP: usize = 256;

/// Where a stored event is: its bundle's id and its position in the bundle.
pub type EventPlace = (i64, i64);

/// Compact keys are already uniform hashes (the first 8 bytes of a SHA-256): hashing them again
/// would only cost time.
#[derive(Debug, Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_i64(&mut self, value: i64) {
        self.0 = value as u64;
    }
}

/// A hash map keyed by compact event keys.
pub type KeyMap<V> = HashMap<i64, V, BuildHasherDefault<KeyHasher>>;

/// Places by compact key; almost every key has one place, the rare others spill over.
#[derive(Debug, Default)]
struct TailKeys {
    first: KeyMap<EventPlace>,
    more: KeyMap<Vec<EventPlace>>,
}

impl TailKeys {
    fn len(&self) -> usize {
        self.first.len() + self.more.values().map(Vec::len).sum::<usize>()
    }

    fn insert(&mut self, key: i64, place: EventPlace) {
        match self.first.entry(key) {
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(place);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(key).or_default().push(place);
            }
        }
    }

    fn places(&self, key: i64) -> impl Iterator<Item = EventPlace> + '_ {
        self.first
            .get(&key)
            .copied()
            .into_iter()
            .chain(self.more.get(&key).into_iter().flatten().copied())
    }

    /// Every `(key, bundle_id, position)`, sorted (the order of the merged index).
    fn sorted(&self) -> Vec<(i64, i64, i64)> {
        let mut all: Vec<(i64, i64, i64)> = self
            .first
            .iter()
            .map(|(k, (b, p))| (*k, *b, *p))
            .chain(
                self.more
                    .iter()
                    .flat_map(|(k, places)| places.iter().map(move |(b, p)| (*k, *b, *p))),
            )
            .collect();
        all.sort_unstable();
        all
    }
}

/// A Bloom filter over every key of the merged index, so that a new key (nearly every key) is
/// not looked up in an index that outgrew the page cache. It only ever says "maybe" or "no":
/// a "maybe" is looked up as before, so extra keys (a merge that did not commit) cost a lookup,
/// never a wrong answer. It is valid for one index state, like the tail.
#[derive(Debug)]
struct MergedFilter {
    bits: Vec<u64>,
    /// Keys it was sized for; more make false positives likelier, so it is rebuilt bigger.
    keys_capacity: usize,
    keys: usize,
}

/// Filter bits per key of capacity (with [`FILTER_PROBES`] probes: about 1 % false positives
/// when full, less before).
const FILTER_BITS_PER_KEY: usize = 10;
const FILTER_PROBES: u32 = 7;
/// The smallest filter, in keys.
const FILTER_KEYS_MIN: usize = 1 << 20;
/// Above this many merged keys there is no filter (every key is looked up): bounds the memory
/// at about 250 MB.
pub const FILTER_KEYS_MAX: usize = 100_000_000;
/// Keys read per statement when the filter is built from the index.
const FILTER_SCAN_ROWS: i64 = 65_536;

impl MergedFilter {
    fn with_capacity(keys: usize) -> Self {
        let bits = (keys.max(FILTER_KEYS_MIN) * FILTER_BITS_PER_KEY).next_power_of_two();
        Self {
            bits: vec![0; bits / 64],
            keys_capacity: keys.max(FILTER_KEYS_MIN),
            keys: 0,
        }
    }

    /// The bit positions of a key: double hashing over the (already uniform) compact key.
    fn positions(&self, key: i64) -> impl Iterator<Item = usize> + '_ {
        let mask = (self.bits.len() * 64 - 1) as u64;
        let first = key as u64;
        let step = first.rotate_left(32).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..u64::from(FILTER_PROBES))
            .map(move |i| (first.wrapping_add(i.wrapping_mul(step)) & mask) as usize)
    }

    fn insert(&mut self, key: i64) {
        let positions: Vec<usize> = self.positions(key).collect();
        for position in positions {
            self.bits[position / 64] |= 1 << (position % 64);
        }
        self.keys += 1;
    }

    fn may_contain(&self, key: i64) -> bool {
        self.positions(key)
            .all(|position| self.bits[position / 64] & (1 << (position % 64)) != 0)
    }
}

/// Builds a filter over every key of the merged index, sized for twice as many.
async fn build_filter(conn: &mut AnyConnection) -> Result<Option<MergedFilter>, StoreError> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_event_keys")
        .fetch_one(&mut *conn)
        .await?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > FILTER_KEYS_MAX {
        return Ok(None);
    }
    let mut filter = MergedFilter::with_capacity(count.saturating_mul(2));
    let mut after: Option<i64> = None;
    loop {
        // Keyset pages in key order, along the index.
        let keys: Vec<i64> =
            match after {
                None => sqlx::query_scalar(
                    "SELECT DISTINCT event_key FROM usage_event_keys ORDER BY event_key LIMIT $1",
                )
                .bind(FILTER_SCAN_ROWS)
                .fetch_all(&mut *conn)
                .await?,
                Some(after) => {
                    sqlx::query_scalar(
                        "SELECT DISTINCT event_key FROM usage_event_keys WHERE event_key > $1 \
                     ORDER BY event_key LIMIT $2",
                    )
                    .bind(after)
                    .bind(FILTER_SCAN_ROWS)
                    .fetch_all(&mut *conn)
                    .await?
                }
            };
        let Some(last) = keys.last().copied() else {
            break;
        };
        for key in &keys {
            filter.insert(*key);
        }
        if keys.len() < usize::try_from(FILTER_SCAN_ROWS).unwrap_or(usize::MAX) {
            break;
        }
        after = Some(last);
    }
    Ok(Some(filter))
}

/// What the tail was loaded against; any change means another writer touched the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexState {
    generation: i64,
    indexed_bundle_id: i64,
}

/// The in-memory tail: the keys of every bundle above the indexed bundle id.
#[derive(Debug, Default)]
pub struct KeyTail {
    loaded: Option<LoadedTail>,
}

#[derive(Debug)]
struct LoadedTail {
    state: IndexState,
    /// The highest bundle id the tail covers (the highest stored id when it was last synced).
    last_bundle_id: i64,
    keys: TailKeys,
    /// Over the merged index of `state`; built at this process's first merge.
    filter: Option<MergedFilter>,
}

async fn read_state(conn: &mut AnyConnection) -> Result<IndexState, StoreError> {
    let row = sqlx::query("SELECT generation, indexed_bundle_id FROM usage_key_index WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    Ok(IndexState {
        generation: row.try_get(0)?,
        indexed_bundle_id: row.try_get(1)?,
    })
}

async fn max_bundle_id(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM usage_event_bundles")
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// `(event_key, (bundle_id, position))` of the bundles with `after < id <= upto`.
async fn keys_between(
    conn: &mut AnyConnection,
    after: i64,
    upto: i64,
) -> Result<Vec<(i64, EventPlace)>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, event_keys FROM usage_event_bundles WHERE id > $1 AND id <= $2 ORDER BY id",
    )
    .bind(after)
    .bind(upto)
    .fetch_all(&mut *conn)
    .await?;
    let mut keys = Vec::new();
    for row in &rows {
        let id: i64 = row.try_get(0)?;
        let bytes: Vec<u8> = row.try_get(1)?;
        for (position, key) in (0i64..).zip(bundles::decode_keys(&bytes)?) {
            keys.push((key, (id, position)));
        }
    }
    Ok(keys)
}

impl KeyTail {
    /// Keys in the tail (0 when not loaded).
    pub fn len(&self) -> usize {
        self.loaded.as_ref().map_or(0, |t| t.keys.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Brings the tail up to date with the store, on a connection that sees the latest commit
    /// (inside the write transaction, it cannot change until commit).
    pub async fn sync(&mut self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        let state = read_state(conn).await?;
        let max = max_bundle_id(conn).await?;
        match &mut self.loaded {
            Some(tail) if tail.state == state && tail.last_bundle_id <= max => {
                if tail.last_bundle_id < max {
                    // Another process appended bundles since; take them in.
                    for (key, place) in keys_between(conn, tail.last_bundle_id, max).await? {
                        tail.keys.insert(key, place);
                    }
                    tail.last_bundle_id = max;
                }
            }
            _ => {
                let mut keys = TailKeys::default();
                for (key, place) in keys_between(conn, state.indexed_bundle_id, max).await? {
                    keys.insert(key, place);
                }
                self.loaded = Some(LoadedTail {
                    state,
                    last_bundle_id: max.max(state.indexed_bundle_id),
                    keys,
                    filter: None,
                });
            }
        }
        Ok(())
    }

    /// The highest bundle id the tail covers; bundles of this transaction come after it.
    pub fn last_bundle_id(&self) -> Option<i64> {
        self.loaded.as_ref().map(|t| t.last_bundle_id)
    }

    /// The keys of `keys` that may be in the merged index: all of them without a filter.
    pub fn may_be_merged(&self, keys: &[i64]) -> Vec<i64> {
        match self.loaded.as_ref().and_then(|t| t.filter.as_ref()) {
            Some(filter) => keys
                .iter()
                .copied()
                .filter(|k| filter.may_contain(*k))
                .collect(),
            None => keys.to_vec(),
        }
    }

    /// Places of tail events whose compact key is one of `keys`.
    pub fn candidates(&self, keys: &[i64]) -> Vec<EventPlace> {
        let Some(tail) = &self.loaded else {
            return Vec::new();
        };
        keys.iter().flat_map(|key| tail.keys.places(*key)).collect()
    }

    /// Takes in the keys a committed transaction wrote, `(event_key, bundle_id, position)`.
    pub fn committed(&mut self, written: &[(i64, i64, i64)]) {
        let Some(tail) = &mut self.loaded else {
            return;
        };
        let mut last = tail.last_bundle_id;
        for (key, bundle_id, position) in written {
            if *bundle_id <= tail.last_bundle_id {
                // Not what this writer appended after its sync: trust the store, not memory.
                tracing::warn!(bundle_id, "dedupe tail out of order; reloading it");
                self.loaded = None;
                return;
            }
            last = last.max(*bundle_id);
            tail.keys.insert(*key, (*bundle_id, *position));
        }
        tail.last_bundle_id = last;
    }

    /// Forgets everything: the next [`KeyTail::sync`] reloads from the store.
    pub fn invalidate(&mut self) {
        self.loaded = None;
    }

    /// Merges the whole tail into `usage_event_keys` in one sorted bulk insert and advances the
    /// indexed bundle id, inside the caller's write transaction. The caller calls
    /// [`KeyTail::merged`] after the commit.
    pub async fn merge(&mut self, conn: &mut AnyConnection) -> Result<i64, StoreError> {
        self.sync(conn).await?;
        let Some(tail) = &self.loaded else {
            return Err(StoreError::corrupt("dedupe tail not loaded after sync"));
        };
        let upto = tail.last_bundle_id;
        let merged = tail.keys.sorted();
        bundles::insert_keys(conn, &merged).await?;
        sqlx::query("UPDATE usage_key_index SET indexed_bundle_id = $1 WHERE id = 1")
            .bind(upto)
            .execute(&mut *conn)
            .await?;
        // The filter takes the merged keys, or is built (bigger) from the whole index. A merge
        // that then fails to commit leaves extra keys in it: false positives, never misses.
        let fits = tail
            .filter
            .as_ref()
            .is_some_and(|f| f.keys + merged.len() <= f.keys_capacity);
        if fits {
            if let Some(filter) = self.loaded.as_mut().and_then(|t| t.filter.as_mut()) {
                for (key, _, _) in &merged {
                    filter.insert(*key);
                }
            }
        } else {
            let filter = build_filter(conn).await?;
            if let Some(tail) = self.loaded.as_mut() {
                tail.filter = filter;
            }
        }
        Ok(upto)
    }

    /// After a merge up to `upto` committed: those keys are on disk now.
    pub fn merged(&mut self, upto: i64) {
        if let Some(tail) = &mut self.loaded {
            tail.state.indexed_bundle_id = upto;
            if tail.last_bundle_id <= upto {
                tail.keys = TailKeys::default();
            } else {
                // Not reached: the merge runs under the write lock after a sync. Reload.
                self.loaded = None;
            }
        }
    }
}

/// A stored event found by its compact key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The compact key stored with the event.
    pub key: i64,
    pub tenant_id: String,
    pub event_id: String,
    pub seq: u64,
    pub digest: EventDigest,
}

/// Stored events whose compact key is one of `keys`: places from the merged index (and, on
/// SQLite, from the tail), then the events themselves from their bundles. A compact key match
/// is only a candidate: callers compare tenant and event id.
pub async fn lookup(
    conn: &mut AnyConnection,
    tail: Option<&KeyTail>,
    keys: &[i64],
) -> Result<Vec<Found>, StoreError> {
    let mut places: Vec<EventPlace> = Vec::new();
    let probed = match tail {
        Some(tail) => tail.may_be_merged(keys),
        None => keys.to_vec(),
    };
    for chunk in crate::db::statement_chunks(&probed, KEYS_PER_LOOKUP) {
        let sql = format!(
            "SELECT bundle_id, position FROM usage_event_keys WHERE event_key IN ({})",
            list_placeholders(Placeholders::of(conn), 1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for key in chunk {
            query = query.bind(*key);
        }
        for row in query.fetch_all(&mut *conn).await? {
            places.push((row.try_get(0)?, row.try_get(1)?));
        }
    }
    if let Some(tail) = tail {
        places.extend(tail.candidates(keys));
    }
    if places.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_bundle: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (bundle_id, position) in places {
        by_bundle.entry(bundle_id).or_default().push(position);
    }
    let ids: Vec<i64> = by_bundle.keys().copied().collect();
    let mut found = Vec::new();
    for bundle in bundles::read_event_bundles(conn, &ids).await? {
        let Some(positions) = by_bundle.get(&bundle.id) else {
            continue;
        };
        for position in positions {
            let event = usize::try_from(*position)
                .ok()
                .and_then(|p| bundle.events.get(p))
                .ok_or_else(|| {
                    StoreError::corrupt(format!(
                        "dedupe key points past the end of event bundle {}",
                        bundle.id
                    ))
                })?;
            found.push(Found {
                key: event.key,
                tenant_id: event.tenant_id.clone(),
                event_id: event.event_id.clone(),
                seq: event.seq,
                digest: event.digest,
            });
        }
    }
    Ok(found)
}

/// Deletes a tenant's stored event payloads (purge) with their dedupe keys; returns the events
/// deleted. On SQLite the generation is bumped so every cached tail reloads.
pub async fn delete_tenant_events(
    conn: &mut AnyConnection,
    backend: Backend,
    tenant_id: &str,
) -> Result<u64, StoreError> {
    let events = bundles::count_events(conn, tenant_id).await?;
    sqlx::query(
        "DELETE FROM usage_event_keys WHERE bundle_id IN \
         (SELECT id FROM usage_event_bundles WHERE tenant_id = $1)",
    )
    .bind(tenant_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM usage_event_bundles WHERE tenant_id = $1")
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    if backend == Backend::Sqlite {
        sqlx::query("UPDATE usage_key_index SET generation = generation + 1 WHERE id = 1")
            .execute(&mut *conn)
            .await?;
    }
    Ok(u64::try_from(events).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::{MergedFilter, TailKeys};

    /// Every inserted key is reported; few others are.
    #[test]
    fn filter_has_no_false_negatives_and_few_false_positives() {
        let mut filter = MergedFilter::with_capacity(1000);
        let key = |i: i64| i.wrapping_mul(0x2545_F491_4F6C_DD1D);
        for i in 0..100_000 {
            filter.insert(key(i));
        }
        assert!((0..100_000).all(|i| filter.may_contain(key(i))));
        let false_positives = (100_000..200_000)
            .filter(|i| filter.may_contain(key(*i)))
            .count();
        assert!(
            false_positives < 1_000,
            "{false_positives} false positives in 100,000"
        );
    }

    /// Two events whose compact keys collide both stay findable, and sort for the merge.
    #[test]
    fn colliding_keys_keep_every_place() {
        let mut keys = TailKeys::default();
        keys.insert(42, (1, 0));
        keys.insert(7, (2, 0));
        keys.insert(42, (3, 5));
        keys.insert(42, (4, 1));
        assert_eq!(keys.len(), 4);
        assert_eq!(
            keys.places(42).collect::<Vec<_>>(),
            vec![(1, 0), (3, 5), (4, 1)]
        );
        assert_eq!(
            keys.sorted(),
            vec![(7, 2, 0), (42, 1, 0), (42, 3, 5), (42, 4, 1)]
        );
        assert_eq!(keys.places(8).count(), 0);
    }
}
