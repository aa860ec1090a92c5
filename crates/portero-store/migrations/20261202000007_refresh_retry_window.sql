-- Seconds after a rotation during which the parent may be redeemed again for the same child
-- (a retry whose answer was lost); NULL takes the server's refresh_retry_window_seconds.
ALTER TABLE clients ADD COLUMN refresh_retry_window BIGINT;
