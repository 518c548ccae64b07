package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// PendingLoginLifetime is how long a login that passed the password waits
// for its second factor.
const PendingLoginLifetime = 5 * time.Minute

// PendingLogin is a login whose password was right and whose second factor
// is awaited. It is bound to the user and to the credentials verified: a
// password or factor change in between ends it.
type PendingLogin struct {
	User     User
	Remember bool // the login asked to be remembered
	Failures int  // wrong codes so far
}

// CreatePendingLogin records that user (as read when their password was
// checked) passed the password, and returns the token for the pending
// cookie; the database keeps its hash. ErrCredentialsChanged when the
// user's credentials moved on since they were read.
func (s *Store) CreatePendingLogin(ctx context.Context, user User, remember bool) (string, error) {
	if !validUUID(string(user.ID)) {
		return "", ErrUserNotFound
	}
	token := newToken()
	tag, err := s.pool.Exec(ctx, s.q.createPending, string(HashToken(token)), string(user.ID), remember,
		user.CredentialVersion, PendingLoginLifetime.Seconds())
	if err != nil {
		return "", fmt.Errorf("recording a pending login: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return "", ErrCredentialsChanged
	}
	return token, nil
}

// GetPendingLogin returns the pending login of token, or nil when it is
// malformed, unknown, expired, or made under credentials that changed.
func (s *Store) GetPendingLogin(ctx context.Context, token string) (*PendingLogin, error) {
	if !ValidToken(token) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, s.q.getPending, string(HashToken(token)))
	if err != nil {
		return nil, fmt.Errorf("reading a pending login: %w", err)
	}
	type row struct {
		User
		Remember bool `db:"remember"`
		Failures int  `db:"failures"`
	}
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[row])
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading a pending login: %w", err)
	}
	return &PendingLogin{User: r.User, Remember: r.Remember, Failures: r.Failures}, nil
}

// FailPendingLogin counts a wrong code against the pending login of token
// and ends it at the limit-th.
func (s *Store) FailPendingLogin(ctx context.Context, token string, limit int) error {
	if !ValidToken(token) {
		return nil
	}
	if _, err := s.pool.Exec(ctx, s.q.failPending, string(HashToken(token)), limit); err != nil {
		return fmt.Errorf("counting a wrong code: %w", err)
	}
	return nil
}

// DeletePendingLogin ends the pending login of token; ending one that does
// not exist is not an error.
func (s *Store) DeletePendingLogin(ctx context.Context, token string) error {
	if !ValidToken(token) {
		return nil
	}
	if _, err := s.pool.Exec(ctx, s.q.deletePending, string(HashToken(token))); err != nil {
		return fmt.Errorf("deleting a pending login: %w", err)
	}
	return nil
}

// CleanupPendingLogins deletes expired pending logins, in batches, and
// returns how many it removed.
func (s *Store) CleanupPendingLogins(ctx context.Context) (int64, error) {
	return s.deleteInBatches(ctx, s.q.cleanupPending, "deleting expired pending logins")
}
