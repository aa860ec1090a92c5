-- The token a refresh token was rotated from: lets one INSERT both store the new token and
-- (through a trigger on SQLite, a CTE on PostgreSQL) mark its parent used, atomically.
ALTER TABLE refresh_tokens ADD COLUMN rotated_from TEXT;
