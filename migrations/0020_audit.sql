-- The audit trail: every admin action, who did it, what it was, when and
-- from where, as the admin API, the admin page and the command line did it.

-- actor_id is the admin's user id, NULL for the admin token, the command
-- line and Caddy's admin endpoint. It has no foreign key: the record must
-- outlive the admin it names (an admin who deletes themselves, or is
-- deleted, is still who did what), and a uuid is never given to another
-- user, so a stale id names nobody else. Without one, deleting a user also
-- never has to search or update a table that grows with every action.
-- actor is the name at the time ("alice", "admin token", "command line",
-- "caddy admin endpoint"), kept as text because a username can change.
-- status is the HTTP status the action was answered with, NULL from the
-- command line, which has none. detail never holds a password, a token or
-- a link: the code that writes it says only what changed.
CREATE TABLE audit_log (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor_id uuid,
    actor    text        NOT NULL,
    action   text        NOT NULL,
    target   text        NOT NULL DEFAULT '',
    detail   text        NOT NULL DEFAULT '',
    remote   text        NOT NULL DEFAULT '',
    status   int
);
-- The list pages newest first by id; the retention deletes by at, and an
-- admin looks up what was done to one user or group by target.
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_target_idx ON audit_log (target);
