-- Lifecycle: clients and users can be disabled (and enabled again); tokens issued before a
-- revocation of their client or user are inactive at introspection.
ALTER TABLE clients ADD COLUMN disabled_at BIGINT;
ALTER TABLE users ADD COLUMN disabled_at BIGINT;

-- owner_kind is 'client' or 'user'; access tokens of that owner issued at or before
-- revoked_before are inactive. Kept after the owner is deleted, so a new owner of the same id
-- does not revive old tokens.
CREATE TABLE revocation_cutoffs (
    owner_kind     TEXT NOT NULL,
    owner_id       TEXT NOT NULL,
    revoked_before BIGINT NOT NULL,
    PRIMARY KEY (owner_kind, owner_id)
);

CREATE INDEX refresh_tokens_client ON refresh_tokens (client_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
