-- Final monthly statements (BILL-3, ADR 0012): the canonical JSON (RFC 8785) exactly as served,
-- and its SHA-256. A row is written once, when every day of the month is closed, and never
-- updated: later usage of the month is an adjustment of a later statement.
CREATE TABLE statements (
    tenant_id TEXT NOT NULL,
    month TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    document TEXT NOT NULL,
    finalized_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, month)
)
