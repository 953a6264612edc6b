-- CompanyOS schema v1, shared by SQLite and PostgreSQL.
-- Times are BIGINT microseconds since the Unix epoch (UTC), days are BIGINT days since
-- 1970-01-01, decimals are TEXT (exact), JSON documents are TEXT, flags are BIGINT 0 or 1.
-- CLUSTERED marks tables stored in primary key order (SQLite WITHOUT ROWID: one B-tree
-- instead of a table and an index, for the append-heavy ledger tables).

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Public halves of the signing keys, so that every node sharing the database proves it holds
-- the same private keys before it signs anything.
CREATE TABLE signing_keys (
    purpose TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE operators (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    created_by TEXT,
    revoked_at BIGINT
);

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    status TEXT NOT NULL,
    status_before_delete TEXT,
    home_region TEXT NOT NULL,
    allowed_regions TEXT NOT NULL,
    deploy_regions TEXT NOT NULL,
    boundary_driver TEXT NOT NULL,
    boundary TEXT NOT NULL,
    policy_text TEXT NOT NULL,
    policy_sha256 TEXT NOT NULL,
    tombstone_days BIGINT NOT NULL,
    hard_delete_allowed BIGINT NOT NULL,
    legal_hold BIGINT NOT NULL,
    audit_webhook_url TEXT,
    dossier_evidence_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    suspended_at BIGINT,
    deleted_at BIGINT,
    purge_after BIGINT,
    purged_at BIGINT
);

CREATE INDEX tenants_status ON tenants (status);

CREATE TABLE tenant_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX tenant_keys_tenant ON tenant_keys (tenant_id);

CREATE TABLE provisioning_runs (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    steps TEXT NOT NULL
);

CREATE INDEX provisioning_runs_tenant ON provisioning_runs (tenant_id);

CREATE TABLE workloads (
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    replicas BIGINT NOT NULL,
    suspended_replicas BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    params TEXT NOT NULL,
    warnings TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_by_name TEXT NOT NULL,
    requested_reason TEXT,
    requested_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_by TEXT,
    decided_by_name TEXT,
    decided_at BIGINT,
    comment TEXT,
    result TEXT
);

CREATE INDEX approvals_status ON approvals (status);

-- Transactional outbox: messages to drivers and webhooks, written in the transaction of the
-- change they announce and delivered with retries by the outbox job.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    tenant_id TEXT,
    destination TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    failed_at BIGINT,
    last_error TEXT
);

CREATE INDEX outbox_pending ON outbox (delivered_at, next_attempt_at);

-- Verifiable logs (RFC 6962). One head per log, every leaf, and the complete-subtree hashes of
-- levels 4, 8, 12, ... (other levels are recomputed from at most 16 stored hashes).
CREATE TABLE ledger_heads (
    log_id TEXT PRIMARY KEY,
    tree_size BIGINT NOT NULL,
    root BLOB_TYPE NOT NULL,
    frontier BLOB_TYPE NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE ledger_leaves (
    log_id TEXT NOT NULL,
    leaf_index BIGINT NOT NULL,
    leaf_hash BLOB_TYPE NOT NULL,
    leaf_data BLOB_TYPE NOT NULL,
    PRIMARY KEY (log_id, leaf_index)
) CLUSTERED;

CREATE TABLE ledger_nodes (
    log_id TEXT NOT NULL,
    level BIGINT NOT NULL,
    node_index BIGINT NOT NULL,
    hash BLOB_TYPE NOT NULL,
    PRIMARY KEY (log_id, level, node_index)
) CLUSTERED;

CREATE TABLE ledger_checkpoints (
    log_id TEXT NOT NULL,
    tree_size BIGINT NOT NULL,
    root BLOB_TYPE NOT NULL,
    note TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    PRIMARY KEY (log_id, tree_size)
);

CREATE TABLE audit_events (
    seq BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    occurred_at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    tenant_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    request_id TEXT,
    policy_sha256 TEXT NOT NULL,
    details TEXT NOT NULL
);

CREATE INDEX audit_events_tenant ON audit_events (tenant_id, seq);
CREATE INDEX audit_events_time ON audit_events (occurred_at);

CREATE TABLE sources (
    id TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);

-- Accepted and late events: the dedupe key, what rollups need, and the payload (the canonical
-- form) that purge deletes while the ledger leaf stays.
CREATE TABLE usage_events (
    tenant_id TEXT NOT NULL,
    -- The dedupe key, compact: the first 8 bytes of SHA-256(tenant_id "\n" event_id) as a
    -- signed integer. Not unique (a collision only costs a second comparison of event_id);
    -- uniqueness of (tenant_id, event_id) is kept by ingestion under the tenant's head lock.
    event_key BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    digest TEXT NOT NULL,
    service TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    quantity TEXT NOT NULL,
    event_time BIGINT NOT NULL,
    event_day BIGINT NOT NULL,
    class TEXT NOT NULL,
    flags TEXT NOT NULL,
    source TEXT,
    source_seq BIGINT,
    received_at BIGINT NOT NULL,
    canonical TEXT NOT NULL,
    source_signature TEXT,
    PRIMARY KEY (tenant_id, seq)
);

CREATE INDEX usage_events_key ON usage_events (event_key);

CREATE TABLE usage_rejections (
    id TEXT PRIMARY KEY,
    tenant_id TEXT,
    event_id TEXT,
    event_day BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    errors TEXT NOT NULL,
    raw TEXT NOT NULL,
    raw_truncated BIGINT NOT NULL
);

CREATE INDEX usage_rejections_tenant_day ON usage_rejections (tenant_id, event_day);

CREATE TABLE usage_conflicts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    original_seq BIGINT NOT NULL,
    digest TEXT NOT NULL,
    event_day BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    raw TEXT NOT NULL
);

CREATE INDEX usage_conflicts_tenant_day ON usage_conflicts (tenant_id, event_day);

-- Daily rollups of on-time events, maintained in the ingestion transaction.
CREATE TABLE usage_daily (
    tenant_id TEXT NOT NULL,
    day BIGINT NOT NULL,
    service TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    quantity_sum TEXT NOT NULL,
    quantity_max TEXT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, service, metric, unit)
);

-- Late adjustments: late events, by the day they belong to; they never change usage_daily.
CREATE TABLE usage_late (
    tenant_id TEXT NOT NULL,
    day BIGINT NOT NULL,
    service TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    quantity_sum TEXT NOT NULL,
    quantity_max TEXT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day, service, metric, unit)
);

-- Reconciliation counters per tenant and event day.
CREATE TABLE usage_counters (
    tenant_id TEXT NOT NULL,
    day BIGINT NOT NULL,
    accepted BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    late BIGINT NOT NULL,
    invalid BIGINT NOT NULL,
    conflicts BIGINT NOT NULL,
    unsigned_events BIGINT NOT NULL,
    undeclared BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, day)
);

CREATE TABLE usage_days_closed (
    tenant_id TEXT NOT NULL,
    day BIGINT NOT NULL,
    closed_at BIGINT NOT NULL,
    tree_size BIGINT NOT NULL,
    rollup_sha256 TEXT NOT NULL,
    PRIMARY KEY (tenant_id, day)
);

-- Received source_seq values as disjoint ranges; the holes between them are missing events.
-- first_day is the event day of the range's first event: a hole is reported on the day of the
-- event that follows it.
CREATE TABLE source_seq_ranges (
    source TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    from_seq BIGINT NOT NULL,
    to_seq BIGINT NOT NULL,
    first_day BIGINT NOT NULL,
    PRIMARY KEY (source, tenant_id, from_seq)
);

CREATE INDEX source_seq_ranges_tenant ON source_seq_ranges (tenant_id, first_day);

CREATE TABLE metering_declarations (
    service TEXT PRIMARY KEY,
    declaration TEXT NOT NULL,
    coverage_mode TEXT,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

-- What was actually metered, declared or not: for the coverage report.
CREATE TABLE metering_seen (
    service TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    events BIGINT NOT NULL,
    PRIMARY KEY (service, metric, unit)
);

CREATE TABLE evidence (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    tenant_id TEXT,
    sha256 TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    file_name TEXT NOT NULL,
    signature TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    metadata TEXT NOT NULL
);

CREATE INDEX evidence_tenant ON evidence (tenant_id, kind);

-- Artifact bytes when the evidence store is the database (several nodes, no shared disk).
CREATE TABLE evidence_blobs (
    sha256 TEXT PRIMARY KEY,
    content BLOB_TYPE NOT NULL
);

-- Background job leases: one node runs each job at a time.
CREATE TABLE job_leases (
    job TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
)
