-- A public handle for each session, so users and admins can name a session
-- (to end it) without ever seeing its token or the token's hash.
ALTER TABLE sessions ADD COLUMN handle uuid NOT NULL DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX sessions_handle_idx ON sessions (handle);

-- A session unused for longer than its idle timeout is over, even before
-- expires_at. The timeout is kept per session, so every server sharing the
-- database agrees on it, and idle_expires_at (last use plus the timeout) is
-- what lookups and the cleanup compare with now(). Both are NULL for a
-- session without an idle timeout.
ALTER TABLE sessions ADD COLUMN idle_timeout_seconds integer CHECK (idle_timeout_seconds > 0);
ALTER TABLE sessions ADD COLUMN idle_expires_at timestamptz;
CREATE INDEX sessions_idle_expires_at_idx ON sessions (idle_expires_at) WHERE idle_expires_at IS NOT NULL;
