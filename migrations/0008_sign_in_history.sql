-- Every attempt to sign in to an existing account: when, from which address
-- and browser, and how it ended, for the account's owner and admins to see.
-- Rows name the account, never the name that was typed: an attempt naming
-- no account (often a password typed into the name field) leaves no row.
-- Rows go with their user, and the cleanup job deletes those older than
-- history_retention, by attempted_at.
CREATE TABLE sign_in_history (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    ip           text        NOT NULL DEFAULT '',
    user_agent   text        NOT NULL DEFAULT '',
    outcome      text        NOT NULL CHECK (outcome IN ('success', 'failure', 'throttled'))
);

-- A user's latest attempts, newest first, are one index range read backwards.
CREATE INDEX sign_in_history_user_idx ON sign_in_history (user_id, attempted_at, id);
CREATE INDEX sign_in_history_attempted_at_idx ON sign_in_history (attempted_at);
