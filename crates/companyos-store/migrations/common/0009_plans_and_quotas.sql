-- The versioned plan catalog, each tenant's plan history, and quota state (BILL-1, BILL-2;
-- ADR 0011). Spelled the same on both engines. The built-in plans become version 1 and every
-- existing tenant gets an assignment to version 1 of its plan, written by `billing::seed` at
-- start (it needs the canonical form and SHA-256, which SQL cannot compute on both engines).

-- Immutable plan versions: `spec` is the canonical JSON (RFC 8785) whose SHA-256 is `sha256`.
CREATE TABLE plan_versions (
    plan TEXT NOT NULL,
    version BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (plan, version)
);

-- Every assignment of a plan version to a tenant, never changed or deleted. On a day D the
-- assignment in force is the one with the highest `seq` among those with effective_from <= D
-- (a later assignment overrides any earlier one from its own effective day on, and cancels a
-- pending one that would start on or after it). `effective_from` is a UTC day, YYYY-MM-DD.
CREATE TABLE tenant_plan_assignments (
    tenant_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    plan TEXT NOT NULL,
    version BIGINT NOT NULL,
    effective_from TEXT NOT NULL,
    assigned_at BIGINT NOT NULL,
    assigned_by TEXT NOT NULL,
    reason TEXT,
    PRIMARY KEY (tenant_id, seq)
);

-- The tenant row carries the version in force today and its features (a JSON list), so every
-- policy decision sees the tenant's entitlements without another read. NULL entitlements: a
-- row written before the catalog; the seed fills it.
ALTER TABLE tenants ADD COLUMN plan_version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE tenants ADD COLUMN entitlements TEXT;

-- Usage per (tenant, metric, period), kept by the ingestion group commit (accepted and late
-- events by their timestamp's UTC day or month). `period` is day or month, `period_start` the
-- period's first day (YYYY-MM-DD); `quantity` and `top_up` exact decimals as text.
CREATE TABLE quota_usage (
    tenant_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    period TEXT NOT NULL,
    period_start TEXT NOT NULL,
    quantity TEXT NOT NULL,
    top_up TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, metric, period, period_start)
);

-- One event per threshold crossed: the unique key makes it exactly once, across nodes and
-- restarts (insert-if-absent in the group commit's transaction).
CREATE TABLE quota_events (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    period TEXT NOT NULL,
    period_start TEXT NOT NULL,
    threshold_percent BIGINT NOT NULL,
    plan TEXT NOT NULL,
    version BIGINT NOT NULL,
    quantity TEXT NOT NULL,
    included TEXT NOT NULL,
    overage TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    UNIQUE (tenant_id, metric, period, period_start, threshold_percent)
);

CREATE INDEX quota_events_tenant ON quota_events (tenant_id, occurred_at)
