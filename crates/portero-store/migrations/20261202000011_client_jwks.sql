-- private_key_jwt (RFC 7523 §2.2): the client's public JWK Set, as JSON text; NULL for
-- clients that authenticate with a secret.
ALTER TABLE clients ADD COLUMN jwks TEXT;

-- The jti of every client assertion accepted, keyed by client id and jti, kept until the
-- assertion expires: a second use of the same assertion is refused.
CREATE TABLE seen_jtis (
    key        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX seen_jtis_expires_at ON seen_jtis (expires_at);
