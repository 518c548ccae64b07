package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"go.mau.fi/util/confusable"
)

// Names that look alike across scripts are one name. The username profile
// makes "ＢＯＢ" and "bob" one key, but "аlice" (Cyrillic а), "alıce"
// (dotless ı) and "aIice" (capital I) are other keys that look like
// "alice". So each name also has two confusable skeletons (Unicode UTS #39,
// from the go.mau.fi/util/confusable table of Unicode's confusables.txt):
// one of its key, which catches look-alikes whatever their case, and one of
// the name as shown, which catches "I" for "l". A new name is refused
// (LookalikeError) when one of its skeletons is one of an account's, either
// of the two: "maIlory" shown looks like "mallory", the key of "Mallory".
// Accounts from before the check that look alike keep working; each keeps
// further look-alikes out, so deleting one does not free the name.

// LookalikeError refuses a new name that looks like an existing account's
// name, which it gives: fit for an admin, not for a stranger signing up.
// It is also ErrUserExists.
type LookalikeError struct{ Existing string }

func (e *LookalikeError) Error() string {
	return fmt.Sprintf("username looks like that of the existing user %q", e.Existing)
}

// Is makes a look-alike a taken name for callers that do not tell them apart.
func (e *LookalikeError) Is(target error) bool { return target == ErrUserExists }

// skeletons returns the UTS #39 skeletons of u's key and of its display form.
func (u Username) skeletons() (key, display string) {
	return confusable.Skeleton(u.Key), confusable.Skeleton(u.Display)
}

// storedSkeletons are the skeletons of a name as typed or stored, which may
// be from before the username profile and fit none.
func storedSkeletons(name string) (key, display string) {
	if u, err := PrepareUsername(name); err == nil {
		return u.skeletons()
	}
	return confusable.Skeleton(strings.ToLower(name)), confusable.Skeleton(name)
}

// usernamesLockKey is the advisory lock under which names are checked for
// look-alikes and created, per schema.
func usernamesLockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("caddy-pgsession usernames " + schema))
	return int64(h.Sum64())
}

// lookingAlike is the condition that a users row looks like the skeletons
// $1 and $2 (key and display), compared crosswise.
const lookingAlike = `(username_skeleton IN ($1, $2) OR display_skeleton IN ($1, $2))`

func lookalikeQueries(r *strings.Replacer, q *queries) {
	q.lockUsernames = `SELECT pg_advisory_xact_lock($1)`
	// createUser inserts only if no account looks like the new name; it
	// runs under the usernames lock, so two look-alikes created at once
	// cannot both pass.
	q.createUser = r.Replace(`INSERT INTO {users} (username_skeleton, display_skeleton, username, username_key, password_hash, is_admin)
		SELECT $1, $2, $3, $4, $5, $6
		WHERE NOT EXISTS (SELECT 1 FROM {users} WHERE ` + lookingAlike + `)
		RETURNING {user_columns}`)
	q.lookalikeOf = r.Replace(`SELECT username FROM {users} WHERE ` + lookingAlike + ` ORDER BY created_at, id LIMIT 1`)
	q.unskeletonedUsers = r.Replace(`SELECT id::text AS id, username FROM {users} WHERE username_skeleton IS NULL
		ORDER BY created_at, id`)
	q.setSkeletons = r.Replace(`UPDATE {users} SET username_skeleton = $2, display_skeleton = $3
		WHERE id = $1 AND username_skeleton IS NULL`)
	// legacyUsers are the rows without a key, and those that look like an
	// older account.
	q.legacyUsers = r.Replace(`SELECT u.id::text AS id, u.username FROM {users} u
		WHERE u.username_key IS NULL OR EXISTS (SELECT 1 FROM {users} o
			WHERE (o.created_at, o.id) < (u.created_at, u.id)
				AND (o.username_skeleton IN (u.username_skeleton, u.display_skeleton)
					OR o.display_skeleton IN (u.username_skeleton, u.display_skeleton)))
		ORDER BY u.created_at, u.id`)
}

// createUserRow inserts a user unless an account looks like the name;
// then, when given, runs in the same transaction, so what it sets is there
// from the user's first moment (an address to verify: CreateUserWithEmail).
func (s *Store) createUserRow(ctx context.Context, name Username, hash string, isAdmin bool,
	then ...func(pgx.Tx, *User) (*User, error)) (*User, error) {
	var u *User
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		u, err = s.insertUser(ctx, tx, name, hash, isAdmin)
		for _, f := range then {
			if err != nil {
				break
			}
			u, err = f(tx, u)
		}
		return err
	})
	if err != nil {
		return nil, s.createUserError(ctx, name, err)
	}
	return u, nil
}

// insertUser takes the usernames lock in tx and inserts the user unless
// an account looks like the name (pgx.ErrNoRows then), so that a larger
// change (an invitation used) creates users as createUserRow does.
func (s *Store) insertUser(ctx context.Context, tx pgx.Tx, name Username, hash string, isAdmin bool) (*User, error) {
	if _, err := tx.Exec(ctx, s.q.lockUsernames, usernamesLockKey(s.schema)); err != nil {
		return nil, err
	}
	key, display := name.skeletons()
	return collectUser(tx.Query(ctx, s.q.createUser, key, display, name.Display, name.Key, hash, isAdmin))
}

// createUserError is the error of an insertUser that failed with err,
// read after its transaction ended.
func (s *Store) createUserError(ctx context.Context, name Username, err error) error {
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return s.lookalikeError(ctx, name.Display)
	case pgErrorCode(err) == pgerrcode.UniqueViolation:
		// An account from before the check with the same key.
		return ErrUserExists
	}
	return fmt.Errorf("creating user: %w", err)
}

// LookalikeOf returns the name of the oldest account whose name looks like
// name (UTS #39 skeletons), or "" when there is none. An account with the
// same key counts: "BOB" looks like "bob".
func (s *Store) LookalikeOf(ctx context.Context, name string) (string, error) {
	key, display := storedSkeletons(name)
	var existing string
	err := s.pool.QueryRow(ctx, s.q.lookalikeOf, key, display).Scan(&existing)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("looking for look-alike usernames: %w", err)
	}
	return existing, nil
}

// lookalikeError is the error for creating name when an account looks like
// it: ErrUserExists for one with the same key, which is the same name.
func (s *Store) lookalikeError(ctx context.Context, name string) error {
	if _, err := s.GetUserByName(ctx, name); err == nil {
		return ErrUserExists
	}
	existing, err := s.LookalikeOf(ctx, name)
	if err != nil {
		return err
	}
	if existing == "" {
		// The look-alike went away meanwhile; the name was taken all the same.
		return ErrUserExists
	}
	return &LookalikeError{Existing: existing}
}

// skeletonBatch is how many rows fillSkeletons updates in one transaction.
const skeletonBatch = 500

// fillSkeletons gives rows from before migration 0011 their skeletons. It
// holds the usernames lock while it writes, so a name created meanwhile is
// checked against the rows filled so far.
func (s *Store) fillSkeletons(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, s.q.unskeletonedUsers)
	if err != nil {
		return fmt.Errorf("reading usernames without a skeleton: %w", err)
	}
	type row struct {
		ID       string `db:"id"`
		Username string `db:"username"`
	}
	users, err := pgx.CollectRows(rows, pgx.RowToStructByName[row])
	if err != nil {
		return fmt.Errorf("reading usernames without a skeleton: %w", err)
	}
	for len(users) > 0 {
		chunk := users[:min(skeletonBatch, len(users))]
		users = users[len(chunk):]
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			b.Queue(s.q.lockUsernames, usernamesLockKey(s.schema))
			for _, u := range chunk {
				key, display := storedSkeletons(u.Username)
				b.Queue(s.q.setSkeletons, u.ID, key, display)
			}
			return tx.SendBatch(ctx, b).Close()
		})
		if err != nil {
			return fmt.Errorf("setting username skeletons: %w", err)
		}
	}
	return nil
}
