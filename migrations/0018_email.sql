-- Email addresses on users, and the single-use links (password reset,
-- address verification) sent to them.

-- A user's address, normalised as store.NormalizeEmail does (trimmed,
-- lower-cased), so one address is one value and the unique index refuses
-- Alice@Example.com beside alice@example.com; NULL for none. The account
-- page changes it only when the link sent to the new address is used, so
-- an address here is verified unless email_verified_at is NULL, which only
-- a registration waiting for its link leaves. An address without a user to
-- hold it makes no sense, so a verification without one cannot exist.
ALTER TABLE users ADD COLUMN email text CHECK (email <> ''),
    ADD COLUMN email_verified_at timestamptz,
    ADD CONSTRAINT users_email_verified_check CHECK (email_verified_at IS NULL OR email IS NOT NULL);
CREATE UNIQUE INDEX users_email_key ON users (email) WHERE email IS NOT NULL;

-- A link sent by mail: id is the lowercase hex SHA-256 of the token, so a
-- copy of the table opens no link. email is the address the link was sent
-- to (a verification sets it; a reset is told from a later change of
-- address by it), credential_version the user's when it was issued: any
-- password change since, by a reset or otherwise, ends a reset link. A
-- link is used once (taken with DELETE ... RETURNING) and a newer link of
-- the same purpose deletes the user's older ones; the cleanup job deletes
-- the expired rest.
CREATE TABLE account_tokens (
    id                 text        PRIMARY KEY,
    purpose            text        NOT NULL CHECK (purpose IN ('reset', 'verify_email')),
    user_id            uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email              text        NOT NULL CHECK (email <> ''),
    credential_version bigint      NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    CONSTRAINT account_tokens_expiry_check CHECK (expires_at > created_at)
);
-- A user's links of a purpose are read to count and to replace them; the
-- index also serves the cascade of deleting a user.
CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_at_idx ON account_tokens (expires_at);

-- The links sent, kept for the throttle after a link is used or replaced:
-- a user may ask for a few links an hour, not for a mail with every click.
-- A row counts until expires_at, the end of the longest window it was
-- counted in; the cleanup job deletes it then.
CREATE TABLE account_links_sent (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text        NOT NULL CHECK (purpose IN ('reset', 'verify_email')),
    sent_at    timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX account_links_sent_user_idx ON account_links_sent (user_id, purpose, sent_at);
CREATE INDEX account_links_sent_expires_at_idx ON account_links_sent (expires_at);
