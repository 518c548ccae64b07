package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// ResetPassword uses a password reset link: in one transaction it takes
// the link's token, sets newPassword, raises the user's credential version
// (so every session of theirs ends, on every server, through the same
// notifications a password change sends) and deletes their other reset
// links. Second factors are left as they are: a reset proves the mailbox,
// not the authenticator. It returns the user as they are afterwards, ready
// to start a session under the new credentials.
//
// An unknown or used token is ErrTokenNotFound; an expired one, or one
// issued before a password change, ErrTokenExpired; a password that cannot
// be set an *InputError, and the link still works.
func (s *Store) ResetPassword(ctx context.Context, token, newPassword string) (*User, error) {
	if err := ValidatePassword(newPassword); err != nil {
		return nil, err
	}
	// A look first, so a guessed token costs a query, not a password hash.
	link, err := s.PeekAccountToken(ctx, PurposeReset, token)
	if err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(ctx, newPassword)
	if err != nil {
		return nil, fmt.Errorf("resetting a password: %w", err)
	}
	var user *User
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The user's row lock first: a password change racing the reset
		// then either ends the link before it is taken or waits for it.
		if err := tx.QueryRow(ctx, s.q.lockUserVersion, string(link.UserID)).Scan(new(int64)); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrTokenNotFound
			}
			return err
		}
		taken, err := s.takeAccountToken(ctx, tx, PurposeReset, token)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.setPassword, string(taken.UserID), hash); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.deleteUserSessions, string(taken.UserID)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.deleteAccountTokens, string(taken.UserID), string(PurposeReset)); err != nil {
			return err
		}
		user, err = collectUser(tx.Query(ctx, s.q.getUserByID, string(taken.UserID)))
		return err
	})
	if errors.Is(err, ErrTokenNotFound) || errors.Is(err, ErrTokenExpired) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("resetting a password: %w", err)
	}
	return user, nil
}
