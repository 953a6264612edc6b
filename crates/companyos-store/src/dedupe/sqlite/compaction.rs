//! The compaction of SQLite's key runs: the runs of a level that holds
//! [`RUNS_PER_LEVEL_MAX`] of them are merged (k-way, in key order) into one run of the next
//! level, at most a given number of blocks per write transaction, so that a compaction of
//! millions of keys goes on between group commits instead of holding the write lock for
//! seconds.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row as _};

use super::run_writer::RunWriter;
use super::{COMPACTION_READ_BLOCKS, RUNS_PER_LEVEL_MAX, Run, SqliteKeyIndex};
use crate::db::StoreError;
use crate::dedupe::{IndexChange, RunHandle};
use crate::key_runs::{self, KeyEntry};

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
pub(super) struct Compaction {
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

impl SqliteKeyIndex {
    /// Runs one compaction step inside the caller's write transaction, writing at most
    /// `step_blocks` blocks (a compaction of millions of keys goes on between group commits
    /// instead of holding the write lock for seconds), and starting a compaction when a level
    /// holds [`RUNS_PER_LEVEL_MAX`] runs; [`IndexChange::Nothing`] when there is nothing to
    /// compact. On any error the caller must [`SqliteKeyIndex::abandon_compaction`].
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
            self.compaction = Some(Compaction::begin(conn, &loaded.runs, level).await?);
        }
        let Some(compaction) = &mut self.compaction else {
            return Ok(IndexChange::Nothing);
        };
        if !compaction.advance(conn, step_blocks).await? {
            return Ok(IndexChange::Compacted { finished: None });
        }
        let Some(compaction) = self.compaction.take() else {
            return Ok(IndexChange::Nothing);
        };
        compaction.finish(conn).await
    }
}

impl Compaction {
    /// Starts compacting the runs of `level` into a run of the next level, after deleting what
    /// an unfinished compaction left.
    async fn begin(
        conn: &mut AnyConnection,
        runs: &[Run],
        level: i64,
    ) -> Result<Compaction, StoreError> {
        let sources: Vec<Source> = runs
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
        Ok(Compaction {
            sources,
            writer,
            keys_expected,
        })
    }

    /// Merges entries until `step_blocks` more blocks are written (then flushes them and
    /// returns false) or the sources are exhausted (returns true).
    async fn advance(
        &mut self,
        conn: &mut AnyConnection,
        step_blocks: usize,
    ) -> Result<bool, StoreError> {
        let blocks_before = self.writer.fences.len();
        loop {
            if self.writer.fences.len() - blocks_before >= step_blocks {
                self.writer.flush(conn).await?;
                return Ok(false);
            }
            // The smallest next entry over the sources (a handful: a scan beats a heap).
            let mut smallest: Option<(usize, KeyEntry)> = None;
            for (i, source) in self.sources.iter_mut().enumerate() {
                if let Some(entry) = source.peek(conn).await? {
                    if smallest.is_none_or(|(_, s)| entry < s) {
                        smallest = Some((i, entry));
                    }
                }
            }
            let Some((i, entry)) = smallest else {
                return Ok(true);
            };
            self.sources[i].buffered.pop_front();
            self.writer.push(entry);
        }
    }

    /// Makes the new run live in place of its sources, once every key was merged.
    async fn finish(self, conn: &mut AnyConnection) -> Result<IndexChange, StoreError> {
        if self.writer.key_count != self.keys_expected {
            return Err(StoreError::corrupt(format!(
                "dedupe key compaction read {} keys of {}",
                self.writer.key_count, self.keys_expected
            )));
        }
        let source_ids: Vec<i64> = self.sources.iter().map(|s| s.run_id).collect();
        let run = self.writer.finish(conn).await?;
        // The new run holds every key of its sources: they go in the same transaction.
        delete_runs(conn, &source_ids).await?;
        sqlx::query("UPDATE usage_key_index SET generation = generation + 1 WHERE id = 1")
            .execute(&mut *conn)
            .await?;
        Ok(IndexChange::Compacted {
            finished: Some((RunHandle(run), source_ids)),
        })
    }
}

/// The lowest level holding [`RUNS_PER_LEVEL_MAX`] runs or more.
pub(super) fn level_to_compact(runs: &[Run]) -> Option<i64> {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for run in runs {
        *counts.entry(run.level).or_default() += 1;
    }
    counts
        .into_iter()
        .find(|(_, count)| *count >= RUNS_PER_LEVEL_MAX)
        .map(|(level, _)| level)
}
