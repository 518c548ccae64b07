-- username_key is the name in its PRECIS UsernameCaseMapped form (RFC 8265):
-- width-mapped, lowercased and NFC-normalised, so "ＢＯＢ" and "bob" are one
-- account. The store fills it in Go, for new rows and, after this migration,
-- for existing ones; a legacy name that does not fit the profile, or that
-- collides with an older account's key, keeps a NULL key and is found by
-- lower(username) as before, so existing accounts keep working.
ALTER TABLE users ADD COLUMN username_key text;
CREATE UNIQUE INDEX users_username_key_idx ON users (username_key);
