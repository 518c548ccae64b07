package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// ErrEmailTaken means another user has the address already: an address is
// one user's, after normalisation, so that it can name the account in a
// "forgot password" request.
var ErrEmailTaken = errors.New("another user has that email address")

// PrepareEmail is email as stored (NormalizeEmail), or an *InputError for
// one that cannot be an address; "" stays "" (none).
func PrepareEmail(email string) (string, error) {
	// Checked before lower-casing, which would make invalid bytes U+FFFD.
	if !utf8.ValidString(email) {
		return "", &InputError{"an email address must be UTF-8 text"}
	}
	email = NormalizeEmail(email)
	if email == "" {
		return "", nil
	}
	if err := validEmail(email); err != nil {
		return "", err
	}
	return email, nil
}

// SetEmail sets a user's address as an admin (or the command line, or a
// registration) sets it, without a link: verified says whether it counts
// as verified. "" clears it. A bad address is an *InputError, one another
// user has ErrEmailTaken, an id no user has ErrUserNotFound. Links of the
// user's still out for another address stop counting (see PeekAccountToken).
func (s *Store) SetEmail(ctx context.Context, userID UserID, email string, verified bool) error {
	email, err := PrepareEmail(email)
	if err != nil {
		return err
	}
	if !validUUID(string(userID)) {
		return ErrUserNotFound
	}
	tag, err := s.pool.Exec(ctx, s.q.setEmail, string(userID), email, verified)
	if pgErrorCode(err) == pgerrcode.UniqueViolation {
		return ErrEmailTaken
	}
	if err != nil {
		return fmt.Errorf("setting email address: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrUserNotFound
	}
	return nil
}

// CreateUserWithEmail adds a user as CreateUser does, with email as their
// address, not verified yet, in the same transaction: a registration that
// must verify its address is never an account without one, which could
// sign in. An address another user has is ErrEmailTaken, and no user is
// created.
func (s *Store) CreateUserWithEmail(ctx context.Context, username, password, email string) (*User, error) {
	email, err := PrepareEmail(email)
	if err != nil {
		return nil, err
	}
	if email == "" {
		return nil, &InputError{"an email address is needed"}
	}
	if err := errors.Join(ValidatePassword(password), ValidateUsername(username)); err != nil {
		return nil, err
	}
	name, err := PrepareUsername(username)
	if err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(ctx, password)
	if err != nil {
		return nil, fmt.Errorf("creating user: %w", err)
	}
	u, err := s.createUserRow(ctx, name, hash, false, func(tx pgx.Tx, u *User) (*User, error) {
		if _, err := tx.Exec(ctx, s.q.setEmail, string(u.ID), email, false); err != nil {
			if pgErrorCode(err) == pgerrcode.UniqueViolation {
				return nil, ErrEmailTaken
			}
			return nil, err
		}
		return collectUser(tx.Query(ctx, s.q.getUserByID, string(u.ID)))
	})
	if errors.Is(err, ErrEmailTaken) {
		return nil, ErrEmailTaken
	}
	return u, err
}

// UserByEmail finds the user whose address email is, verified or not; an
// address nobody has is ErrUserNotFound. It is for telling that an address
// is taken before a link is sent to it, not for signing in (UserByLogin).
func (s *Store) UserByEmail(ctx context.Context, email string) (*User, error) {
	email, err := PrepareEmail(email)
	if err != nil || email == "" {
		return nil, ErrUserNotFound
	}
	u, err := collectUser(s.pool.Query(ctx, s.q.userByEmail, email))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("looking up user by email: %w", err)
	}
	return u, nil
}

// UserByLogin finds the user a sign-in or a "forgot password" form names:
// by username, as GetUserByName matches it, or else by verified address.
// An unverified address names nobody: whoever typed it into a registration
// has not shown it is theirs. Anything else is ErrUserNotFound.
func (s *Store) UserByLogin(ctx context.Context, nameOrEmail string) (*User, error) {
	u, err := s.GetUserByName(ctx, nameOrEmail)
	if !errors.Is(err, ErrUserNotFound) || !strings.Contains(nameOrEmail, "@") {
		return u, err
	}
	email, err := PrepareEmail(nameOrEmail)
	if err != nil || email == "" {
		return nil, ErrUserNotFound
	}
	u, err = collectUser(s.pool.Query(ctx, s.q.userByVerifiedEmail, email))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("looking up user by email: %w", err)
	}
	return u, nil
}

// VerifyEmail uses a verify_email link: in one transaction it takes the
// token and makes the address it was sent to the user's, verified now. It
// returns the user as they are then. An unknown or used token is
// ErrTokenNotFound, an expired one ErrTokenExpired, and an address another
// user took since the link was sent ErrEmailTaken (the link stays, and
// says so again).
func (s *Store) VerifyEmail(ctx context.Context, token string) (*User, error) {
	if !ValidToken(token) {
		return nil, ErrTokenNotFound // without a transaction for garbage
	}
	var u *User
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		t, err := s.takeAccountToken(ctx, tx, PurposeVerifyEmail, token)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.verifyEmail, string(t.UserID), t.Email); err != nil {
			if pgErrorCode(err) == pgerrcode.UniqueViolation {
				return ErrEmailTaken
			}
			return err
		}
		u, err = collectUser(tx.Query(ctx, s.q.getUserByID, string(t.UserID)))
		return err
	})
	if errors.Is(err, ErrTokenNotFound) || errors.Is(err, ErrTokenExpired) || errors.Is(err, ErrEmailTaken) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("verifying email address: %w", err)
	}
	return u, nil
}

func emailQueries(r *strings.Replacer, q *queries) {
	// setEmail clears the address with ''.
	q.setEmail = r.Replace(`UPDATE {users} SET email = nullif($2::text, ''),
			email_verified_at = CASE WHEN $2::text <> '' AND $3::boolean THEN now() END, updated_at = now()
		WHERE id = $1`)
	q.userByVerifiedEmail = r.Replace(`SELECT {user_columns} FROM {users} WHERE email = $1 AND email_verified_at IS NOT NULL`)
	q.userByEmail = r.Replace(`SELECT {user_columns} FROM {users} WHERE email = $1`)
	q.verifyEmail = r.Replace(`UPDATE {users} SET email = $2, email_verified_at = now(), updated_at = now() WHERE id = $1`)
	accountTokenQueries(r, q)
}
