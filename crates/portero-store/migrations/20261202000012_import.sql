-- Issue 14: clients and users moved in from another provider, by import or lazily.
--   origin        NULL (created here), 'import' (portero import), 'upstream' (lazy migration)
--   import_digest SHA-256 of the import row as Portero read it (never of a plaintext), so that
--                 re-importing the same file finds the row unchanged
--   imported_at   when the row was imported (or last updated by an import)
--   migrated_at   when a legacy hash was replaced by argon2id at the first successful login
--   last_seen_at  the first successful authentication; written once, while it is NULL
ALTER TABLE clients ADD COLUMN origin TEXT;
ALTER TABLE clients ADD COLUMN import_digest TEXT;
ALTER TABLE clients ADD COLUMN imported_at BIGINT;
ALTER TABLE clients ADD COLUMN migrated_at BIGINT;
ALTER TABLE clients ADD COLUMN last_seen_at BIGINT;
ALTER TABLE users ADD COLUMN origin TEXT;
ALTER TABLE users ADD COLUMN import_digest TEXT;
ALTER TABLE users ADD COLUMN imported_at BIGINT;
ALTER TABLE users ADD COLUMN migrated_at BIGINT;
ALTER TABLE users ADD COLUMN last_seen_at BIGINT;
CREATE INDEX users_tenant ON users (tenant_id);
