-- Look-alike names across scripts ("аlice" with a Cyrillic а, "alıce" with a
-- dotless ı, "aIice" with a capital I, next to "alice") are one name: the
-- store fills, in Go, the UTS #39 confusable skeleton of each name's key
-- (username_skeleton) and of the name as shown (display_skeleton), for new
-- rows and, after this migration, for existing ones. A new name is refused
-- when one of its skeletons is one of an account's; the store checks that
-- under an advisory lock, since two columns compared crosswise cannot be one
-- unique index. Existing accounts that look alike keep both their names.
ALTER TABLE users
    ADD COLUMN username_skeleton text,
    ADD COLUMN display_skeleton text;
CREATE INDEX users_username_skeleton_idx ON users (username_skeleton);
CREATE INDEX users_display_skeleton_idx ON users (display_skeleton);
