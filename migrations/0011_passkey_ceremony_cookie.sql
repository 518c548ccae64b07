-- A passkey ceremony's state moves out of the database into the browser's
-- ceremony cookie, sealed (AES-256-GCM) so the browser can neither read
-- nor change it: beginning a sign-in, which anyone may do without a
-- cookie, writes nothing. The finish still works on any server sharing
-- the database, with the key below (or one derived from secrets_key), and
-- a ceremony is still used once: its challenge is recorded as it is
-- finished.
DROP TABLE webauthn_ceremonies;

-- The key that seals ceremony cookies when secrets_key is not set: random,
-- made by the first server that starts, read by every server at start, so
-- a ceremony begun on one finishes on another.
CREATE TABLE ceremony_keys (
    name       text        PRIMARY KEY,
    key        bytea       NOT NULL CHECK (length(key) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The challenges of finished ceremonies, as SHA-256 hashes, until their
-- ceremony cookie could no longer be opened: a second finish with the same
-- cookie inserts a duplicate and is refused. The cleanup job deletes
-- expired rows.
CREATE TABLE used_challenges (
    challenge_hash bytea       PRIMARY KEY,
    expires_at     timestamptz NOT NULL
);

CREATE INDEX used_challenges_expires_at_idx ON used_challenges (expires_at);
