-- SQLite: the dedupe key index becomes immutable sorted runs (ADR 0007). The rows of the merged
-- index (usage_event_keys) are written as one run by the migration code right after this
-- version, and that table is dropped.
-- AUTOINCREMENT: a run id is never reused, so a block's row id (run id << 32 | block) never
-- names a block of an earlier run.
CREATE TABLE usage_key_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    level BIGINT NOT NULL,
    -- 'building' while a compaction writes it (never read), then 'live'.
    state TEXT NOT NULL,
    key_count BIGINT NOT NULL,
    block_count BIGINT NOT NULL,
    -- The first key of each block, 8 bytes big-endian each.
    fences BLOB NOT NULL,
    -- A blocked Bloom filter of the run's keys (companyos_core::key_runs::RunFilter).
    filter BLOB NOT NULL
);

-- A run's blocks: up to 100 sorted (key, bundle id, position) entries each, one 2 KiB page.
CREATE TABLE usage_key_blocks (
    id INTEGER PRIMARY KEY,
    entries BLOB NOT NULL
)
