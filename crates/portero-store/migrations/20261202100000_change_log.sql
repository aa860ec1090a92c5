-- Changes to clients and keys, for the processes that share one SQLite file (the server and the
-- CLI): the server reads new rows every second and drops what it cached of them, as PostgreSQL
-- nodes do on NOTIFY. PostgreSQL does not use this table. Rows older than an hour are pruned.
CREATE TABLE change_log (
    seq BIGINT PRIMARY KEY,
    change TEXT NOT NULL,
    at BIGINT NOT NULL
);
