//! The dedupe key index: compact event keys of every stored usage event, pointing at the event's
//! bundle and position (ADR 0005, ADR 0006, ADR 0007), behind one trait, [`EventKeyIndex`], so
//! that ingestion asks the same questions on both engines and never branches on the engine. On
//! SQLite ([`SqliteKeyIndex`], in `sqlite`) it is an in-memory tail of the bundles written since
//! the last merge plus immutable sorted runs on disk (`key_runs`); on PostgreSQL
//! ([`PostgresKeyIndex`], in `postgres`) an ordinary B-tree index written in the ingestion
//! transaction. [`crate::db::Db::key_index`] hands out the one for the engine it opened, as a
//! [`KeyIndex`] (an enum: static dispatch, one match per group commit, none per event).
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
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};

use sqlx::AnyConnection;

use crate::bundles;
use crate::db::{Backend, Db, StoreError};

mod postgres;
mod sqlite;

pub use postgres::PostgresKeyIndex;
pub(crate) use sqlite::convert_merged_index;
pub use sqlite::{BLOCK_CACHE_BLOCKS_MAX, RUNS_PER_LEVEL_MAX, SqliteKeyIndex};

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

/// `(event_key, bundle_id, position)` of an event a transaction appended.
pub type AppendedKey = (i64, i64, i64);

/// What the ingestion writer asks of the key index, the same on both engines: ready a write
/// transaction, find the places of keys, record what the transaction appended, and keep the
/// index's own upkeep (merges and compaction steps, which only SQLite has: they are no-ops on
/// PostgreSQL, whose B-tree keeps itself). Implemented by [`SqliteKeyIndex`],
/// [`PostgresKeyIndex`] and [`KeyIndexGuard`]; callers are generic or hold the guard, so every
/// call is dispatched statically.
///
/// The futures are `Send` so that a request task may await them (inclusion proofs look keys
/// up too).
pub trait EventKeyIndex {
    /// Readies a write transaction just begun (on SQLite it holds the write lock, so what this
    /// reads cannot change until the commit): SQLite brings its cache up to the latest commit,
    /// PostgreSQL sets the transaction's planner settings.
    fn begin_write(
        &mut self,
        tx: &mut AnyConnection,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Places of stored events whose compact key is one of `keys` (sorted). A place is only a
    /// candidate: [`lookup`] reads the events and callers compare tenant and event id.
    fn places(
        &mut self,
        conn: &mut AnyConnection,
        keys: &[i64],
    ) -> impl Future<Output = Result<Vec<EventPlace>, StoreError>> + Send;

    /// Records, inside the transaction, the keys of the events it appended: PostgreSQL writes
    /// its key rows; SQLite writes nothing (its tail is read from the bundles themselves).
    fn write_appended(
        &mut self,
        tx: &mut AnyConnection,
        appended: &[AppendedKey],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes in what a committed transaction appended (SQLite's tail; nothing on PostgreSQL).
    fn committed(&mut self, appended: &[AppendedKey]);

    /// Keys held in memory until a merge writes them out (0 on PostgreSQL, which never merges).
    fn tail_len(&self) -> usize;

    /// Live sorted runs (0 on PostgreSQL).
    fn run_count(&self) -> usize;

    /// Writes the tail out as a new run inside the caller's write transaction; the caller
    /// applies the returned change after the commit ([`IndexChange::Nothing`] on PostgreSQL).
    fn merge(
        &mut self,
        tx: &mut AnyConnection,
    ) -> impl Future<Output = Result<IndexChange, StoreError>> + Send;

    /// Whether a compaction is due or under way (never on PostgreSQL).
    fn wants_compaction(&self) -> bool;

    /// One compaction step of at most `step_blocks` blocks inside the caller's write
    /// transaction ([`IndexChange::Nothing`] when none is due). On any error the caller must
    /// [`EventKeyIndex::abandon_compaction`].
    fn compaction_step(
        &mut self,
        tx: &mut AnyConnection,
        step_blocks: usize,
    ) -> impl Future<Output = Result<IndexChange, StoreError>> + Send;

    /// Applies what a committed transaction did to the index.
    fn apply(&mut self, change: IndexChange);

    /// Drops a compaction in progress.
    fn abandon_compaction(&mut self);

    /// Forgets what memory holds: the next write transaction reloads it from the store.
    fn invalidate(&mut self);
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
pub struct RunHandle(sqlite::Run);

/// The key index of a store, for the one ingestion writer of a process and the lookups beside
/// it; [`Db::key_index`] makes the one of the store's engine. SQLite's is a cache that one task
/// at a time may use (behind a lock, held by the writer for a whole group commit); PostgreSQL's
/// holds nothing, so it is never locked.
// One per process, held in place for its life: boxing SQLite's would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum KeyIndex {
    Sqlite(tokio::sync::Mutex<SqliteKeyIndex>),
    Postgres(PostgresKeyIndex),
}

/// The key index as one writer holds it (SQLite: under its lock).
#[derive(Debug)]
pub enum KeyIndexGuard<'a> {
    Sqlite(tokio::sync::MutexGuard<'a, SqliteKeyIndex>),
    Postgres(PostgresKeyIndex),
}

impl KeyIndex {
    /// An empty index for a store on `backend` (SQLite loads its cache in the first write
    /// transaction).
    pub fn for_backend(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => KeyIndex::Sqlite(Default::default()),
            Backend::Postgres => KeyIndex::Postgres(PostgresKeyIndex),
        }
    }

    /// The index for a writer: SQLite's waits for its lock, PostgreSQL's at once.
    pub async fn for_write(&self) -> KeyIndexGuard<'_> {
        match self {
            KeyIndex::Sqlite(index) => KeyIndexGuard::Sqlite(index.lock().await),
            KeyIndex::Postgres(index) => KeyIndexGuard::Postgres(*index),
        }
    }

    /// Stored events whose compact key is one of `keys` (sorted), as of the latest commit, for
    /// a reader outside the writer (inclusion proofs). PostgreSQL reads on `conn`; SQLite on a
    /// read transaction of its own, see within.
    pub async fn lookup_latest(
        &self,
        db: &Db,
        conn: &mut AnyConnection,
        keys: &[i64],
    ) -> Result<Vec<bundles::EventIdentity>, StoreError> {
        match self {
            KeyIndex::Sqlite(index) => {
                let mut index = index.lock().await;
                // Bring the index up to the latest commit (it may not be loaded yet, or another
                // process may have written), and look up on that same snapshot: an index synced
                // on one snapshot and read against another could miss an event that another
                // process wrote and merged in between. The writer checks the index again
                // before it relies on it.
                let mut snapshot = db.readers().begin().await?;
                index.sync(&mut snapshot).await?;
                let found = lookup(&mut snapshot, &mut *index, keys).await?;
                snapshot.commit().await?;
                Ok(found)
            }
            KeyIndex::Postgres(index) => lookup(conn, &mut { *index }, keys).await,
        }
    }
}

/// `$body` with `$index` bound to the engine's index of a [`KeyIndexGuard`].
macro_rules! on_engine {
    ($guard:expr, $index:ident => $body:expr) => {
        match $guard {
            KeyIndexGuard::Sqlite($index) => $body,
            KeyIndexGuard::Postgres($index) => $body,
        }
    };
}

impl EventKeyIndex for KeyIndexGuard<'_> {
    async fn begin_write(&mut self, tx: &mut AnyConnection) -> Result<(), StoreError> {
        on_engine!(self, index => index.begin_write(tx).await)
    }

    async fn places(
        &mut self,
        conn: &mut AnyConnection,
        keys: &[i64],
    ) -> Result<Vec<EventPlace>, StoreError> {
        on_engine!(self, index => index.places(conn, keys).await)
    }

    async fn write_appended(
        &mut self,
        tx: &mut AnyConnection,
        appended: &[AppendedKey],
    ) -> Result<(), StoreError> {
        on_engine!(self, index => index.write_appended(tx, appended).await)
    }

    fn committed(&mut self, appended: &[AppendedKey]) {
        on_engine!(self, index => index.committed(appended))
    }

    fn tail_len(&self) -> usize {
        on_engine!(self, index => index.tail_len())
    }

    fn run_count(&self) -> usize {
        on_engine!(self, index => index.run_count())
    }

    async fn merge(&mut self, tx: &mut AnyConnection) -> Result<IndexChange, StoreError> {
        on_engine!(self, index => index.merge(tx).await)
    }

    fn wants_compaction(&self) -> bool {
        on_engine!(self, index => index.wants_compaction())
    }

    async fn compaction_step(
        &mut self,
        tx: &mut AnyConnection,
        step_blocks: usize,
    ) -> Result<IndexChange, StoreError> {
        on_engine!(self, index => index.compaction_step(tx, step_blocks).await)
    }

    fn apply(&mut self, change: IndexChange) {
        on_engine!(self, index => index.apply(change))
    }

    fn abandon_compaction(&mut self) {
        on_engine!(self, index => index.abandon_compaction())
    }

    fn invalidate(&mut self) {
        on_engine!(self, index => index.invalidate())
    }
}

/// Stored events whose compact key is one of `keys` (sorted): places from the index, then the
/// events themselves from their bundles. A compact key match is only a candidate: callers
/// compare tenant and event id. A place whose bundle was purged is no event.
pub async fn lookup<I: EventKeyIndex>(
    conn: &mut AnyConnection,
    index: &mut I,
    keys: &[i64],
) -> Result<Vec<bundles::EventIdentity>, StoreError> {
    let places = index.places(conn, keys).await?;
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
