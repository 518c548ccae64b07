-- Groups name sets of users, so a site can let some of them see what others
-- may not. A name follows the store's profile (store.ValidGroupName), held
-- here too so that hand-written SQL cannot make a name that a site's rules
-- or its upstream could misread, and it compares and sorts byte by byte
-- (COLLATE "C"), so the order the store returns is the same on every
-- database, whatever its locale.
CREATE TABLE groups (
    name       text COLLATE "C" PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Deleting a user or a group deletes their memberships with them. The
-- primary key leads with user_id, which is how a session's lookup reads a
-- user's groups; the index on group_name serves the member counts and the
-- cascade of deleting a group.
CREATE TABLE user_groups (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_name text COLLATE "C" NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, group_name)
);
CREATE INDEX user_groups_group_name_idx ON user_groups (group_name);

-- A server keeps a session in memory with its user's groups, so a change of
-- membership is a change of the user (u:<id>, see 0007_notify_changes.sql):
-- every server drops the user's sessions and reads the groups again. The
-- triggers are per statement, with transition tables, so adding a hundred
-- users to a group sends one notification, and the cascades of deleting a
-- group or a user fire them as well. A join the user already had inserts no
-- row (ON CONFLICT DO NOTHING) and sends nothing.
CREATE FUNCTION notify_user_groups_changed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM notify_invalidated('u', ARRAY(SELECT DISTINCT n.user_id::text FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM notify_invalidated('u', ARRAY(SELECT DISTINCT o.user_id::text FROM old_rows o));
    ELSE
        -- Hand-written SQL may move a membership to another user or group.
        PERFORM notify_invalidated('u', ARRAY(
            SELECT o.user_id::text FROM old_rows o
            UNION SELECT n.user_id::text FROM new_rows n));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER user_groups_inserted AFTER INSERT ON user_groups
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_user_groups_changed();
CREATE TRIGGER user_groups_deleted AFTER DELETE ON user_groups
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_user_groups_changed();
CREATE TRIGGER user_groups_updated AFTER UPDATE ON user_groups
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION notify_user_groups_changed();
CREATE TRIGGER user_groups_truncated AFTER TRUNCATE ON user_groups
    FOR EACH STATEMENT EXECUTE FUNCTION notify_truncated();
