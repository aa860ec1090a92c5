-- Access tokens revoked before their expiry (RFC 7009), by jti; purged once expired.
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens (expires_at);

-- Secret rotation with overlap: the previous secret keeps working until its expiry.
ALTER TABLE clients ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE clients ADD COLUMN previous_secret_expires_at BIGINT;

CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
