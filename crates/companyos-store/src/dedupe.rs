//! The dedupe key index: compact event keys of every stored usage event, pointing at the event's
//! bundle and position (ADR 0005, ADR 0006, ADR 0007). On SQLite it is an in-memory tail of the
//! bundles written since the last merge plus immutable sorted runs on disk (`key_runs`); on
//! PostgreSQL an ordinary B-tree index written in the ingestion transaction.
//!
//! Why not a plain index on SQLite: event ids are random UUIDs, so each group commit would write
//! its keys onto random pages of that index, and SQLite writes every dirtied page to the WAL.
//! Once the index outgrows the keys of one commit, each event costs kilobytes of WAL and
//! ingestion slows down as the store grows (measured: 29,997 events/s on an empty store, 18,087
//! with 1M events stored, 11,812 with 10M; docs/BENCHMARKS.md). Here a commit only appends
//! bundles; the keys of bundles above `usage_key_index.indexed_bundle_id` (the *tail*) are
//! looked up in memory, and once the tail holds `dedupe_tail_rows_max` keys the writer writes
//! it out as a new run, in key order. Runs of one level are compacted into one of the next, a
//! step at a time between group commits. A lookup reads, per run whose Bloom filter admits the
//! key, the one block its fences point at.
//!
//! Correctness does not rest on the memory: the tail, the runs' fences and filters and a
//! compaction in progress are caches of rows in the database, checked inside every write
//! transaction (which holds SQLite's write lock) against the index state row (`generation`,
//! `indexed_bundle_id`) and the highest bundle id, and reloaded when another process, a purge
//! or a compaction changed either. PostgreSQL logs tuples, not pages, and several nodes write
//! at once: it keeps the B-tree.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use sqlx::{AnyConnection, Row as _};

use crate::bundles;
use crate::db::{Backend, Placeholders, StoreError, list_placeholders};
use crate::key_runs::{self, BlockCutter, KeyEntry, RunFilter};

/// The compact dedupe key of an event: the first 8 bytes of SHA-256(tenant_id "\n" event_id).
pub fn event_key(tenant_id: &str, event_id: &str) -> i64 {
    let mut input = Vec::with_capacity(tenant_id.len() + event_id.len() + 1);
    input.extend_from_slice(tenant_id.as_bytes());
    input.push(b'\n');
    input.extend_from_slice(event_id.as_bytes());
    let digest = companyos_ledger::hash::sha256(&input);
    let bytes = digest.as_bytes();
    i64::from_be_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

/// Keys per lookup statement on PostgreSQL (one array parameter).
const POSTGRES_KEYS_PER_LOOKUP: usize = 65_536;

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

/// Values by compact key, for maps where almost every key has one value (two events share a
/// compact key only by a 64-bit collision): the first value of a key inline, the rare others
/// spilled into a second map. The dedupe tail and a group's new events use it.
#[derive(Debug)]
pub struct KeyMultiMap<V> {
    first: KeyMap<V>,
    more: KeyMap<Vec<V>>,
}

impl<V> Default for KeyMultiMap<V> {
    fn default() -> Self {
        Self {
            first: KeyMap::default(),
            more: KeyMap::default(),
        }
    }
}

impl<V> KeyMultiMap<V> {
    pub fn len(&self) -> usize {
        self.first.len() + self.more.values().map(Vec::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }

    pub fn insert(&mut self, key: i64, value: V) {
        match self.first.entry(key) {
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(value);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(key).or_default().push(value);
            }
        }
    }

    /// Every value of `key`, in insertion order.
    pub fn get(&self, key: i64) -> impl Iterator<Item = &V> + '_ {
        self.first
            .get(&key)
            .into_iter()
            .chain(self.more.get(&key).into_iter().flatten())
    }

    /// Forgets every key, keeping the memory for the next ones.
    pub fn clear(&mut self) {
        self.first.clear();
        self.more.clear();
    }

    /// Every `(key, value)`, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &V)> + '_ {
        self.first.iter().map(|(k, v)| (*k, v)).chain(
            self.more
                .iter()
                .flat_map(|(k, values)| values.iter().map(move |v| (*k, v))),
        )
    }
}

/// The tail: places by compact key of the events written since the last merge.
type TailKeys = KeyMultiMap<EventPlace>;

impl TailKeys {
    /// Every `(key, bundle_id, position)`, sorted (the order of a run).
    fn sorted(&self) -> Vec<(i64, i64, i64)> {
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
struct Run {
    id: i64,
    level: i64,
    key_count: u64,
    fences: Vec<i64>,
    filter: RunFilter,
}

/// SQLite's dedupe key index as one process holds it: the tail (keys of the bundles written
/// since the last merge, in memory), the live runs' fences and filters, and a compaction in
/// progress. Every part is a cache of rows in the database, checked at the start of every
/// write transaction ([`KeyIndex::sync`]).
#[derive(Debug, Default)]
pub struct KeyIndex {
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

/// Inserts encoded blocks `(rowid, bytes)`.
async fn insert_blocks(
    conn: &mut AnyConnection,
    blocks: &[(i64, Vec<u8>)],
) -> Result<(), StoreError> {
    for chunk in crate::db::statement_chunks(blocks, BLOCKS_PER_INSERT) {
        let sql = format!(
            "{} usage_key_blocks (id, entries) VALUES {}",
            Placeholders::of(conn).bulk_insert(),
            crate::db::values_placeholders(Placeholders::of(conn), chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql);
        for (rowid, bytes) in chunk {
            query = query.bind(*rowid).bind(bytes.as_slice());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A run being written: its blocks go out as they fill; fences and filter are stored last.
#[derive(Debug)]
struct RunWriter {
    run_id: i64,
    level: i64,
    cutter: BlockCutter,
    fences: Vec<i64>,
    filter: RunFilter,
    key_count: u64,
    /// Finished blocks not yet inserted.
    pending: Vec<(i64, Vec<u8>)>,
}

impl RunWriter {
    /// Starts a run of `level`: its row, `building` until [`RunWriter::finish`] (readers never
    /// use it before).
    async fn begin(
        conn: &mut AnyConnection,
        level: i64,
        keys_expected: usize,
    ) -> Result<Self, StoreError> {
        let run_id = sqlx::query_scalar(
            "INSERT INTO usage_key_runs (level, state, key_count, block_count, fences, filter) \
             VALUES ($1, 'building', 0, 0, $2, $3) RETURNING id",
        )
        .bind(level)
        .bind(Vec::<u8>::new())
        .bind(Vec::<u8>::new())
        .fetch_one(&mut *conn)
        .await?;
        Ok(Self {
            run_id,
            level,
            cutter: BlockCutter::default(),
            fences: Vec::new(),
            filter: RunFilter::with_capacity(keys_expected),
            key_count: 0,
            pending: Vec::new(),
        })
    }

    fn push(&mut self, entry: KeyEntry) {
        self.filter.insert(entry.key);
        self.key_count += 1;
        if let Some(block) = self.cutter.push(entry) {
            self.add_block(&block);
        }
    }

    fn add_block(&mut self, block: &[KeyEntry]) {
        let number = u32::try_from(self.fences.len()).expect("a run has fewer than 2^32 blocks");
        self.fences.push(block[0].key);
        self.pending.push((
            key_runs::block_rowid(self.run_id, number),
            key_runs::encode_block(block),
        ));
    }

    async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        insert_blocks(conn, &self.pending).await?;
        self.pending.clear();
        Ok(())
    }

    /// Writes the last block and makes the run live.
    async fn finish(mut self, conn: &mut AnyConnection) -> Result<Run, StoreError> {
        if let Some(block) = self.cutter.finish() {
            self.add_block(&block);
        }
        self.flush(conn).await?;
        let updated = sqlx::query(
            "UPDATE usage_key_runs SET state = 'live', key_count = $1, block_count = $2, \
             fences = $3, filter = $4 WHERE id = $5 AND state = 'building'",
        )
        .bind(i64::try_from(self.key_count).unwrap_or(i64::MAX))
        .bind(i64::try_from(self.fences.len()).unwrap_or(i64::MAX))
        .bind(key_runs::encode_fences(&self.fences))
        .bind(self.filter.to_bytes())
        .bind(self.run_id)
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::corrupt(format!(
                "dedupe key run {} vanished while it was written",
                self.run_id
            )));
        }
        Ok(Run {
            id: self.run_id,
            level: self.level,
            key_count: self.key_count,
            fences: self.fences,
            filter: self.filter,
        })
    }
}

/// Deletes runs (their rows and blocks).
async fn delete_runs(conn: &mut AnyConnection, run_ids: &[i64]) -> Result<(), StoreError> {
    for run_id in run_ids {
        let (from, to) = key_runs::run_rowids(*run_id);
        sqlx::query("DELETE FROM usage_key_blocks WHERE id >= $1 AND id < $2")
            .bind(from)
            .bind(to)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM usage_key_runs WHERE id = $1")
            .bind(*run_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Runs left `building` by a compaction that did not finish (a crash, a restart, an error):
/// they were never used; their blocks are deleted before a new compaction starts.
async fn delete_unfinished_runs(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM usage_key_runs WHERE state = 'building'")
            .fetch_all(&mut *conn)
            .await?;
    delete_runs(conn, &ids).await
}

/// A compaction in progress: a k-way merge of the source runs into a run of the next level.
#[derive(Debug)]
struct Compaction {
    sources: Vec<Source>,
    writer: RunWriter,
    keys_expected: u64,
}

/// One source run of a compaction: its next blocks, read a batch at a time.
#[derive(Debug)]
struct Source {
    run_id: i64,
    block_count: u32,
    key_count: u64,
    next_block: u32,
    buffered: std::collections::VecDeque<KeyEntry>,
}

impl Source {
    /// The next entry, reading the next batch of blocks when the buffer is empty.
    async fn peek(&mut self, conn: &mut AnyConnection) -> Result<Option<KeyEntry>, StoreError> {
        if self.buffered.is_empty() && self.next_block < self.block_count {
            let upto = (self.next_block + COMPACTION_READ_BLOCKS).min(self.block_count);
            let rows = sqlx::query(
                "SELECT id, entries FROM usage_key_blocks WHERE id >= $1 AND id < $2 ORDER BY id",
            )
            .bind(key_runs::block_rowid(self.run_id, self.next_block))
            .bind(key_runs::block_rowid(self.run_id, upto))
            .fetch_all(&mut *conn)
            .await?;
            if rows.len() != (upto - self.next_block) as usize {
                return Err(StoreError::corrupt(format!(
                    "dedupe key run {}: blocks {}..{upto} are not all stored",
                    self.run_id, self.next_block
                )));
            }
            for row in &rows {
                let bytes: Vec<u8> = row.try_get(1)?;
                self.buffered.extend(key_runs::decode_block(&bytes)?);
            }
            self.next_block = upto;
        }
        Ok(self.buffered.front().copied())
    }
}

/// What a write transaction did to the index, applied to memory once it committed.
#[derive(Debug)]
pub enum IndexChange {
    /// The tail up to this bundle id was written as a new run.
    Merged {
        upto: i64,
        run: RunHandle,
    },
    /// A compaction step wrote blocks; `finished` when the run replaced its sources, the runs
    /// of ids `replaced`.
    Compacted {
        finished: Option<(RunHandle, Vec<i64>)>,
    },
    Nothing,
}

/// A run written by a transaction (opaque outside this module).
#[derive(Debug)]
pub struct RunHandle(Run);

impl KeyIndex {
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

    /// Forgets everything: the next [`KeyIndex::sync`] reloads from the store.
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

    /// Runs one compaction step inside the caller's write transaction, writing at most
    /// `step_blocks` blocks (a compaction of millions of keys goes on between group commits
    /// instead of holding the write lock for seconds), and starting a compaction when a level
    /// holds [`RUNS_PER_LEVEL_MAX`] runs; [`IndexChange::Nothing`] when there is nothing to
    /// compact. On any error the caller must [`KeyIndex::abandon_compaction`].
    pub async fn compaction_step(
        &mut self,
        conn: &mut AnyConnection,
        step_blocks: usize,
    ) -> Result<IndexChange, StoreError> {
        assert!(
            step_blocks > 0,
            "a compaction step writes at least one block"
        );
        self.sync(conn).await?;
        if self.compaction.is_none() {
            let Some(loaded) = &self.loaded else {
                return Ok(IndexChange::Nothing);
            };
            let Some(level) = level_to_compact(&loaded.runs) else {
                return Ok(IndexChange::Nothing);
            };
            let sources: Vec<Source> = loaded
                .runs
                .iter()
                .filter(|r| r.level == level)
                .map(|r| Source {
                    run_id: r.id,
                    block_count: u32::try_from(r.fences.len()).unwrap_or(u32::MAX),
                    key_count: r.key_count,
                    next_block: 0,
                    buffered: Default::default(),
                })
                .collect();
            delete_unfinished_runs(conn).await?;
            let keys_expected: u64 = sources.iter().map(|s| s.key_count).sum();
            let writer = RunWriter::begin(
                conn,
                level + 1,
                usize::try_from(keys_expected).unwrap_or(usize::MAX),
            )
            .await?;
            self.compaction = Some(Compaction {
                sources,
                writer,
                keys_expected,
            });
        }
        let Some(compaction) = &mut self.compaction else {
            return Ok(IndexChange::Nothing);
        };
        let blocks_before = compaction.writer.fences.len();
        loop {
            if compaction.writer.fences.len() - blocks_before >= step_blocks {
                compaction.writer.flush(conn).await?;
                return Ok(IndexChange::Compacted { finished: None });
            }
            // The smallest next entry over the sources (a handful: a scan beats a heap).
            let mut smallest: Option<(usize, KeyEntry)> = None;
            for (i, source) in compaction.sources.iter_mut().enumerate() {
                if let Some(entry) = source.peek(conn).await? {
                    if smallest.is_none_or(|(_, s)| entry < s) {
                        smallest = Some((i, entry));
                    }
                }
            }
            let Some((i, entry)) = smallest else { break };
            compaction.sources[i].buffered.pop_front();
            compaction.writer.push(entry);
        }
        let Some(compaction) = self.compaction.take() else {
            return Ok(IndexChange::Nothing);
        };
        if compaction.writer.key_count != compaction.keys_expected {
            return Err(StoreError::corrupt(format!(
                "dedupe key compaction read {} keys of {}",
                compaction.writer.key_count, compaction.keys_expected
            )));
        }
        let source_ids: Vec<i64> = compaction.sources.iter().map(|s| s.run_id).collect();
        let run = compaction.writer.finish(conn).await?;
        // The new run holds every key of its sources: they go in the same transaction.
        delete_runs(conn, &source_ids).await?;
        sqlx::query("UPDATE usage_key_index SET generation = generation + 1 WHERE id = 1")
            .execute(&mut *conn)
            .await?;
        Ok(IndexChange::Compacted {
            finished: Some((RunHandle(run), source_ids)),
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
    async fn places(
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
        // rowid of a block -> the keys wanted from it.
        let mut wanted: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for run in &loaded.runs {
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
        let find = |entries: &[KeyEntry], key: i64, places: &mut Vec<EventPlace>| {
            let from = entries.partition_point(|e| e.key < key);
            for entry in entries[from..].iter().take_while(|e| e.key == key) {
                places.push((entry.bundle_id, entry.position));
            }
        };
        // Blocks in the cache first; the others are read (in row id order) and cached.
        let mut missing: Vec<i64> = Vec::new();
        for (rowid, wanted_keys) in &wanted {
            match self.cache.get(*rowid) {
                Some(entries) => {
                    for key in wanted_keys {
                        find(entries, *key, &mut places);
                    }
                }
                None => missing.push(*rowid),
            }
        }
        for chunk in crate::db::statement_chunks(&missing, BLOCKS_PER_LOOKUP) {
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
                    find(&entries, *key, &mut places);
                }
                self.cache.insert(rowid, entries);
            }
        }
        Ok(places)
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

/// The lowest level holding [`RUNS_PER_LEVEL_MAX`] runs or more.
fn level_to_compact(runs: &[Run]) -> Option<i64> {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for run in runs {
        *counts.entry(run.level).or_default() += 1;
    }
    counts
        .into_iter()
        .find(|(_, count)| *count >= RUNS_PER_LEVEL_MAX)
        .map(|(level, _)| level)
}

/// Converts the merged key index of schema 5 (`usage_event_keys`, one row per key) into one
/// run, then drops it; inside the migration's transaction. The keys are read in index order,
/// a page at a time, so memory stays bounded by a page and the filter.
pub(crate) async fn convert_merged_index(conn: &mut AnyConnection) -> Result<(), StoreError> {
    /// Keys read per statement.
    const PAGE_ROWS: i64 = 65_536;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_event_keys")
        .fetch_one(&mut *conn)
        .await?;
    if count > 0 {
        // The level a run of this size would have reached by compaction.
        let mut level = 0i64;
        let mut size = 1_000_000i64 * RUNS_PER_LEVEL_MAX as i64;
        while count >= size {
            level += 1;
            size = size.saturating_mul(RUNS_PER_LEVEL_MAX as i64);
        }
        let mut writer =
            RunWriter::begin(conn, level, usize::try_from(count).unwrap_or(usize::MAX)).await?;
        let mut after: Option<KeyEntry> = None;
        loop {
            let rows = match after {
                None => {
                    sqlx::query(
                        "SELECT event_key, bundle_id, position FROM usage_event_keys \
                         ORDER BY event_key, bundle_id, position LIMIT $1",
                    )
                    .bind(PAGE_ROWS)
                    .fetch_all(&mut *conn)
                    .await?
                }
                Some(last) => {
                    sqlx::query(
                        "SELECT event_key, bundle_id, position FROM usage_event_keys \
                         WHERE (event_key, bundle_id, position) > ($1, $2, $3) \
                         ORDER BY event_key, bundle_id, position LIMIT $4",
                    )
                    .bind(last.key)
                    .bind(last.bundle_id)
                    .bind(last.position)
                    .bind(PAGE_ROWS)
                    .fetch_all(&mut *conn)
                    .await?
                }
            };
            for row in &rows {
                let entry = KeyEntry {
                    key: row.try_get(0)?,
                    bundle_id: row.try_get(1)?,
                    position: row.try_get(2)?,
                };
                writer.push(entry);
                after = Some(entry);
            }
            writer.flush(conn).await?;
            if rows.len() < usize::try_from(PAGE_ROWS).unwrap_or(usize::MAX) {
                break;
            }
        }
        writer.finish(conn).await?;
    }
    sqlx::query("DROP TABLE usage_event_keys")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Stored events whose compact key is one of `keys`: places from SQLite's index (`index`: the
/// tail and the runs) or PostgreSQL's key rows (`None`), then the events themselves from their
/// bundles. A compact key match is only a candidate: callers compare tenant and event id. A
/// place whose bundle was purged is no event.
pub async fn lookup(
    conn: &mut AnyConnection,
    index: Option<&mut KeyIndex>,
    keys: &[i64],
) -> Result<Vec<bundles::EventIdentity>, StoreError> {
    let mut places: Vec<EventPlace> = Vec::new();
    match index {
        Some(index) => places = index.places(conn, keys).await?,
        None => {
            // PostgreSQL: every key in one statement (an index scan per array element).
            // The statement text is the same for any number of keys: plain chunks.
            for chunk in keys.chunks(POSTGRES_KEYS_PER_LOOKUP) {
                let rows = sqlx::query(
                    "SELECT bundle_id, position FROM usage_event_keys \
                     WHERE event_key = ANY($1::bigint[])",
                )
                .bind(crate::db::postgres_bigint_array(chunk.iter().copied()))
                .fetch_all(&mut *conn)
                .await?;
                for row in &rows {
                    places.push((row.try_get(0)?, row.try_get(1)?));
                }
            }
        }
    }
    if places.is_empty() {
        return Ok(Vec::new());
    }
    let mut by_bundle: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (bundle_id, position) in places {
        by_bundle.entry(bundle_id).or_default().push(position);
    }
    bundles::read_event_identities(conn, &by_bundle).await
}

/// Deletes a tenant's stored event payloads (purge) with their dedupe keys; returns the events
/// deleted. PostgreSQL deletes the key rows. SQLite's runs are immutable: their entries of the
/// purged bundles point at nothing from now on (a lookup finds no bundle there; bundle ids are
/// never reused), and the generation is bumped so every cached tail reloads.
pub async fn delete_tenant_events(
    conn: &mut AnyConnection,
    backend: Backend,
    tenant_id: &str,
) -> Result<u64, StoreError> {
    let events = bundles::count_events(conn, tenant_id).await?;
    if backend == Backend::Postgres {
        sqlx::query(
            "DELETE FROM usage_event_keys WHERE bundle_id IN \
             (SELECT id FROM usage_event_bundles WHERE tenant_id = $1)",
        )
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    }
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
mod tests;
