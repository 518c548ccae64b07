-- How a session was signed in, so a path can ask for a second factor and a
-- session can step up to one without being replaced:
--   password                 the password alone
--   password+totp            the password, then an authenticator app's code
--   password+recovery_code   the password, then a recovery code
--   passkey                  a passkey with user verification, alone or after
--                            the password (it is a whole sign-in by itself)
-- Sessions from before this column are recorded as password sessions. Some
-- of them passed a second step, but nothing kept says which, and the safe
-- reading is the weaker one: such a user may be asked for a factor once more
-- on a path that needs one.
ALTER TABLE sessions ADD COLUMN auth_method text NOT NULL DEFAULT 'password'
    CONSTRAINT sessions_auth_method_check
    CHECK (auth_method IN ('password', 'password+totp', 'password+recovery_code', 'passkey'));

-- As in 0007_notify_changes.sql, with one change more announced: a new
-- auth_method. A server that kept the session as password-only must read it
-- again after a step-up made on another server, or it would keep asking for
-- the factor (or, the other way, keep a method the row no longer has).
CREATE OR REPLACE FUNCTION notify_sessions_updated() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM notify_invalidated('s', ARRAY(
        SELECT o.id FROM old_rows o LEFT JOIN new_rows n ON n.handle = o.handle
        WHERE n.handle IS NULL OR n.id <> o.id OR n.user_id <> o.user_id
            OR n.credential_version <> o.credential_version
            OR n.auth_method <> o.auth_method
            OR n.expires_at < o.expires_at
            OR n.idle_expires_at IS NOT NULL AND (o.idle_expires_at IS NULL OR n.idle_expires_at < o.idle_expires_at)));
    RETURN NULL;
END
$$;
