-- Invitations to create an account: an admin (or the command line) makes a
-- single-use link, and whoever opens it picks a name and a password, or
-- signs in with an identity provider, and becomes a user in the groups the
-- admin chose. Not to be confused with identity_invitations
-- (0017_identities.sql), which let a provider's email link to a user who
-- exists already.
--
-- token_hash is the hex SHA-256 of the link's 256-bit token: the token
-- itself is only in the link, so a copy of the table opens nothing. id is
-- the public name of an invitation, for listing and revoking it. email is
-- whom it was for (lower-cased), NULL for a link handed on by the admin.
-- groups are names, not references: a group deleted meanwhile is left out
-- when the invitation is used. An invitation is used by setting used_at
-- with UPDATE ... WHERE used_at IS NULL AND expires_at > now(), so of two
-- uses at once one wins. A used invitation stays (used_at, used_by) for the
-- admins' list until the cleanup job deletes it, as it deletes expired
-- ones, some days later.
CREATE TABLE user_invitations (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash text        NOT NULL UNIQUE,
    email      text        CHECK (email <> ''),
    groups     text[]      NOT NULL DEFAULT '{}',
    created_by uuid        REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    used_by    uuid        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT user_invitations_expiry_check CHECK (expires_at > created_at)
);
-- The cleanup job reads unused invitations by expiry and used ones by when
-- they were used. created_by and used_by are not indexed: the table holds
-- a few weeks of invitations, so deleting a user reads it whole at no cost.
CREATE INDEX user_invitations_unused_expires_at_idx ON user_invitations (expires_at) WHERE used_at IS NULL;
CREATE INDEX user_invitations_used_at_idx ON user_invitations (used_at) WHERE used_at IS NOT NULL;

-- A sign-in with a provider that began on an invitation's page carries the
-- invitation, so its callback creates the invited account. Revoking the
-- invitation ends the sign-ins that carry it.
ALTER TABLE identity_flows ADD COLUMN invitation_id uuid REFERENCES user_invitations (id) ON DELETE CASCADE;
CREATE INDEX identity_flows_invitation_idx ON identity_flows (invitation_id) WHERE invitation_id IS NOT NULL;
