-- A second factor: a TOTP authenticator (RFC 6238) and its recovery codes,
-- and the logins that passed the password and wait for a code.
--
-- The TOTP secret is stored encrypted (AES-256-GCM under a key derived from
-- the secrets_key option, the user id as additional data) and never in
-- plaintext. last_step is the time step of the last code accepted: a code
-- is accepted only for a later step, so each code works once.
CREATE TABLE totp_secrets (
    user_id      uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret       bytea       NOT NULL,
    confirmed    boolean     NOT NULL DEFAULT false,
    last_step    bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    confirmed_at timestamptz
);

-- Recovery codes are random with 80 bits each, so a plain SHA-256 is as
-- good as a slow hash: nobody can guess a code from its hash. Each row is
-- one code, used once.
CREATE TABLE recovery_codes (
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- A login whose password was right and whose second factor is awaited. id
-- is the hex SHA-256 of the token in the pending cookie. It counts only
-- while it has not expired, the user's credential_version is the one it
-- was created under, and it has seen fewer wrong codes than the limit.
CREATE TABLE pending_logins (
    id                 text        PRIMARY KEY,
    user_id            uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_version bigint      NOT NULL,
    remember           boolean     NOT NULL DEFAULT false,
    failures           integer     NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL DEFAULT now() + interval '5 minutes'
);
CREATE INDEX pending_logins_user_idx ON pending_logins (user_id);
CREATE INDEX pending_logins_expires_at_idx ON pending_logins (expires_at);

-- The history names the factor a step of the sign-in used: password for
-- the first step, totp or recovery_code for the second (passkey is kept for
-- passkeys); null when an attempt failed before any factor was checked.
ALTER TABLE sign_in_history ADD COLUMN factor text
    CHECK (factor IN ('password', 'totp', 'recovery_code', 'passkey'));
ALTER TABLE sign_in_history DROP CONSTRAINT sign_in_history_outcome_check;
ALTER TABLE sign_in_history ADD CONSTRAINT sign_in_history_outcome_check
    CHECK (outcome IN ('success', 'failure', 'throttled', 'second_factor_required'));
