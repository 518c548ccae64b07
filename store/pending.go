package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PendingLoginLifetime is how long a login that passed the password waits
// for its second factor.
const PendingLoginLifetime = 5 * time.Minute

// Errors of finishing a pending login, told apart with errors.Is.
var (
	// ErrNoPendingLogin means the pending login is gone: expired, ended by
	// a credential change, or finished by another request.
	ErrNoPendingLogin = errors.New("no such pending login, or it expired or was finished")
	// ErrFactorRefused means the second factor was wrong or used already.
	ErrFactorRefused = errors.New("the second factor is wrong or was used")
)

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
	return s.CreatePendingLoginAfter(ctx, user, MethodPassword, remember)
}

// CreatePendingLoginAfter is CreatePendingLogin for a sign-in whose first
// step was first, MethodPassword or MethodProvider (user as read when the
// provider's sign-in was checked), so that the session it becomes names
// it (MethodProviderTOTP, not MethodPasswordTOTP).
func (s *Store) CreatePendingLoginAfter(ctx context.Context, user User, first string, remember bool) (string, error) {
	if first != MethodPassword && first != MethodProvider {
		return "", fmt.Errorf("a pending login follows a password or a provider, not %q", first)
	}
	if !validUUID(string(user.ID)) {
		return "", ErrUserNotFound
	}
	token := newToken()
	tag, err := s.pool.Exec(ctx, s.q.createPending, string(HashToken(token)), string(user.ID), remember,
		user.CredentialVersion, PendingLoginLifetime.Seconds(), first)
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

// SecondStep is the factor that finishes a pending login.
type SecondStep struct {
	// Factor is FactorTOTP, FactorRecoveryCode or FactorPasskey. A passkey
	// was verified, and its ceremony used up, before: nothing more of it
	// is used here.
	Factor string
	// TOTPStep is the time step of a code that matched the user's secret.
	TOTPStep int64
	// RecoveryCodeHash is the hash of the recovery code sent.
	RecoveryCodeHash []byte
}

// FinishPendingLogin ends the pending login of token with its second factor
// and starts the session p describes, all in one transaction whose first
// statement takes the pending row: of requests racing to finish one
// pending login, exactly one starts a session, and the others use up no
// factor (a recovery code, a TOTP step), as each waits on the first's lock
// and then finds no row. It returns ErrNoPendingLogin when the pending
// login is gone, ErrFactorRefused when the factor is wrong or used (the
// pending login is then kept, to count the failure), and CreateSession's
// errors. The session's method is the step's after the pending login's
// first (SecondStep.MethodAfter), whatever p.Method says.
func (s *Store) FinishPendingLogin(ctx context.Context, token string, step SecondStep, p SessionParams) (string, *Session, error) {
	if !ValidToken(token) {
		return "", nil, ErrNoPendingLogin
	}
	if step.Method() == "" {
		return "", nil, fmt.Errorf("unknown second factor %q", step.Factor)
	}
	var sess *Session
	var sessionToken string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var first string
		err := tx.QueryRow(ctx, s.q.finishPending, string(HashToken(token)), string(p.User.ID)).Scan(&first)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNoPendingLogin
		}
		if err != nil {
			return err
		}
		p.Method = step.MethodAfter(first)
		var args []any
		if sessionToken, args, err = newSessionArgs(p); err != nil {
			return err
		}
		if used, err := s.useSecondStep(ctx, tx, p.User.ID, step); err != nil || !used {
			return cmp.Or(err, ErrFactorRefused)
		}
		if sess, err = collectSession(tx.Query(ctx, s.q.createSession, args...)); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				// The pending row counted a moment ago, so the user exists.
				return ErrCredentialsChanged
			}
			return err
		}
		if p.MaxPerUser > 0 {
			_, err = tx.Exec(ctx, s.q.trimSessions, string(p.User.ID), p.MaxPerUser)
		}
		return err
	})
	switch {
	case errors.Is(err, ErrNoPendingLogin), errors.Is(err, ErrFactorRefused):
		return "", nil, err
	case err != nil:
		return "", nil, fmt.Errorf("finishing a pending login: %w", err)
	}
	return sessionToken, sess, nil
}

// useSecondStep uses up step's factor in tx and reports whether it could:
// false for a recovery code unknown or used, or a TOTP step not later than
// the last one accepted.
func (s *Store) useSecondStep(ctx context.Context, tx pgx.Tx, userID UserID, step SecondStep) (bool, error) {
	var tag pgconn.CommandTag
	var err error
	switch step.Factor {
	case FactorPasskey:
		return true, nil
	case FactorTOTP:
		tag, err = tx.Exec(ctx, s.q.acceptTOTPStep, string(userID), step.TOTPStep)
	case FactorRecoveryCode:
		tag, err = tx.Exec(ctx, s.q.useRecoveryCode, string(userID), step.RecoveryCodeHash)
	default:
		return false, fmt.Errorf("unknown second factor %q", step.Factor)
	}
	return tag.RowsAffected() == 1, err
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
