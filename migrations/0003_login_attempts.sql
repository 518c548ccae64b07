-- Failed logins, counted per account and per client IP to throttle password
-- guessing across every server sharing the database. A row counts while
-- expires_at is in the future; the cleanup job deletes it afterwards.
CREATE TABLE login_attempts (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username_key text        NOT NULL,
    ip           text        NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

CREATE INDEX login_attempts_username_idx ON login_attempts (username_key, attempted_at);
CREATE INDEX login_attempts_ip_idx ON login_attempts (ip, attempted_at);
CREATE INDEX login_attempts_expires_at_idx ON login_attempts (expires_at);
