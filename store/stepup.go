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
// to these. A path that needs a second factor asks for one of those
// MethodHasSecondFactor accepts; a password or provider session can step
// up to one (StepUpSession) and keeps its token.
const (
	MethodPassword             = "password"
	MethodPasswordTOTP         = "password+totp"
	MethodPasswordRecoveryCode = "password+recovery_code"
	// MethodPasskey is a sign-in with a passkey and user verification,
	// with or without the password before it: a passkey is both factors
	// at once, so the password step adds nothing to it.
	MethodPasskey = "passkey"
	// MethodProvider is a sign-in with an identity provider that showed
	// no second factor this site trusts.
	MethodProvider = "provider"
	// MethodProviderMFA is a sign-in with an identity provider whose amr
	// or acr claims showed a second factor, trusted by trust_provider_mfa.
	MethodProviderMFA = "provider+mfa"
	// MethodProviderTOTP and MethodProviderRecoveryCode are a provider's
	// sign-in followed by this site's own second step.
	MethodProviderTOTP         = "provider+totp"
	MethodProviderRecoveryCode = "provider+recovery_code"
)

// MethodHasSecondFactor reports whether a session signed in by method
// passed more than one factor, for the paths and rules that ask for a
// second: every method but a password or a provider alone, and any name
// it does not know.
func MethodHasSecondFactor(method string) bool {
	switch method {
	case MethodPasswordTOTP, MethodPasswordRecoveryCode, MethodPasskey,
		MethodProviderMFA, MethodProviderTOTP, MethodProviderRecoveryCode:
		return true
	}
	return false
}

// ErrSessionNotFound means there is no live session of the user by that
// id: it ended, expired, or belongs to another user or to credentials that
// changed since.
var ErrSessionNotFound = errors.New("no such live session")

// Method is the session method the step leaves a password's sign-in with.
func (step SecondStep) Method() string { return step.MethodAfter(MethodPassword) }

// MethodAfter is the session method the step leaves a sign-in whose first
// step was first with: a provider's sign-in, or a session stepped up from
// one, stays a provider's, a password's a password's.
func (step SecondStep) MethodAfter(first string) string {
	provider := strings.HasPrefix(first, MethodProvider)
	switch {
	case step.Factor == FactorTOTP && provider:
		return MethodProviderTOTP
	case step.Factor == FactorTOTP:
		return MethodPasswordTOTP
	case step.Factor == FactorRecoveryCode && provider:
		return MethodProviderRecoveryCode
	case step.Factor == FactorRecoveryCode:
		return MethodPasswordRecoveryCode
	case step.Factor == FactorPasskey:
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
// every server. The token stays the same. It returns the method, a
// provider's (MethodProviderTOTP…) for a session a provider signed in;
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
		err := tx.QueryRow(ctx, s.q.stepUpSession, string(id), string(userID), method,
			step.MethodAfter(MethodProvider)).Scan(&method)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrSessionNotFound
		}
		if err != nil {
			return err
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
	// stepUpSession sets the method of a live session of the user, $4 for
	// a session a provider signed in and $3 for the others; it locks the
	// row, so two step-ups of one session take turns.
	q.stepUpSession = r.Replace(`UPDATE {sessions} s
		SET auth_method = CASE WHEN s.auth_method LIKE 'provider%' THEN $4 ELSE $3 END
		FROM {users} u WHERE s.id = $1 AND s.user_id = $2 AND u.id = s.user_id AND {live}
		RETURNING s.auth_method`)
}
