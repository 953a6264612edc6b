-- Day close of quiet days: every day of a tenant closes once its late window has passed, with or
-- without usage. `day` is the last day up to which every day of the tenant (from the day it was
-- created) is closed, so each run of the day-close job only looks at the days after it.
CREATE TABLE usage_days_closed_through (
    tenant_id TEXT PRIMARY KEY,
    day BIGINT NOT NULL
);
