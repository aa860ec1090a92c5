-- Refusals and throttling are aggregated under load: one row stands for `count` alike events
-- (same kind, outcome, client, source and minute). `authenticated` is false when `client_id` is
-- the id a caller presented without proving it (a wrong secret), so an attack on a client shows
-- under that client. Both statements are portable: SQLite stores the boolean as 0/1.
ALTER TABLE audit_events ADD COLUMN count BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit_events ADD COLUMN authenticated BOOLEAN NOT NULL DEFAULT TRUE;
