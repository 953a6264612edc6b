-- Quota rows stored in primary key order (SQLite WITHOUT ROWID, ADR 0011): every ingestion
-- group reads and upserts its tenants' rows by (tenant, metric, period, start); one B-tree
-- instead of a rowid table plus its primary-key index halves the pages each group touches.
-- PostgreSQL keeps its heap table with the primary-key index.
CREATE TABLE quota_usage_clustered (
    tenant_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    period TEXT NOT NULL,
    period_start TEXT NOT NULL,
    quantity TEXT NOT NULL,
    top_up TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, metric, period, period_start)
) WITHOUT ROWID;
INSERT INTO quota_usage_clustered (tenant_id, metric, period, period_start, quantity, top_up,
    updated_at)
    SELECT tenant_id, metric, period, period_start, quantity, top_up, updated_at FROM quota_usage;
DROP TABLE quota_usage;
ALTER TABLE quota_usage_clustered RENAME TO quota_usage;
