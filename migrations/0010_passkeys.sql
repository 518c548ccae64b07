-- Passkeys (WebAuthn credentials): a user signs in with one instead of a
-- password, from the authenticator that holds its private key. The row
-- keeps what verifying a signature needs: the public key, and the
-- signature counter that reveals a cloned authenticator. credential is the
-- whole credential record as the WebAuthn library writes it; the columns
-- beside it are the parts the plugin reads or updates on its own.
CREATE TABLE passkeys (
    id              bytea       PRIMARY KEY,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            text        NOT NULL,
    credential      jsonb       NOT NULL,
    public_key      bytea       NOT NULL,
    sign_count      bigint      NOT NULL DEFAULT 0 CHECK (sign_count BETWEEN 0 AND 4294967295),
    aaguid          bytea,
    transports      text[]      NOT NULL DEFAULT '{}',
    backup_eligible boolean     NOT NULL DEFAULT false,
    backup_state    boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz
);

CREATE INDEX passkeys_user_idx ON passkeys (user_id, created_at);

-- The WebAuthn user handle: what an authenticator stores with a passkey and
-- returns at sign-in, so the passkey names its account without a username.
-- It is random, not the username (which can change and is personal) nor
-- the user's id (which the site's upstream sees in X-Auth-User-Id).
ALTER TABLE users ADD COLUMN webauthn_handle bytea NOT NULL DEFAULT uuid_send(gen_random_uuid());
ALTER TABLE users ADD CONSTRAINT users_webauthn_handle_key UNIQUE (webauthn_handle);

-- A WebAuthn ceremony between its begin and its finish: the challenge and
-- what else the finish must check. It is in the database, not in a
-- server's memory, so the finish may reach another server than the begin.
-- id is the hex SHA-256 of a random token that only the browser holds, in a
-- short-lived HttpOnly cookie; the finish deletes the row as it reads it,
-- so a ceremony is used once. Expired rows are deleted as new ones begin.
CREATE TABLE webauthn_ceremonies (
    id           text        PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('register', 'login')),
    user_id      uuid        REFERENCES users (id) ON DELETE CASCADE,
    session_data jsonb       NOT NULL,
    expires_at   timestamptz NOT NULL
);

CREATE INDEX webauthn_ceremonies_expires_at_idx ON webauthn_ceremonies (expires_at);

-- Failed passkey sign-ins count toward the per-address limit of failed
-- logins, as kind 'passkey': a passkey names no account before it is
-- verified, so there is no per-account count.
ALTER TABLE login_attempts DROP CONSTRAINT login_attempts_kind_check;
ALTER TABLE login_attempts ADD CONSTRAINT login_attempts_kind_check
    CHECK (kind IN ('login', 'register', 'passkey'));
