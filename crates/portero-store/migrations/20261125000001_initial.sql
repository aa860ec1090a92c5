-- Portero's schema. Portable between SQLite and PostgreSQL: TEXT, BIGINT (unix seconds), BOOLEAN.
-- Lists (grants, scopes, audiences, tenant ids) are space-separated: none of their values may
-- contain a space (RFC 6749 §3.3 scope tokens, URIs, UUIDs).

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE clients (
    id                    TEXT PRIMARY KEY,
    secret_hash           TEXT NOT NULL,
    grants                TEXT NOT NULL,
    scopes                TEXT NOT NULL,
    audiences             TEXT NOT NULL,
    tenants               TEXT NOT NULL,
    token_ttl             BIGINT,
    refresh_policy        TEXT NOT NULL,
    ignore_unknown_scopes BOOLEAN NOT NULL,
    locale                TEXT,
    created_at            BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id),
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (tenant_id, username)
);
CREATE INDEX users_username ON users (username);

-- Refresh tokens by the SHA-256 of their value; the value itself is never stored.
CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT,
    tenants    TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    audiences  TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Private keys sealed with AES-256-GCM under the master key (never plain text).
CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    alg                TEXT NOT NULL,
    sealed_private_key TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    activate_at        BIGINT NOT NULL,
    retired_at         BIGINT
);
