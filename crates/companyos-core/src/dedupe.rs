//! The dedupe key index on SQLite: compact event keys of every stored usage event, kept as an
//! on-disk index that is merged in bulk plus an in-memory tail of the rows appended since.
//!
//! Why not a plain index on `usage_events.event_key`: event ids are random UUIDs, so each group
//! commit writes its keys onto random pages of that index, and SQLite writes every dirtied 8 KiB
//! page to the WAL. Once the index outgrows the keys of one commit, each event costs kilobytes
//! of WAL and ingestion slows down as the store grows (measured: 29,997 events/s on an empty
//! store, 18,087 with 1M events stored, 11,812 with 10M; docs/BENCHMARKS.md).
//! Here the commit only appends rows to `usage_events`; the keys of those rows (the *tail*:
//! every row with a rowid above `usage_key_index.indexed_rowid`) are looked up in memory, and
//! once the tail holds `tail_rows_max` rows the writer merges it into `usage_event_keys` in one
//! sorted bulk insert, which dirties each index page at most once per merge.
//!
//! Correctness does not rest on the memory: the tail is a cache of rows in the database, checked
//! inside every write transaction (which holds SQLite's write lock) against the index state row
//! and `max(rowid)`, and reloaded when another process (or a purge) changed either. PostgreSQL
//! keeps an ordinary B-tree index: it logs tuples, not pages, and several nodes write at once.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sqlx::{AnyConnection, Row as _};

use crate::db::{Backend, Placeholders, StoreError, list_placeholders};

/// Rowids per lookup statement.
const ROWIDS_PER_LOOKUP: usize = 256;

/// Compact keys are already uniform hashes (the first 8 bytes of a SHA-256): hashing them again
/// would only cost time.
#[derive(Debug, Default)]
struct KeyHasher(u64);

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

type KeyMap<V> = HashMap<i64, V, BuildHasherDefault<KeyHasher>>;

/// Rowids by compact key; almost every key has one row, the rare others spill over.
#[derive(Debug, Default)]
struct TailKeys {
    first: KeyMap<i64>,
    more: KeyMap<Vec<i64>>,
}

impl TailKeys {
    fn len(&self) -> usize {
        self.first.len() + self.more.values().map(Vec::len).sum::<usize>()
    }

    fn insert(&mut self, key: i64, rowid: i64) {
        match self.first.entry(key) {
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(rowid);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.more.entry(key).or_default().push(rowid);
            }
        }
    }

    fn rowids(&self, key: i64) -> impl Iterator<Item = i64> + '_ {
        self.first
            .get(&key)
            .copied()
            .into_iter()
            .chain(self.more.get(&key).into_iter().flatten().copied())
    }

    fn retain_above(&mut self, rowid: i64) {
        self.first.retain(|_, r| *r > rowid);
        self.more.retain(|_, rows| {
            rows.retain(|r| *r > rowid);
            !rows.is_empty()
        });
    }
}

/// What the tail was loaded against; any change means another writer touched the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IndexState {
    generation: i64,
    indexed_rowid: i64,
}

/// The in-memory tail: `(event_key, rowid)` of every row above the indexed rowid.
#[derive(Debug, Default)]
pub struct KeyTail {
    loaded: Option<LoadedTail>,
}

#[derive(Debug)]
struct LoadedTail {
    state: IndexState,
    /// The highest rowid the tail covers (the table's `max(rowid)` when it was last synced).
    last_rowid: i64,
    keys: TailKeys,
}

async fn read_state(conn: &mut AnyConnection) -> Result<IndexState, StoreError> {
    let row = sqlx::query("SELECT generation, indexed_rowid FROM usage_key_index WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    Ok(IndexState {
        generation: row.try_get(0)?,
        indexed_rowid: row.try_get(1)?,
    })
}

async fn max_rowid(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM usage_events")
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// `(event_key, rowid)` of the rows with `after < rowid <= upto`.
async fn rows_between(
    conn: &mut AnyConnection,
    after: i64,
    upto: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let rows = sqlx::query(
        "SELECT event_key, rowid FROM usage_events WHERE rowid > $1 AND rowid <= $2 \
         ORDER BY rowid",
    )
    .bind(after)
    .bind(upto)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// `(event_key, rowid)` of the rows above `after`: inside a write transaction, the rows it
/// appended.
pub async fn rows_after(
    conn: &mut AnyConnection,
    after: i64,
) -> Result<Vec<(i64, i64)>, StoreError> {
    rows_between(conn, after, i64::MAX).await
}

impl KeyTail {
    /// Rows in the tail (0 when not loaded).
    pub fn len(&self) -> usize {
        self.loaded.as_ref().map_or(0, |t| t.keys.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Brings the tail up to date with the table, on a connection that sees the latest commit
    /// (inside the write transaction, it cannot change until commit).
    pub async fn sync(&mut self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        let state = read_state(conn).await?;
        let max = max_rowid(conn).await?;
        match &mut self.loaded {
            Some(tail) if tail.state == state && tail.last_rowid <= max => {
                if tail.last_rowid < max {
                    // Another process appended rows since; take them in.
                    for (key, rowid) in rows_between(conn, tail.last_rowid, max).await? {
                        tail.keys.insert(key, rowid);
                    }
                    tail.last_rowid = max;
                }
            }
            _ => {
                let mut keys = TailKeys::default();
                for (key, rowid) in rows_between(conn, state.indexed_rowid, max).await? {
                    keys.insert(key, rowid);
                }
                self.loaded = Some(LoadedTail {
                    state,
                    last_rowid: max.max(state.indexed_rowid),
                    keys,
                });
            }
        }
        Ok(())
    }

    /// The highest rowid the tail covers; new rows of this transaction come after it.
    pub fn last_rowid(&self) -> Option<i64> {
        self.loaded.as_ref().map(|t| t.last_rowid)
    }

    /// Rowids of tail rows whose compact key is one of `keys`.
    pub fn candidates(&self, keys: &[i64]) -> Vec<i64> {
        let Some(tail) = &self.loaded else {
            return Vec::new();
        };
        keys.iter().flat_map(|key| tail.keys.rowids(*key)).collect()
    }

    /// Takes in the rows a committed transaction appended (read back before its commit).
    pub fn committed(&mut self, appended: Vec<(i64, i64)>) {
        let Some(tail) = &mut self.loaded else {
            return;
        };
        for (key, rowid) in appended {
            if rowid <= tail.last_rowid {
                // Not what this writer appended after its sync: trust the table, not memory.
                tracing::warn!(rowid, "dedupe tail out of order; reloading it");
                self.loaded = None;
                return;
            }
            tail.last_rowid = rowid;
            tail.keys.insert(key, rowid);
        }
    }

    /// Forgets everything: the next [`KeyTail::sync`] reloads from the table.
    pub fn invalidate(&mut self) {
        self.loaded = None;
    }

    /// Merges the whole tail into `usage_event_keys` in one sorted bulk insert and advances the
    /// indexed rowid, inside the caller's write transaction. The caller calls
    /// [`KeyTail::merged`] after the commit.
    pub async fn merge(&mut self, conn: &mut AnyConnection) -> Result<i64, StoreError> {
        self.sync(conn).await?;
        let Some(tail) = &self.loaded else {
            return Err(StoreError::corrupt("dedupe tail not loaded after sync"));
        };
        let upto = tail.last_rowid;
        sqlx::query(
            "INSERT INTO usage_event_keys (event_key, event_rowid) SELECT event_key, rowid \
             FROM usage_events WHERE rowid > $1 AND rowid <= $2 ORDER BY event_key, rowid",
        )
        .bind(tail.state.indexed_rowid)
        .bind(upto)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE usage_key_index SET indexed_rowid = $1 WHERE id = 1")
            .bind(upto)
            .execute(&mut *conn)
            .await?;
        Ok(upto)
    }

    /// After a merge up to `upto` committed: those rows are on disk now.
    pub fn merged(&mut self, upto: i64) {
        if let Some(tail) = &mut self.loaded {
            tail.state.indexed_rowid = upto;
            tail.keys.retain_above(upto);
        }
    }
}

/// Rows `(tenant_id, event_id, seq, digest)` whose compact key is one of `keys`: from the merged
/// index, and from the tail's candidate rowids.
pub async fn lookup(
    conn: &mut AnyConnection,
    tail: &KeyTail,
    keys: &[i64],
) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
    let mut rows = Vec::new();
    if !keys.is_empty() {
        let sql = format!(
            "SELECT e.tenant_id, e.event_id, e.seq, e.digest FROM usage_event_keys k \
             JOIN usage_events e ON e.rowid = k.event_rowid WHERE k.event_key IN ({})",
            list_placeholders(Placeholders::Positional, 1, keys.len())
        );
        let mut query = sqlx::query(&sql);
        for key in keys {
            query = query.bind(*key);
        }
        rows.extend(query.fetch_all(&mut *conn).await?);
    }
    let rowids = tail.candidates(keys);
    for chunk in rowids.chunks(ROWIDS_PER_LOOKUP) {
        let sql = format!(
            "SELECT tenant_id, event_id, seq, digest FROM usage_events WHERE rowid IN ({})",
            list_placeholders(Placeholders::Positional, 1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for rowid in chunk {
            query = query.bind(*rowid);
        }
        rows.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(rows)
}

/// Deletes a tenant's stored events (purge) with their dedupe keys; returns the rows deleted.
/// On SQLite the keys go from the merged index first, then the generation is bumped (every
/// cached tail reloads) and the indexed rowid is pulled down to the highest remaining row:
/// SQLite gives a new row `max(rowid) + 1`, so a rowid the deletion frees must count as a tail
/// rowid, never as an indexed one.
pub async fn delete_tenant_events(
    conn: &mut AnyConnection,
    backend: Backend,
    tenant_id: &str,
) -> Result<u64, StoreError> {
    if backend == Backend::Sqlite {
        sqlx::query(
            "DELETE FROM usage_event_keys WHERE (event_key, event_rowid) IN \
             (SELECT event_key, rowid FROM usage_events WHERE tenant_id = $1)",
        )
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    }
    let deleted = sqlx::query("DELETE FROM usage_events WHERE tenant_id = $1")
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if backend == Backend::Sqlite {
        sqlx::query(
            "UPDATE usage_key_index SET generation = generation + 1, indexed_rowid = \
             MIN(indexed_rowid, (SELECT COALESCE(MAX(rowid), 0) FROM usage_events)) WHERE id = 1",
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::TailKeys;

    /// Two events whose compact keys collide both stay findable, before and after a merge.
    #[test]
    fn colliding_keys_keep_every_rowid() {
        let mut keys = TailKeys::default();
        keys.insert(42, 1);
        keys.insert(7, 2);
        keys.insert(42, 3);
        keys.insert(42, 4);
        assert_eq!(keys.len(), 4);
        assert_eq!(keys.rowids(42).collect::<Vec<_>>(), vec![1, 3, 4]);
        keys.retain_above(3);
        assert_eq!(keys.rowids(42).collect::<Vec<_>>(), vec![4]);
        assert_eq!(keys.rowids(7).count(), 0);
        assert_eq!(keys.len(), 1);
    }
}
