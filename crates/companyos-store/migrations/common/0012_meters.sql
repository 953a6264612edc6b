-- OpenMeter-compatible meters (CONTRACT §11, ADR 0014): a meter maps CloudEvents of one type to
-- usage events of one metric (its slug); `definition` is the meter's JSON as sent, validated.
CREATE TABLE meters (
    slug TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    service TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE INDEX meters_event_type ON meters (event_type);

CREATE INDEX meters_service ON meters (service);

-- CloudEvent subjects that belong to a tenant other than the one of the same id.
CREATE TABLE meter_subjects (
    subject TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX meter_subjects_tenant ON meter_subjects (tenant_id)
