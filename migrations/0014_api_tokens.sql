-- API tokens: named, long-lived credentials a user makes for scripts. The
-- token is shown once; id is the lowercase hex SHA-256 of the whole token
-- (its pgs_ prefix included), the same form as sessions.id, so a server's
-- memory and the s:<id> notifications treat a token as they treat a session.
-- handle names a token to its owner and admins without revealing its hash.
--
-- expires_at NULL means no expiry. paths, when not empty, are the Caddy path
-- patterns the token is limited to, stored as given. admin_scope lets the
-- token use its owner's admin rights, and counts only while the owner is an
-- admin: the store allows it only for an admin, and a lookup ANDs the two.
--
-- A token is a credential of its own, listed and revocable on its own: it
-- survives a change of its owner's password (no credential_version here), and
-- ends when it expires, is revoked (one, or all of a user's at once), or its
-- owner is deleted (ON DELETE CASCADE, which the delete trigger announces).
CREATE TABLE api_tokens (
    id             text        PRIMARY KEY,
    handle         uuid        NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    user_id        uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name           text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz,
    paths          text[]      NOT NULL DEFAULT '{}',
    admin_scope    boolean     NOT NULL DEFAULT false,
    last_used_at   timestamptz,
    last_used_from text        NOT NULL DEFAULT '',
    CONSTRAINT api_tokens_name_key UNIQUE (user_id, name),
    CONSTRAINT api_tokens_expiry_check CHECK (expires_at > created_at)
);

-- The cleanup finds expired tokens by their expiry; (user_id, name) already
-- indexes a user's tokens.
CREATE INDEX api_tokens_expires_at_idx ON api_tokens (expires_at) WHERE expires_at IS NOT NULL;

-- As for sessions (0007_notify_changes.sql): a deleted token that had not
-- expired is announced, and so is an update that narrows what a kept token
-- may do (an earlier expiry, other paths, another admin scope, owner or id).
-- Recording a use (last_used_at, last_used_from) or renaming sends nothing.
CREATE FUNCTION notify_api_tokens_deleted() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM notify_invalidated('s', ARRAY(
        SELECT o.id FROM old_rows o WHERE o.expires_at IS NULL OR o.expires_at > now()));
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_api_tokens_updated() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM notify_invalidated('s', ARRAY(
        SELECT o.id FROM old_rows o LEFT JOIN new_rows n ON n.handle = o.handle
        WHERE n.handle IS NULL OR n.id <> o.id OR n.user_id <> o.user_id
            OR n.admin_scope <> o.admin_scope OR n.paths <> o.paths
            OR n.expires_at IS NOT NULL AND (o.expires_at IS NULL OR n.expires_at < o.expires_at)));
    RETURN NULL;
END
$$;

CREATE TRIGGER api_tokens_deleted AFTER DELETE ON api_tokens
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_api_tokens_deleted();
CREATE TRIGGER api_tokens_updated AFTER UPDATE ON api_tokens
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_api_tokens_updated();
CREATE TRIGGER api_tokens_truncated AFTER TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION notify_truncated();

-- Wrong API tokens count toward the per-address limit of failed logins, as
-- kind 'token': like a passkey, an unknown token names no account.
ALTER TABLE login_attempts DROP CONSTRAINT login_attempts_kind_check;
ALTER TABLE login_attempts ADD CONSTRAINT login_attempts_kind_check
    CHECK (kind IN ('login', 'register', 'passkey', 'token'));
