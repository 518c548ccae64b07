package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"golang.org/x/text/secure/precis"
)

// A provider's first sign-in may create the user (auto_create): a user
// without a password, named after what the provider calls the person,
// with the identity linked and the groups of its claim joined in the same
// transaction, so no user is left behind without the identity that is
// their only way in.

// usernameFallback names a user whose provider gave nothing that fits the
// username profile.
const usernameFallback = "user"

// Suffixes tried when the name, or a look-alike, is taken: 2 to
// numberedNames, then randomNames random ones, so that people who took
// alice2 to alice9 cannot keep the next alice out.
const (
	numberedNames = 9
	randomNames   = 5
	suffixRoom    = 7 // characters kept free for a suffix
)

// UsernameFromHint makes a username from what a provider calls someone
// (preferred_username, a login, an email's name, a display name): the
// characters the username profile refuses are dropped, spaces squeezed to
// one, and the name shortened to leave room for a numeric suffix;
// usernameFallback when nothing fits.
func UsernameFromHint(hint string) string {
	var parts []string
	for field := range strings.FieldsSeq(strings.ToValidUTF8(hint, "")) {
		var b strings.Builder
		for _, r := range field {
			if _, err := precis.UsernameCasePreserved.String(string(r)); err == nil {
				b.WriteRune(r)
			}
		}
		if b.Len() > 0 {
			parts = append(parts, b.String())
		}
	}
	name := strings.Join(parts, " ")
	if n := MaxUsernameLength - suffixRoom; utf8.RuneCountInString(name) > n {
		name = strings.TrimRight(string([]rune(name)[:n]), " ")
	}
	if _, err := PrepareUsername(name); err != nil {
		// Characters fine alone that break a rule together, such as
		// right-to-left text mixed with left-to-right.
		return usernameFallback
	}
	return name
}

// usernameCandidates are the names tried in turn for hint.
func usernameCandidates(hint string) []string {
	base := UsernameFromHint(hint)
	names := []string{base}
	for n := 2; n <= numberedNames; n++ {
		names = append(names, base+strconv.Itoa(n))
	}
	for range randomNames {
		n, _ := rand.Int(rand.Reader, big.NewInt(900000))
		names = append(names, base+strconv.FormatInt(n.Int64()+100000, 10))
	}
	return names
}

// CreateUserFromIdentity creates a user without a password for a
// provider's first sign-in, links id to them and joins them to those of
// groups that exist, as the provider's memberships (see
// SyncProviderGroups), all in one transaction, and returns the user. The
// name comes from usernameHint (UsernameFromHint), with a number after it
// when an account has it or one like it. It returns ErrIdentityTaken when
// another sign-in linked id meanwhile (nothing is created), ErrUserExists
// when no name could be found, and an *InputError for what cannot be
// stored.
func (s *Store) CreateUserFromIdentity(ctx context.Context, usernameHint string, id Identity, groups []string) (*User, error) {
	if err := id.validate(); err != nil {
		return nil, err
	}
	var u *User
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, s.q.lockUsernames, usernamesLockKey(s.schema)); err != nil {
			return err
		}
		var err error
		if u, err = s.createNamedUser(ctx, tx, usernameCandidates(usernameHint)); err != nil {
			return err
		}
		if err := s.link(ctx, tx, u.ID, id); err != nil {
			return err
		}
		if len(groups) > 0 {
			if err := s.syncGroups(ctx, tx, u.ID, id.Provider, groups); err != nil {
				return err
			}
			u, err = collectUser(tx.Query(ctx, s.q.getUserByID, string(u.ID)))
		}
		return err
	})
	switch {
	case errors.Is(err, ErrIdentityTaken), errors.Is(err, ErrUserExists):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("creating a user for an identity: %w", err)
	}
	return u, nil
}

// createNamedUser inserts a user without a password under the first of
// names that no account has or looks like, in tx, which holds the
// usernames lock; ErrUserExists when every one is taken.
func (s *Store) createNamedUser(ctx context.Context, tx pgx.Tx, names []string) (*User, error) {
	for _, candidate := range names {
		name, err := PrepareUsername(candidate)
		if err != nil {
			continue
		}
		key, display := name.skeletons()
		// A savepoint, so that a name an account from before the profile
		// has (a unique violation) leaves the transaction usable.
		attempt, err := tx.Begin(ctx)
		if err != nil {
			return nil, err
		}
		u, err := collectUser(attempt.Query(ctx, s.q.createUser, key, display, name.Display, name.Key, nil, false))
		switch {
		case err == nil:
			return u, attempt.Commit(ctx)
		case errors.Is(err, pgx.ErrNoRows), pgErrorCode(err) == pgerrcode.UniqueViolation:
			if err := attempt.Rollback(ctx); err != nil {
				return nil, err
			}
		default:
			return nil, err
		}
	}
	return nil, ErrUserExists
}
