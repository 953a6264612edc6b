//! Writing SQLite's key runs: a run's blocks go out as they fill, its fences and filter last,
//! when it becomes live; and the one-off conversion of the schema-5 key table into a run.

use sqlx::{AnyConnection, Row as _};

use super::{BLOCKS_PER_INSERT, RUNS_PER_LEVEL_MAX, Run};
use crate::db::{Placeholders, StoreError};
use crate::key_runs::{self, BlockCutter, KeyEntry, RunFilter};

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
pub(super) struct RunWriter {
    run_id: i64,
    level: i64,
    cutter: BlockCutter,
    pub(super) fences: Vec<i64>,
    filter: RunFilter,
    pub(super) key_count: u64,
    /// Finished blocks not yet inserted.
    pub(super) pending: Vec<(i64, Vec<u8>)>,
}

impl RunWriter {
    /// Starts a run of `level`: its row, `building` until [`RunWriter::finish`] (readers never
    /// use it before).
    pub(super) async fn begin(
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

    pub(super) fn push(&mut self, entry: KeyEntry) {
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

    pub(super) async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        insert_blocks(conn, &self.pending).await?;
        self.pending.clear();
        Ok(())
    }

    /// Writes the last block and makes the run live.
    pub(super) async fn finish(mut self, conn: &mut AnyConnection) -> Result<Run, StoreError> {
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
