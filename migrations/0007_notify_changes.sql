-- Each Caddy server keeps the sessions it has checked in memory. These
-- triggers tell every server, with NOTIFY on a channel named after the
-- schema, when a session it may have kept stops being valid, whoever made
-- the change: the plugin, the command line, another server or hand-written
-- SQL. Payloads:
--   s:<id>,<id>,...   these sessions (token hashes) ended or were shortened
--   u:<id>,<id>,...   these users were deleted or changed (name, password,
--                     admin rights, credentials): drop all their sessions
--   *                 too many at once, or a TRUNCATE: drop everything
-- Rows that had already expired are left out: every server checks expiry
-- by itself, so the cleanup job deleting a million of them sends nothing.

-- notify_invalidated sends kind:ids in payloads under PostgreSQL's 8000-byte
-- limit, or '*' when there are so many that dropping everything is cheaper.
CREATE FUNCTION notify_invalidated(kind text, ids text[]) RETURNS void
    LANGUAGE plpgsql VOLATILE
    SET search_path FROM CURRENT
AS $$
DECLARE
    channel text := current_schema();
    payload text := '';
    id text;
BEGIN
    IF ids IS NULL OR cardinality(ids) = 0 THEN
        RETURN;
    END IF;
    IF cardinality(ids) > 200 THEN
        PERFORM pg_notify(channel, '*');
        RETURN;
    END IF;
    FOREACH id IN ARRAY ids LOOP
        IF length(payload) + length(id) > 7900 THEN
            PERFORM pg_notify(channel, kind || ':' || payload);
            payload := '';
        END IF;
        payload := payload || CASE WHEN payload = '' THEN '' ELSE ',' END || id;
    END LOOP;
    PERFORM pg_notify(channel, kind || ':' || payload);
END
$$;

CREATE FUNCTION notify_sessions_deleted() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM notify_invalidated('s', ARRAY(
        SELECT o.id FROM old_rows o
        WHERE o.expires_at > now() AND (o.idle_expires_at IS NULL OR o.idle_expires_at > now())));
    RETURN NULL;
END
$$;

-- An update notifies only what can make a kept session wrong: an earlier
-- end, new credentials, another owner or id. A renewal, which only pushes
-- the idle end later, sends nothing.
CREATE FUNCTION notify_sessions_updated() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM notify_invalidated('s', ARRAY(
        SELECT o.id FROM old_rows o LEFT JOIN new_rows n ON n.handle = o.handle
        WHERE n.handle IS NULL OR n.id <> o.id OR n.user_id <> o.user_id
            OR n.credential_version <> o.credential_version
            OR n.expires_at < o.expires_at
            OR n.idle_expires_at IS NOT NULL AND (o.idle_expires_at IS NULL OR n.idle_expires_at < o.idle_expires_at)));
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_users_deleted() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM notify_invalidated('u', ARRAY(SELECT o.id::text FROM old_rows o));
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_users_updated() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM notify_invalidated('u', ARRAY(
        SELECT o.id::text FROM old_rows o LEFT JOIN new_rows n ON n.id = o.id
        WHERE n.id IS NULL OR n.username <> o.username OR n.is_admin <> o.is_admin
            OR n.password_hash <> o.password_hash OR n.credential_version <> o.credential_version));
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_truncated() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM pg_notify(current_schema(), '*');
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_sessions_deleted();
CREATE TRIGGER sessions_updated AFTER UPDATE ON sessions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_sessions_updated();
CREATE TRIGGER users_deleted AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_users_deleted();
CREATE TRIGGER users_updated AFTER UPDATE ON users
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_users_updated();
CREATE TRIGGER sessions_truncated AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION notify_truncated();
CREATE TRIGGER users_truncated AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION notify_truncated();

-- Maintenance rounds (the cleanup job) are claimed here rather than under a
-- session-level advisory lock, which a transaction pooler would leave held
-- on a server connection another client then uses: whoever moves
-- last_started forward runs the round, the other servers skip it, and
-- nothing stays held if a server dies mid-round.
CREATE TABLE maintenance (
    task         text        PRIMARY KEY,
    last_started timestamptz NOT NULL DEFAULT '-infinity',
    last_server  text        NOT NULL DEFAULT ''
);
INSERT INTO maintenance (task) VALUES ('cleanup');
