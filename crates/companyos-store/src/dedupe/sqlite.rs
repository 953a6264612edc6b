//! SQLite's key index (ADR 0005, ADR 0007): the in-memory tail of the bundles written since the
//! last merge, the live runs' fences and filters, and a block cache; every part a cache of rows,
//! checked inside each write transaction. Runs are written by `run_writer` and compacted a step
//! at a time by `compaction`.

use std::collections::{BTreeMap, HashMap};

use sqlx::{AnyConnection, Row as _};

use super::{AppendedKey, EventKeyIndex, EventPlace, IndexChange, KeyMultiMap, RunHandle};
use crate::bundles;
use crate::db::{Placeholders, StoreError, list_placeholders};
use crate::key_runs::{self, KeyEntry, RunFilter};

mod compaction;
mod run_writer;

use compaction::{Compaction, level_to_compact};
use run_writer::RunWriter;
pub(crate) use run_writer::convert_merged_index;

/// The tail: places by compact key of the events written since the last merge.
pub(super) type TailKeys = KeyMultiMap<EventPlace>;

impl TailKeys {
    /// Every `(key, bundle_id, position)`, sorted (the order of a run).
    pub(super) fn sorted(&self) -> Vec<(i64, i64, i64)> {
        let mut all: Vec<(i64, i64, i64)> = self.iter().map(|(k, (b, p))| (k, *b, *p)).collect();
        all.sort_unstable();
        all
    }
}

/// What the in-memory state was loaded against; any change means another writer (or a purge,
/// or a compaction) changed the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexState {
    generation: i64,
    indexed_bundle_id: i64,
}

/// A live run, as the writer holds it: its fences and filter in memory, its blocks on disk.
#[derive(Debug, Clone)]
pub(super) struct Run {
    id: i64,
    level: i64,
    key_count: u64,
    fences: Vec<i64>,
    filter: RunFilter,
}

/// SQLite's dedupe key index as one process holds it: the tail (keys of the bundles written
/// since the last merge, in memory), the live runs' fences and filters, and a compaction in
/// progress. Every part is a cache of rows in the database, checked at the start of every
/// write transaction ([`SqliteKeyIndex::sync`]).
#[derive(Debug, Default)]
pub struct SqliteKeyIndex {
    loaded: Option<Loaded>,
    compaction: Option<Compaction>,
    cache: BlockCache,
}

#[derive(Debug)]
struct Loaded {
    state: IndexState,
    /// The highest bundle id the tail covers (the highest stored id when it was last synced).
    last_bundle_id: i64,
    keys: TailKeys,
    /// Live runs, oldest first.
    runs: Vec<Run>,
}

/// Runs of one level that are compacted into one run of the next level.
pub const RUNS_PER_LEVEL_MAX: usize = 4;
/// Source blocks read per statement by a compaction.
const COMPACTION_READ_BLOCKS: u32 = 64;
/// Block rows per insert statement (each about 1.8 KiB).
const BLOCKS_PER_INSERT: usize = 128;
/// Blocks per lookup statement.
const BLOCKS_PER_LOOKUP: usize = 256;

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

/// The live runs, oldest first, with their fences and filters.
async fn load_runs(conn: &mut AnyConnection) -> Result<Vec<Run>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, level, key_count, block_count, fences, filter FROM usage_key_runs \
         WHERE state = 'live' ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut runs = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: i64 = row.try_get(0)?;
        let fences = key_runs::decode_fences(&row.try_get::<Vec<u8>, _>(4)?)?;
        let block_count: i64 = row.try_get(3)?;
        if usize::try_from(block_count).ok() != Some(fences.len()) {
            return Err(StoreError::corrupt(format!(
                "dedupe key run {id}: {} fences for {block_count} blocks",
                fences.len()
            )));
        }
        runs.push(Run {
            id,
            level: row.try_get(1)?,
            key_count: u64::try_from(row.try_get::<i64, _>(2)?)
                .map_err(|_| StoreError::corrupt("dedupe key run size"))?,
            fences,
            filter: RunFilter::from_bytes(&row.try_get::<Vec<u8>, _>(5)?)?,
        });
    }
    Ok(runs)
}

impl SqliteKeyIndex {
    /// Keys in the tail (0 when not loaded).
    pub fn len(&self) -> usize {
        self.loaded.as_ref().map_or(0, |t| t.keys.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live runs (0 when not loaded).
    pub fn run_count(&self) -> usize {
        self.loaded.as_ref().map_or(0, |t| t.runs.len())
    }

    /// Bytes of memory held by the run filters.
    pub fn filter_bytes(&self) -> usize {
        self.loaded
            .as_ref()
            .map_or(0, |t| t.runs.iter().map(|r| r.filter.memory_bytes()).sum())
    }

    /// Whether a compaction is under way.
    pub fn compacting(&self) -> bool {
        self.compaction.is_some()
    }

    /// Brings the index up to date with the store, on a connection that sees the latest commit
    /// (inside the write transaction, it cannot change until commit). A change made by anyone
    /// else reloads everything and abandons a compaction in progress.
    pub async fn sync(&mut self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        let state = read_state(conn).await?;
        let max = max_bundle_id(conn).await?;
        match &mut self.loaded {
            Some(loaded) if loaded.state == state && loaded.last_bundle_id <= max => {
                if loaded.last_bundle_id < max {
                    // Another process appended bundles since; take them in.
                    for (key, place) in keys_between(conn, loaded.last_bundle_id, max).await? {
                        loaded.keys.insert(key, place);
                    }
                    loaded.last_bundle_id = max;
                }
            }
            _ => {
                let mut keys = TailKeys::default();
                for (key, place) in keys_between(conn, state.indexed_bundle_id, max).await? {
                    keys.insert(key, place);
                }
                let runs = load_runs(conn).await?;
                self.loaded = Some(Loaded {
                    state,
                    last_bundle_id: max.max(state.indexed_bundle_id),
                    keys,
                    runs,
                });
                self.compaction = None;
            }
        }
        Ok(())
    }

    /// Takes in the keys a committed transaction wrote, `(event_key, bundle_id, position)`.
    pub fn committed(&mut self, written: &[(i64, i64, i64)]) {
        let Some(loaded) = &mut self.loaded else {
            return;
        };
        let mut last = loaded.last_bundle_id;
        for (key, bundle_id, position) in written {
            if *bundle_id <= loaded.last_bundle_id {
                // Not what this writer appended after its sync: trust the store, not memory.
                tracing::warn!(bundle_id, "dedupe tail out of order; reloading it");
                self.invalidate();
                return;
            }
            last = last.max(*bundle_id);
            loaded.keys.insert(*key, (*bundle_id, *position));
        }
        loaded.last_bundle_id = last;
    }

    /// Forgets everything: the next [`SqliteKeyIndex::sync`] reloads from the store.
    pub fn invalidate(&mut self) {
        self.loaded = None;
        self.compaction = None;
    }

    /// Writes the whole tail as a new level-0 run and advances the indexed bundle id, inside
    /// the caller's write transaction; the caller applies the returned change after the commit.
    pub async fn merge(&mut self, conn: &mut AnyConnection) -> Result<IndexChange, StoreError> {
        self.sync(conn).await?;
        let Some(loaded) = &self.loaded else {
            return Err(StoreError::corrupt("dedupe index not loaded after sync"));
        };
        let upto = loaded.last_bundle_id;
        let sorted = loaded.keys.sorted();
        let mut writer = RunWriter::begin(conn, 0, sorted.len()).await?;
        for (key, bundle_id, position) in sorted {
            writer.push(KeyEntry {
                key,
                bundle_id,
                position,
            });
            if writer.pending.len() >= BLOCKS_PER_INSERT {
                writer.flush(conn).await?;
            }
        }
        let run = writer.finish(conn).await?;
        sqlx::query("UPDATE usage_key_index SET indexed_bundle_id = $1 WHERE id = 1")
            .bind(upto)
            .execute(&mut *conn)
            .await?;
        Ok(IndexChange::Merged {
            upto,
            run: RunHandle(run),
        })
    }

    /// Drops a compaction in progress (its unfinished run is deleted by the next one).
    pub fn abandon_compaction(&mut self) {
        self.compaction = None;
    }

    /// Whether a level holds enough runs to compact.
    pub fn wants_compaction(&self) -> bool {
        self.compaction.is_some()
            || self
                .loaded
                .as_ref()
                .is_some_and(|l| level_to_compact(&l.runs).is_some())
    }

    /// Applies what a committed transaction did.
    pub fn apply(&mut self, change: IndexChange) {
        let Some(loaded) = &mut self.loaded else {
            return;
        };
        match change {
            IndexChange::Nothing | IndexChange::Compacted { finished: None } => {}
            IndexChange::Merged { upto, run } => {
                loaded.state.indexed_bundle_id = upto;
                if loaded.last_bundle_id <= upto {
                    // Emptied, not replaced: the map keeps its capacity, so the next million
                    // keys do not grow it again through rehashes into fresh pages (the
                    // kernel's zeroing of those was a quarter of the writer's samples).
                    loaded.keys.clear();
                    loaded.runs.push(run.0);
                } else {
                    // Not reached: the merge runs under the write lock after a sync. Reload.
                    self.invalidate();
                }
            }
            IndexChange::Compacted {
                finished: Some((run, replaced)),
            } => {
                // Exactly the sources: runs merged from the tail meanwhile stay.
                loaded.runs.retain(|r| !replaced.contains(&r.id));
                loaded.runs.push(run.0);
                loaded.state.generation += 1;
            }
        }
    }

    /// Places of stored events whose compact key is one of `keys` (sorted): from the tail, and
    /// from the runs whose filter admits the key, by reading one block per run and key.
    pub async fn places(
        &mut self,
        conn: &mut AnyConnection,
        keys: &[i64],
    ) -> Result<Vec<EventPlace>, StoreError> {
        let Some(loaded) = &self.loaded else {
            return Ok(Vec::new());
        };
        let mut places: Vec<EventPlace> = keys
            .iter()
            .flat_map(|key| loaded.keys.get(*key).copied())
            .collect();
        let wanted = blocks_wanted(&loaded.runs, keys);
        // Blocks in the cache first; the others are read (in row id order) and cached.
        let missing = self.cache.find_cached(&wanted, &mut places);
        self.cache
            .read_missing(conn, &wanted, &missing, &mut places)
            .await?;
        Ok(places)
    }
}

/// The blocks that may hold `keys`: rowid of a block -> the keys wanted from it, for each run
/// whose filter admits a key.
fn blocks_wanted(runs: &[Run], keys: &[i64]) -> BTreeMap<i64, Vec<i64>> {
    let mut wanted: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for run in runs {
        for key in keys {
            if !run.filter.may_contain(*key) {
                continue;
            }
            if let Some(block) = key_runs::block_of(&run.fences, *key) {
                wanted
                    .entry(key_runs::block_rowid(run.id, block))
                    .or_default()
                    .push(*key);
            }
        }
    }
    wanted
}

/// Adds the places of `key` in a block's sorted `entries`.
fn find_in_block(entries: &[KeyEntry], key: i64, places: &mut Vec<EventPlace>) {
    let from = entries.partition_point(|e| e.key < key);
    for entry in entries[from..].iter().take_while(|e| e.key == key) {
        places.push((entry.bundle_id, entry.position));
    }
}

/// Decoded blocks of the runs, by row id, at most [`BLOCK_CACHE_BLOCKS_MAX`] (first in, first
/// out). Blocks are immutable and row ids never name another block later (run ids are never
/// reused), so a cached block is never stale; the blocks of a deleted run just age out. Keys
/// that are in the store (resends, retries) then cost a block read only the first time their
/// block is wanted.
#[derive(Debug, Default)]
struct BlockCache {
    blocks: HashMap<i64, Vec<KeyEntry>>,
    order: std::collections::VecDeque<i64>,
}

/// Blocks the cache holds at most: about 2.4 KiB each decoded, so about 40 MiB, the blocks of
/// 1.6M keys.
pub const BLOCK_CACHE_BLOCKS_MAX: usize = 16_384;

impl BlockCache {
    fn get(&self, rowid: i64) -> Option<&[KeyEntry]> {
        self.blocks.get(&rowid).map(Vec::as_slice)
    }

    /// Adds the places of the wanted keys found in cached blocks; returns the row ids of the
    /// wanted blocks that are not cached, in row id order.
    fn find_cached(
        &self,
        wanted: &BTreeMap<i64, Vec<i64>>,
        places: &mut Vec<EventPlace>,
    ) -> Vec<i64> {
        let mut missing: Vec<i64> = Vec::new();
        for (rowid, wanted_keys) in wanted {
            match self.get(*rowid) {
                Some(entries) => {
                    for key in wanted_keys {
                        find_in_block(entries, *key, places);
                    }
                }
                None => missing.push(*rowid),
            }
        }
        missing
    }

    /// Reads the `missing` blocks, adds the places of their wanted keys and caches them.
    async fn read_missing(
        &mut self,
        conn: &mut AnyConnection,
        wanted: &BTreeMap<i64, Vec<i64>>,
        missing: &[i64],
        places: &mut Vec<EventPlace>,
    ) -> Result<(), StoreError> {
        for chunk in crate::db::statement_chunks(missing, BLOCKS_PER_LOOKUP) {
            let sql = format!(
                "SELECT id, entries FROM usage_key_blocks WHERE id IN ({})",
                list_placeholders(Placeholders::of(conn), 1, chunk.len())
            );
            let mut query = sqlx::query(&sql);
            for rowid in chunk {
                query = query.bind(*rowid);
            }
            let rows = query.fetch_all(&mut *conn).await?;
            if rows.len() != chunk.len() {
                return Err(StoreError::corrupt(
                    "a live dedupe key run is missing blocks",
                ));
            }
            for row in &rows {
                let rowid: i64 = row.try_get(0)?;
                let entries = key_runs::decode_block(&row.try_get::<Vec<u8>, _>(1)?)?;
                for key in wanted.get(&rowid).into_iter().flatten() {
                    find_in_block(&entries, *key, places);
                }
                self.insert(rowid, entries);
            }
        }
        Ok(())
    }

    fn insert(&mut self, rowid: i64, entries: Vec<KeyEntry>) {
        if self.blocks.insert(rowid, entries).is_some() {
            return;
        }
        self.order.push_back(rowid);
        while self.order.len() > BLOCK_CACHE_BLOCKS_MAX {
            if let Some(oldest) = self.order.pop_front() {
                self.blocks.remove(&oldest);
            }
        }
        assert!(self.blocks.len() <= BLOCK_CACHE_BLOCKS_MAX);
    }
}

/// The index as the ingestion writer uses it: every hook is the inherent method of the same
/// name, and the keys a transaction appended need no write (they are read from the bundles).
impl EventKeyIndex for SqliteKeyIndex {
    async fn begin_write(&mut self, tx: &mut AnyConnection) -> Result<(), StoreError> {
        self.sync(tx).await
    }

    async fn places(
        &mut self,
        conn: &mut AnyConnection,
        keys: &[i64],
    ) -> Result<Vec<EventPlace>, StoreError> {
        SqliteKeyIndex::places(self, conn, keys).await
    }

    async fn write_appended(
        &mut self,
        _tx: &mut AnyConnection,
        _appended: &[AppendedKey],
    ) -> Result<(), StoreError> {
        Ok(())
    }

    fn committed(&mut self, appended: &[AppendedKey]) {
        SqliteKeyIndex::committed(self, appended);
    }

    fn tail_len(&self) -> usize {
        self.len()
    }

    fn run_count(&self) -> usize {
        SqliteKeyIndex::run_count(self)
    }

    async fn merge(&mut self, tx: &mut AnyConnection) -> Result<IndexChange, StoreError> {
        SqliteKeyIndex::merge(self, tx).await
    }

    fn wants_compaction(&self) -> bool {
        SqliteKeyIndex::wants_compaction(self)
    }

    async fn compaction_step(
        &mut self,
        tx: &mut AnyConnection,
        step_blocks: usize,
    ) -> Result<IndexChange, StoreError> {
        SqliteKeyIndex::compaction_step(self, tx, step_blocks).await
    }

    fn apply(&mut self, change: IndexChange) {
        SqliteKeyIndex::apply(self, change);
    }

    fn abandon_compaction(&mut self) {
        SqliteKeyIndex::abandon_compaction(self);
    }

    fn invalidate(&mut self) {
        SqliteKeyIndex::invalidate(self);
    }
}
