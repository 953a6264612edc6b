//! PostgreSQL's key index: the `usage_event_keys` rows (a B-tree on `event_key`), written in the
//! ingestion transaction itself. It holds nothing in memory, so every hook of SQLite's cache
//! (merges, compaction, reloads) is a no-op here.

use sqlx::{AnyConnection, Row as _};

use super::{AppendedKey, EventKeyIndex, EventPlace, IndexChange};
use crate::db::StoreError;

/// Keys per lookup statement (one array parameter).
const KEYS_PER_LOOKUP: usize = 65_536;

/// PostgreSQL's key index: stateless, so it is copied, never locked, and any number of
/// writers on any number of nodes use it at once (they serialise per tenant on the ledger head
/// row lock, which every insert of a tenant's events holds).
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresKeyIndex;

impl EventKeyIndex for PostgresKeyIndex {
    async fn begin_write(&mut self, tx: &mut AnyConnection) -> Result<(), StoreError> {
        // Every lookup of the write path is a point or short-range lookup on an index.
        // Without fresh statistics (a young or fast-growing table, autovacuum off) the
        // planner can pick a sequential scan of all events per batch; forbid it here.
        // One simple-protocol round trip for the three; `SET LOCAL` ends with the transaction.
        sqlx::Executor::execute(
            &mut *tx,
            "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; \
             SET LOCAL enable_mergejoin = off",
        )
        .await?;
        Ok(())
    }

    async fn places(
        &mut self,
        conn: &mut AnyConnection,
        keys: &[i64],
    ) -> Result<Vec<EventPlace>, StoreError> {
        let mut places = Vec::new();
        // Every key in one statement (an index scan per array element). The statement text is
        // the same for any number of keys: plain chunks.
        for chunk in keys.chunks(KEYS_PER_LOOKUP) {
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
        Ok(places)
    }

    async fn write_appended(
        &mut self,
        tx: &mut AnyConnection,
        appended: &[AppendedKey],
    ) -> Result<(), StoreError> {
        crate::bundles::insert_keys(tx, appended).await
    }

    fn committed(&mut self, _appended: &[AppendedKey]) {}

    fn tail_len(&self) -> usize {
        0
    }

    fn run_count(&self) -> usize {
        0
    }

    async fn merge(&mut self, _tx: &mut AnyConnection) -> Result<IndexChange, StoreError> {
        Ok(IndexChange::Nothing)
    }

    fn wants_compaction(&self) -> bool {
        false
    }

    async fn compaction_step(
        &mut self,
        _tx: &mut AnyConnection,
        _step_blocks: usize,
    ) -> Result<IndexChange, StoreError> {
        Ok(IndexChange::Nothing)
    }

    fn apply(&mut self, _change: IndexChange) {}

    fn abandon_compaction(&mut self) {}

    fn invalidate(&mut self) {}
}
