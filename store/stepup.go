package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// How a session was signed in: sessions.auth_method, which a CHECK holds
// to these. A path that needs a second factor asks for one of the last
// three; a password session can step up to one (StepUpSession) and keeps
// its token.
const (
	MethodPassword             = "password"
	MethodPasswordTOTP         = "password+totp"
	MethodPasswordRecoveryCode = "password+recovery_code"
	// MethodPasskey is a sign-in with a passkey and user verification,
	// with or without the password before it: a passkey is both factors
	// at once, so the password step adds nothing to it.
	MethodPasskey = "passkey"
)

// ErrSessionNotFound means there is no live session of the user by that
// id: it ended, expired, or belongs to another user or to credentials that
// changed since.
var ErrSessionNotFound = errors.New("no such live session")

// Method is the session method the step leaves a session with.
func (step SecondStep) Method() string {
	switch step.Factor {
	case FactorTOTP:
		return MethodPasswordTOTP
	case FactorRecoveryCode:
		return MethodPasswordRecoveryCode
	case FactorPasskey:
		return MethodPasskey
	}
	return ""
}

// StepUpSession uses up step's factor for the live session id of userID
// and records the method it makes, in one transaction whose first
// statement takes the session's row: the factor is used as at sign-in (a
// TOTP step not later than the last one accepted is refused, a recovery
// code works once; a passkey was verified before, and nothing more of it
// is used here), and the trigger announces the session's new method to
// every server. The token stays the same. It returns the method;
// ErrSessionNotFound when the session is not the user's live one, and
// ErrFactorRefused when the factor is wrong or used, with nothing changed.
func (s *Store) StepUpSession(ctx context.Context, id SessionID, userID UserID, step SecondStep) (string, error) {
	method := step.Method()
	if method == "" {
		return "", fmt.Errorf("unknown second factor %q", step.Factor)
	}
	if !validUUID(string(userID)) || len(id) != 64 {
		return "", ErrSessionNotFound
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, s.q.stepUpSession, string(id), string(userID), method)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrSessionNotFound
		}
		if used, err := s.useSecondStep(ctx, tx, userID, step); err != nil || !used {
			return cmp.Or(err, ErrFactorRefused)
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrSessionNotFound), errors.Is(err, ErrFactorRefused):
		return "", err
	case err != nil:
		return "", fmt.Errorf("stepping up a session: %w", err)
	}
	return method, nil
}

func stepUpQueries(r *strings.Replacer, q *queries) {
	// stepUpSession sets the method of a live session of the user; it
	// locks the row, so two step-ups of one session take turns.
	q.stepUpSession = r.Replace(`UPDATE {sessions} s SET auth_method = $3
		FROM {users} u WHERE s.id = $1 AND s.user_id = $2 AND u.id = s.user_id AND {live}`)
}
