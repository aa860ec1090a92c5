-- Failed authentications per client id and per (client, username), shared by every node, so a
-- brute-force attempt is throttled wherever its requests land. Rows past their window are purged.
CREATE TABLE auth_failures (
    key           TEXT PRIMARY KEY,
    failures      BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL
);
CREATE INDEX auth_failures_window ON auth_failures (window_start);
