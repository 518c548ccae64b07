-- A session is valid only while it was created under its user's current
-- credentials. Setting a password bumps users.credential_version; a login
-- copies the version it verified into its session, and a lookup requires the
-- two to match. So a login that checked the old password a moment before the
-- change committed can never leave a live session behind, whatever the order
-- in which the two transactions finish. Existing rows start equal (1 = 1).
ALTER TABLE users ADD COLUMN credential_version bigint NOT NULL DEFAULT 1;
ALTER TABLE sessions ADD COLUMN credential_version bigint NOT NULL DEFAULT 1;
