-- SQLite: leaves and usage event payloads move to bundles, one row per run of consecutive
-- entries that one transaction appended (ADR 0006). The rows of the old per-entry tables are
-- converted by the migration code right after version 4, then those tables are dropped.
-- Rowid tables with a unique index, not clustered by log: a group commit appends a bundle per
-- tenant, and inserting kilobyte rows at a hundred places of one B-tree splits and rebalances
-- big cells (scripts/sqlite-ceiling.py: 122,786 events/s clustered, 170,727 as here).
CREATE TABLE ledger_leaf_bundles (
    log_id TEXT NOT NULL,
    first_index BIGINT NOT NULL,
    leaf_count BIGINT NOT NULL,
    leaf_hashes BLOB NOT NULL,
    leaf_data BLOB NOT NULL,
    UNIQUE (log_id, first_index)
);

-- AUTOINCREMENT: a bundle id is never reused, even after a purge deletes the newest bundles,
-- so the dedupe tail's "ids above indexed_bundle_id" always means "written since the merge".
CREATE TABLE usage_event_bundles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    event_count BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    event_keys BLOB NOT NULL,
    events BLOB NOT NULL,
    UNIQUE (tenant_id, first_seq)
);

DROP TABLE usage_event_keys;
DROP TABLE usage_key_index;

-- The merged dedupe key index: compact key -> (bundle, position in the bundle).
CREATE TABLE usage_event_keys (
    event_key BIGINT NOT NULL,
    bundle_id BIGINT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (event_key, bundle_id, position)
) WITHOUT ROWID;

-- One row. generation changes whenever keys are deleted, so every cached tail reloads.
CREATE TABLE usage_key_index (
    id BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL,
    indexed_bundle_id BIGINT NOT NULL
);

INSERT INTO usage_key_index (id, generation, indexed_bundle_id) VALUES (1, 0, 0)
