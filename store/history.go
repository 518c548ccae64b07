package store

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
)

// DefaultHistoryRetention is how long sign-in attempts are kept unless
// Options.HistoryRetention says otherwise.
const DefaultHistoryRetention = 90 * 24 * time.Hour

// NoHistory, as Options.HistoryRetention, keeps no sign-in history: nothing
// is recorded, and the cleanup deletes what was recorded before.
const NoHistory time.Duration = -1

// How a sign-in attempt ended, as the history records it.
const (
	SignInSuccess   = "success"
	SignInFailure   = "failure"   // a wrong password, or credentials that changed during the login
	SignInThrottled = "throttled" // refused past the failed-login limits, the password unchecked
	// SignInSecondFactorRequired is a right password for an account that
	// also needs its second factor: no session yet.
	SignInSecondFactorRequired = "second_factor_required"
)

// The factors a step of a sign-in checks, as the history records them.
const (
	FactorPassword     = "password"
	FactorTOTP         = "totp"
	FactorRecoveryCode = "recovery_code"
	FactorPasskey      = "passkey"
	// FactorAPIToken is the use of an expired API token by a script.
	FactorAPIToken = "api_token"
	// FactorProvider is a sign-in with an identity provider.
	FactorProvider = "provider"
)

// SignInAttempt is one attempt to sign in, to record.
type SignInAttempt struct {
	// User is the account signed in to, when known (after a success). Else
	// Username names the account as a login looks it up, and an attempt
	// naming no account is not recorded: the name itself is never stored.
	User     UserID
	Username string
	IP       string
	// UserAgent is kept up to MaxUserAgentLength bytes.
	UserAgent string
	Outcome   string // SignInSuccess, SignInFailure, SignInThrottled or SignInSecondFactorRequired
	// Factor is what the attempt checked (FactorPassword, …); empty when it
	// failed before checking any.
	Factor string
}

// SignIn is one entry of a user's sign-in history.
type SignIn struct {
	At        time.Time `db:"attempted_at"`
	IP        string    `db:"ip"`
	UserAgent string    `db:"user_agent"`
	Outcome   string    `db:"outcome"`
	Factor    string    `db:"factor"` // empty when none was checked
}

// RecordSignIn adds an attempt to its account's sign-in history, in one
// INSERT that finds the account as VerifyPassword does. An attempt naming
// no account, or a name that could never be one, records nothing and is
// not an error; nor is an account deleted meanwhile.
func (s *Store) RecordSignIn(ctx context.Context, a SignInAttempt) error {
	if s.history == NoHistory {
		return nil
	}
	ip, agent := trimUTF8(a.IP, 64), trimUTF8(a.UserAgent, MaxUserAgentLength)
	var factor *string
	if a.Factor != "" {
		factor = &a.Factor
	}
	var err error
	switch {
	case a.User != "":
		if !validUUID(string(a.User)) {
			return nil
		}
		_, err = s.pool.Exec(ctx, s.q.signInByID, string(a.User), ip, agent, a.Outcome, factor)
	case utf8.ValidString(a.Username) && len(a.Username) <= 4*MaxUsernameLength:
		_, err = s.pool.Exec(ctx, s.q.signInByName, lookupKey(a.Username), a.Username, ip, agent, a.Outcome, factor)
	}
	if err != nil && pgErrorCode(err) != pgerrcode.ForeignKeyViolation {
		return fmt.Errorf("recording a sign-in attempt: %w", err)
	}
	return nil
}

// SignInHistory returns a user's latest limit sign-in attempts, newest
// first; an unknown user has none.
func (s *Store) SignInHistory(ctx context.Context, userID UserID, limit int) ([]SignIn, error) {
	if !validUUID(string(userID)) || limit <= 0 {
		return nil, nil
	}
	return queryAll[SignIn](ctx, s, "reading sign-in history", s.q.signInHistory, string(userID), limit)
}

// TrimSignInHistory deletes the sign-in attempts older than the retention,
// every one with NoHistory, in batches, and returns how many it removed.
func (s *Store) TrimSignInHistory(ctx context.Context) (int64, error) {
	return s.deleteInBatches(ctx, s.q.trimSignInHistory, "trimming sign-in history", max(s.history, 0).Seconds())
}
