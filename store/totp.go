package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// A second factor: a TOTP authenticator and its recovery codes. The store
// keeps the TOTP secret as the bytes it is given (the caller encrypts it)
// and recovery codes as hashes; it knows nothing of codes or clocks.

// Errors of the second factor.
var (
	// ErrNoTOTP means the user has no authenticator to confirm or use.
	ErrNoTOTP = errors.New("no authenticator is set up")
	// ErrTOTPEnabled means the user's authenticator is already confirmed:
	// it must be turned off before another is set up.
	ErrTOTPEnabled = errors.New("an authenticator is already on")
)

// TOTP is a user's authenticator as stored.
type TOTP struct {
	// Secret is the secret as the caller stored it: encrypted.
	Secret    []byte `db:"secret"`
	Confirmed bool   `db:"confirmed"`
}

// hasSecondFactor is an SQL condition on a user u: true when they have a
// confirmed second factor. Every check of "has a second factor" (sessions,
// logins, the policy) goes through it, so a new kind of factor is added
// here once.
func hasSecondFactor(schema string) string {
	return strings.NewReplacer("{totp}", pgx.Identifier{schema, "totp_secrets"}.Sanitize(),
		"{passkeys}", pgx.Identifier{schema, "passkeys"}.Sanitize()).Replace(
		`(EXISTS (SELECT 1 FROM {totp} t WHERE t.user_id = u.id AND t.confirmed) OR
			EXISTS (SELECT 1 FROM {passkeys} p WHERE p.user_id = u.id))`)
}

func secondFactorQueries(r *strings.Replacer, q *queries) {
	// setTOTPSecret replaces an unconfirmed secret, never a confirmed one.
	q.setTOTPSecret = r.Replace(`INSERT INTO {totp} (user_id, secret) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = now()
		WHERE NOT {totp}.confirmed`)
	q.getTOTP = r.Replace(`SELECT secret, confirmed FROM {totp} WHERE user_id = $1`)
	q.confirmTOTP = r.Replace(`UPDATE {totp} SET confirmed = true, confirmed_at = now(), last_step = $2
		WHERE user_id = $1 AND NOT confirmed`)
	// acceptTOTPStep moves the last accepted step forward, or does nothing
	// for a step already used: two requests with one code cannot both pass.
	q.acceptTOTPStep = r.Replace(`UPDATE {totp} SET last_step = $2
		WHERE user_id = $1 AND confirmed AND (last_step IS NULL OR last_step < $2)`)
	q.deleteTOTP = r.Replace(`DELETE FROM {totp} WHERE user_id = $1`)
	q.deleteRecoveryCodes = r.Replace(`DELETE FROM {recovery_codes} WHERE user_id = $1`)
	q.addRecoveryCode = r.Replace(`INSERT INTO {recovery_codes} (user_id, code_hash) VALUES ($1, $2)`)
	q.useRecoveryCode = r.Replace(`UPDATE {recovery_codes} SET used_at = now()
		WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL`)
	// bumpCredentials moves the user to new credentials, as a password
	// change does: sessions and pending logins made under the old ones stop
	// counting, and the NOTIFY trigger on users clears every server's memory.
	q.bumpCredentials = r.Replace(`UPDATE {users} SET updated_at = now(), credential_version = credential_version + 1
		WHERE id = $1 RETURNING credential_version`)
	q.deletePendingOfUser = r.Replace(`DELETE FROM {pending} WHERE user_id = $1`)
	q.deletePasskeysOfUser = r.Replace(`DELETE FROM {passkeys} WHERE user_id = $1`)
	q.userFactors = r.Replace(`SELECT
		EXISTS (SELECT 1 FROM {totp} WHERE user_id = $1 AND confirmed),
		(SELECT count(*) FROM {recovery_codes} WHERE user_id = $1 AND used_at IS NULL),
		(SELECT count(*) FROM {passkeys} WHERE user_id = $1)`)
	q.createPending = r.Replace(`INSERT INTO {pending} (id, user_id, credential_version, remember, expires_at, first_method)
		SELECT $1, u.id, u.credential_version, $3, now() + make_interval(secs => $5), $6
		FROM {users} u WHERE u.id = $2 AND u.credential_version = $4`)
	q.getPending = r.Replace(`SELECT {user_columns_u}, p.remember, p.failures
		FROM {pending} p JOIN {users} u ON u.id = p.user_id
		WHERE p.id = $1 AND p.expires_at > now() AND p.credential_version = u.credential_version`)
	// failPending counts a wrong code and, at the limit ($2), ends the
	// pending login by expiring it, in one statement.
	q.failPending = r.Replace(`UPDATE {pending} SET failures = failures + 1,
		expires_at = CASE WHEN failures + 1 >= $2 THEN now() ELSE expires_at END WHERE id = $1`)
	q.deletePending = r.Replace(`DELETE FROM {pending} WHERE id = $1`)
	// finishPending takes the pending login that a second factor finishes,
	// while it still counts; of logins racing to finish it, the first
	// takes the row and the others, waiting on its lock, find none. It
	// returns the sign-in's first method.
	q.finishPending = r.Replace(`DELETE FROM {pending} p USING {users} u
		WHERE p.id = $1 AND p.user_id = $2 AND u.id = p.user_id AND p.expires_at > now()
			AND p.credential_version = u.credential_version
		RETURNING p.first_method`)
	q.cleanupPending = r.Replace(`DELETE FROM {pending} WHERE id IN (
		SELECT id FROM {pending} WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)`)
}

// SetTOTPSecret stores a new, unconfirmed authenticator secret for a user,
// replacing an unconfirmed one; ErrTOTPEnabled when one is confirmed.
func (s *Store) SetTOTPSecret(ctx context.Context, userID UserID, secret []byte) error {
	if !validUUID(string(userID)) {
		return ErrUserNotFound
	}
	tag, err := s.pool.Exec(ctx, s.q.setTOTPSecret, string(userID), secret)
	if pgErrorCode(err) == pgerrcode.ForeignKeyViolation {
		return ErrUserNotFound
	}
	if err != nil {
		return fmt.Errorf("storing authenticator secret: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrTOTPEnabled
	}
	return nil
}

// GetTOTP returns a user's authenticator; ErrNoTOTP when they have none.
func (s *Store) GetTOTP(ctx context.Context, userID UserID) (*TOTP, error) {
	if !validUUID(string(userID)) {
		return nil, ErrNoTOTP
	}
	rows, err := s.pool.Query(ctx, s.q.getTOTP, string(userID))
	if err != nil {
		return nil, fmt.Errorf("reading authenticator: %w", err)
	}
	t, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[TOTP])
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoTOTP
	}
	if err != nil {
		return nil, fmt.Errorf("reading authenticator: %w", err)
	}
	return &t, nil
}

// ConfirmTOTP turns a user's unconfirmed authenticator on, with step as the
// last code used and codeHashes as their recovery codes (replacing any).
// Like a password change, it moves the user to new credentials and ends
// their other sessions, every one but keepToken's (which may be empty), and
// returns how many it ended. ErrNoTOTP when there is no unconfirmed one.
func (s *Store) ConfirmTOTP(ctx context.Context, userID UserID, step int64, codeHashes [][]byte, keepToken string) (int64, error) {
	if !validUUID(string(userID)) {
		return 0, ErrNoTOTP
	}
	return s.changeFactors(ctx, userID, keepToken, "turning the authenticator on", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, s.q.confirmTOTP, string(userID), step)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNoTOTP
		}
		if _, err := tx.Exec(ctx, s.q.deleteRecoveryCodes, string(userID)); err != nil {
			return err
		}
		for _, h := range codeHashes {
			if _, err := tx.Exec(ctx, s.q.addRecoveryCode, string(userID), h); err != nil {
				return err
			}
		}
		return nil
	})
}

// DisableTOTP turns a user's authenticator off and deletes their recovery
// codes and pending logins; like ConfirmTOTP it ends their sessions but
// keepToken's and returns how many. ErrNoTOTP when there was none.
func (s *Store) DisableTOTP(ctx context.Context, userID UserID, keepToken string) (int64, error) {
	return s.removeSecondFactors(ctx, userID, keepToken, true)
}

// ResetSecondFactors removes every second factor of a user (their
// authenticator, recovery codes and passkeys) and their pending logins, and
// ends all their sessions, for an operator helping someone who lost their device.
// It returns how many sessions it ended; ErrUserNotFound for an unknown id.
func (s *Store) ResetSecondFactors(ctx context.Context, userID UserID) (int64, error) {
	return s.removeSecondFactors(ctx, userID, "", false)
}

func (s *Store) removeSecondFactors(ctx context.Context, userID UserID, keepToken string, mustHaveTOTP bool) (int64, error) {
	return s.changeFactors(ctx, userID, keepToken, "removing second factors", func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, s.q.deleteTOTP, string(userID))
		if err != nil {
			return err
		}
		if mustHaveTOTP && tag.RowsAffected() == 0 {
			return ErrNoTOTP
		}
		removals := []string{s.q.deleteRecoveryCodes, s.q.deletePendingOfUser}
		if !mustHaveTOTP {
			// A reset removes every factor: the passkeys too.
			removals = append(removals, s.q.deletePasskeysOfUser)
		}
		for _, q := range removals {
			if _, err := tx.Exec(ctx, q, string(userID)); err != nil {
				return err
			}
		}
		return nil
	})
}

// changeFactors makes a change to the user's factors in one transaction
// with the move to new credentials (see newCredentials), so no sign-in
// checked against the old factors can start a session after it. It returns
// how many sessions ended; ErrNoTOTP and ErrUserNotFound pass through, and
// other errors are wrapped with what.
func (s *Store) changeFactors(ctx context.Context, userID UserID, keepToken, what string, change func(pgx.Tx) error) (int64, error) {
	if !validUUID(string(userID)) {
		return 0, ErrUserNotFound
	}
	var ended int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := change(tx); err != nil {
			return err
		}
		var err error
		ended, err = s.newCredentials(ctx, tx, userID, keepToken)
		return err
	})
	if errors.Is(err, ErrNoTOTP) || errors.Is(err, ErrUserNotFound) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return ended, nil
}

// Factors are the second factors a user has.
type Factors struct {
	TOTP          bool // a confirmed authenticator
	RecoveryCodes int  // unused recovery codes
	Passkeys      int
}

// Any reports whether the user has a second factor, so that a password
// alone does not sign them in; it agrees with the sessions' second_factor
// column (hasSecondFactor). Recovery codes exist only beside an
// authenticator.
func (f Factors) Any() bool { return f.TOTP || f.Passkeys > 0 }

// Methods names the ways the user can finish a sign-in after the password,
// as the login's answer lists them.
func (f Factors) Methods() []string {
	methods := []string{}
	if f.TOTP {
		methods = append(methods, FactorTOTP)
	}
	if f.RecoveryCodes > 0 {
		methods = append(methods, FactorRecoveryCode)
	}
	if f.Passkeys > 0 {
		methods = append(methods, FactorPasskey)
	}
	return methods
}

// UserFactors returns the second factors the user has.
func (s *Store) UserFactors(ctx context.Context, userID UserID) (Factors, error) {
	var f Factors
	if !validUUID(string(userID)) {
		return f, nil
	}
	if err := s.pool.QueryRow(ctx, s.q.userFactors, string(userID)).Scan(&f.TOTP, &f.RecoveryCodes, &f.Passkeys); err != nil {
		return f, fmt.Errorf("reading second factors: %w", err)
	}
	return f, nil
}

// NewCredentials records that the user's factors changed (a passkey was
// added or removed): it raises their credential version, so logins and
// pending logins in flight cannot start sessions, and ends their sessions
// but keepToken's. It returns how many ended.
func (s *Store) NewCredentials(ctx context.Context, userID UserID, keepToken string) (int64, error) {
	return s.changeFactors(ctx, userID, keepToken, "renewing credentials", func(pgx.Tx) error { return nil })
}

// newCredentials raises the user's credential version, ends their sessions
// but keepToken's, and carries that one over; it returns how many ended.
func (s *Store) newCredentials(ctx context.Context, tx pgx.Tx, userID UserID, keepToken string) (int64, error) {
	var version int64
	if err := tx.QueryRow(ctx, s.q.bumpCredentials, string(userID)).Scan(&version); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, ErrUserNotFound
		}
		return 0, err
	}
	keep := string(HashToken(keepToken))
	tag, err := tx.Exec(ctx, s.q.deleteOtherSessions, string(userID), keep)
	if err != nil {
		return 0, err
	}
	if keepToken != "" {
		_, err = tx.Exec(ctx, s.q.keepSession, string(userID), keep, version)
	}
	return tag.RowsAffected(), err
}

// AcceptTOTPStep records that a code of time step step was used, and
// reports false when that step or a later one was used before: each code
// is accepted once.
func (s *Store) AcceptTOTPStep(ctx context.Context, userID UserID, step int64) (bool, error) {
	if !validUUID(string(userID)) {
		return false, nil
	}
	tag, err := s.pool.Exec(ctx, s.q.acceptTOTPStep, string(userID), step)
	if err != nil {
		return false, fmt.Errorf("accepting an authenticator code: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// UseRecoveryCode marks the unused recovery code with hash codeHash used,
// and reports false when the user has no such unused code.
func (s *Store) UseRecoveryCode(ctx context.Context, userID UserID, codeHash []byte) (bool, error) {
	if !validUUID(string(userID)) {
		return false, nil
	}
	tag, err := s.pool.Exec(ctx, s.q.useRecoveryCode, string(userID), codeHash)
	if err != nil {
		return false, fmt.Errorf("using a recovery code: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}
