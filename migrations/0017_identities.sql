-- Signing in with an identity provider (OpenID Connect, GitHub): the links
-- between a provider's accounts and users, an admin's permission for a
-- first sign-in to link, and the sign-ins in progress.

-- A provider is named as the global option names it: 1 to 32 of a-z, 0-9
-- and '-', compared byte by byte. One domain says it once for every table.
CREATE DOMAIN identity_provider AS text COLLATE "C" CHECK (VALUE ~ '^[a-z0-9-]{1,32}$');

-- A link is the provider's subject (OIDC's sub, GitHub's numeric user id),
-- which the provider never gives to another account, and never the email,
-- which can change owner: a recycled or changed address cannot take over
-- an account. email is the provider's verified email as it said it last
-- (NULL when it gave none verified), for the account page and the admins.
--
-- A user has at most one identity of each provider: the account page, the
-- command line and the invitations name an identity by its provider
-- ("Unlink Google"), and an account someone else linked from a stolen
-- session takes the user's own slot, where the account page shows it,
-- instead of sitting unnoticed beside it. The unique index leads with
-- user_id, so it is also the index a user's identities (and the cascade of
-- deleting a user) are read by.
CREATE TABLE identities (
    provider     identity_provider NOT NULL,
    subject      text COLLATE "C"  NOT NULL CHECK (octet_length(subject) BETWEEN 1 AND 255),
    user_id      uuid              NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email        text,
    created_at   timestamptz       NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    PRIMARY KEY (provider, subject),
    CONSTRAINT identities_one_per_provider UNIQUE (user_id, provider)
);

-- An admin's permission for the first sign-in with provider whose verified
-- email is email (lower-cased) to link to an existing user. It is used
-- once: the sign-in deletes it as it stores the link by subject, and from
-- then on the email plays no part. expires_at NULL means no expiry; the
-- cleanup job deletes expired ones. created_by (the admin, NULL from the
-- command line) is not indexed: the table holds the few invitations not
-- used yet, so deleting a user reads it whole at no cost.
CREATE TABLE identity_invitations (
    provider   identity_provider NOT NULL,
    email      text              NOT NULL CHECK (email <> ''),
    user_id    uuid              NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_by uuid              REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz       NOT NULL DEFAULT now(),
    expires_at timestamptz,
    PRIMARY KEY (provider, email),
    CONSTRAINT identity_invitations_expiry_check CHECK (expires_at > created_at)
);
CREATE INDEX identity_invitations_user_idx ON identity_invitations (user_id);
CREATE INDEX identity_invitations_expires_at_idx ON identity_invitations (expires_at) WHERE expires_at IS NOT NULL;

-- A sign-in (or, with link_user_id, the account page's "Link") between the
-- redirect to the provider and its callback. It is in the database, not in
-- a server's memory, so the callback may reach another server, and each
-- tab's sign-in is a row of its own. id is the hex SHA-256 of the state
-- parameter and binding the hex SHA-256 of the browser's flow cookie: the
-- database holds neither value, so a copy of it cannot finish a sign-in.
-- nonce and pkce_verifier are sealed (AES-256-GCM) under a key derived from
-- the flow cookie's value, which only the browser holds, with the row's id
-- as additional data: a reader of the database cannot use them, and no
-- server needs a key of its own. The callback takes the row with
-- DELETE ... RETURNING, only while it has not expired and only with the
-- matching binding, so it is used once; the cleanup job deletes the rest.
CREATE TABLE identity_flows (
    id            text              PRIMARY KEY,
    binding       text              NOT NULL,
    provider      identity_provider NOT NULL,
    nonce         bytea             NOT NULL,
    pkce_verifier bytea             NOT NULL,
    redirect      text              NOT NULL DEFAULT '',
    link_user_id  uuid              REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz       NOT NULL DEFAULT now(),
    expires_at    timestamptz       NOT NULL
);
CREATE INDEX identity_flows_expires_at_idx ON identity_flows (expires_at);
CREATE INDEX identity_flows_link_user_idx ON identity_flows (link_user_id) WHERE link_user_id IS NOT NULL;

-- A user created by a provider's first sign-in has no password: NULL, which
-- no password matches (the store checks a wrong password against a fake
-- hash instead, so the answer takes as long). The store never leaves a user
-- without a way to sign in: a password, a passkey or an identity.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;

-- As in 0007_notify_changes.sql, with a password set or removed announced
-- too: <> says nothing when one side is NULL.
CREATE OR REPLACE FUNCTION notify_users_updated() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path FROM CURRENT
AS $$
BEGIN
    PERFORM notify_invalidated('u', ARRAY(
        SELECT o.id::text FROM old_rows o LEFT JOIN new_rows n ON n.id = o.id
        WHERE n.id IS NULL OR n.username <> o.username OR n.is_admin <> o.is_admin
            OR n.password_hash IS DISTINCT FROM o.password_hash OR n.credential_version <> o.credential_version));
    RETURN NULL;
END
$$;

-- The methods of a provider's sign-in (see 0015_session_auth_method.sql):
--   provider                 the provider alone
--   provider+mfa             the provider, whose amr/acr claims showed a
--                            second factor it checked, trusted by the
--                            trust_provider_mfa option
--   provider+totp            the provider, then this site's authenticator code
--   provider+recovery_code   the provider, then a recovery code
ALTER TABLE sessions DROP CONSTRAINT sessions_auth_method_check,
    ADD CONSTRAINT sessions_auth_method_check
        CHECK (auth_method IN ('password', 'password+totp', 'password+recovery_code', 'passkey',
            'provider', 'provider+mfa', 'provider+totp', 'provider+recovery_code'));

-- A sign-in waiting for its second factor remembers what its first step
-- was, so the session it becomes says provider+totp, not password+totp.
ALTER TABLE pending_logins ADD COLUMN first_method text NOT NULL DEFAULT 'password'
    CONSTRAINT pending_logins_first_method_check CHECK (first_method IN ('password', 'provider'));

-- The history names a provider's sign-in as factor provider.
ALTER TABLE sign_in_history DROP CONSTRAINT sign_in_history_factor_check,
    ADD CONSTRAINT sign_in_history_factor_check
        CHECK (factor IN ('password', 'totp', 'recovery_code', 'passkey', 'api_token', 'provider'));

-- A membership made from a provider's groups claim names the provider, so
-- the next sign-in can take the user out of a group the claim no longer
-- lists without touching the memberships an admin made (NULL). Changing
-- memberships is announced by the triggers of 0013_groups.sql.
ALTER TABLE user_groups ADD COLUMN provider identity_provider;
