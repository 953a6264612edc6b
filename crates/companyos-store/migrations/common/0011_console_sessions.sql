-- The operator console (issue 18, ADR 0013).
-- The adapter a request came through ('api', 'cli', 'console'); NULL for jobs and for records
-- written before channels existed (their canonical form, and so their leaf, has no channel).
ALTER TABLE audit_events ADD COLUMN channel TEXT;
CREATE INDEX audit_events_channel ON audit_events (channel, seq);
-- Console sessions, kept in the store so that every node sees a logout or a revoked operator on
-- the next request. Only the SHA-256 of the session cookie is stored; the CSRF token is bound to
-- the session and useless without its cookie.
CREATE TABLE console_sessions (
    id_sha256 TEXT PRIMARY KEY,
    operator_id TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX console_sessions_operator ON console_sessions (operator_id);
