-- The audit trail: every token issued or refused, refresh-token reuse, revocations and
-- throttling, with the authenticated client, the subject and the caller's address. Never a
-- secret, password or token. Written in batches off the request path; purged after 90 days.
CREATE TABLE audit_events (
    id         TEXT PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    client_id  TEXT,
    subject    TEXT,
    grant_type TEXT,
    source     TEXT,
    detail     TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
