-- Each request the webhook boundary driver sends to the external provisioner is an attempt with
-- its own id; the provisioner's callback names it and its signature covers it with the tenant
-- id, so a callback answers one attempt of one tenant, once. `answered_at` is set in the
-- transaction that accepts the callback (or when a newer attempt supersedes this one), which
-- makes a replay fail on every node of a shared database.
CREATE TABLE provisioning_attempts (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    answered_at BIGINT,
    outcome TEXT
);

CREATE INDEX provisioning_attempts_tenant ON provisioning_attempts (tenant_id);
