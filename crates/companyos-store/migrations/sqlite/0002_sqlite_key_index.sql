-- SQLite only (see dedupe.rs): dedupe keys move from a per-row index on usage_events to an
-- index merged in bulk, plus the rows above indexed_rowid (kept in memory by the writer).
CREATE TABLE usage_event_keys (
    event_key BIGINT NOT NULL,
    event_rowid BIGINT NOT NULL,
    PRIMARY KEY (event_key, event_rowid)
) WITHOUT ROWID;

-- One row. generation changes whenever rows are deleted, so every cached tail reloads.
CREATE TABLE usage_key_index (
    id BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL,
    indexed_rowid BIGINT NOT NULL
);

INSERT INTO usage_key_index (id, generation, indexed_rowid)
    SELECT 1, 0, COALESCE(MAX(rowid), 0) FROM usage_events;

INSERT INTO usage_event_keys (event_key, event_rowid)
    SELECT event_key, rowid FROM usage_events ORDER BY event_key, rowid;

DROP INDEX usage_events_key;
