-- Failed-attempt slots are taken before a secret or password is checked (one atomic upsert per
-- key), and the length of the last block is kept so that each block doubles the one before.
ALTER TABLE auth_failures ADD COLUMN last_block BIGINT NOT NULL DEFAULT 0;
