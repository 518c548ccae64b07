package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Account tokens are the secrets of the links mailed to a user: a password
// reset, an address to verify. The database holds only their SHA-256, as it
// does for sessions; each is used once, and a newer link of a purpose ends
// the older.

// AccountTokenPurpose is what a link is for.
type AccountTokenPurpose string

// The purposes of links.
const (
	PurposeReset       AccountTokenPurpose = "reset"
	PurposeVerifyEmail AccountTokenPurpose = "verify_email"
)

func (p AccountTokenPurpose) valid() bool { return p == PurposeReset || p == PurposeVerifyEmail }

// A link unknown, used, replaced by a newer one, or not one of this site's
// at all is ErrTokenNotFound, as an API token's unknown handle is.
//
// ErrTokenExpired means the link is known but no longer works: its time is
// up, the user's password changed since it was sent, or (a reset link) the
// address it was sent to is no longer the user's.
var ErrTokenExpired = errors.New("the link expired")

// AccountToken is a link as the database holds it.
type AccountToken struct {
	Purpose AccountTokenPurpose `db:"purpose"`
	UserID  UserID              `db:"user_id"`
	// Email is the address the link was sent to.
	Email string `db:"email"`
	// CredentialVersion is the user's at issue; the link works only while
	// it is still the user's.
	CredentialVersion int64     `db:"credential_version"`
	CreatedAt         time.Time `db:"created_at"`
	ExpiresAt         time.Time `db:"expires_at"`
}

// accountTokenRow is a token as read, with whether it stopped counting.
type accountTokenRow struct {
	AccountToken
	Stale bool `db:"stale"`
}

// NewAccountToken issues a link's token of purpose for the user, sent to
// email, valid for ttl, and returns it: the caller mails it and keeps no
// copy. The user's older links of the purpose end. An id no user has is
// ErrUserNotFound; a bad address an *InputError.
func (s *Store) NewAccountToken(ctx context.Context, purpose AccountTokenPurpose, userID UserID, email string,
	ttl time.Duration) (string, error) {
	if !purpose.valid() {
		return "", fmt.Errorf("no such link purpose %q", purpose)
	}
	if ttl <= 0 {
		return "", errors.New("a link needs a lifetime")
	}
	email, err := PrepareEmail(email)
	if err != nil {
		return "", err
	}
	if email == "" {
		return "", &InputError{"a link needs an address to go to"}
	}
	if !validUUID(string(userID)) {
		return "", ErrUserNotFound
	}
	token := newToken()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The user's row lock makes two links issued at once take turns, so
		// the second's DELETE sees the first's row and one link is left.
		var version int64
		if err := tx.QueryRow(ctx, s.q.lockUserVersion, string(userID)).Scan(&version); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrUserNotFound
			}
			return err
		}
		if _, err := tx.Exec(ctx, s.q.deleteAccountTokens, string(userID), string(purpose)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, s.q.createAccountToken, string(HashToken(token)), string(purpose), string(userID),
			email, version, ttl.Seconds())
		return err
	})
	if errors.Is(err, ErrUserNotFound) {
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("issuing a link: %w", err)
	}
	return token, nil
}

// PeekAccountToken reads the link of token without using it, for the page
// that asks to confirm; it is ErrTokenNotFound or ErrTokenExpired as
// takeAccountToken would be. A token of the wrong shape is ErrTokenNotFound
// without a query.
func (s *Store) PeekAccountToken(ctx context.Context, purpose AccountTokenPurpose, token string) (*AccountToken, error) {
	if !ValidToken(token) || !purpose.valid() {
		return nil, ErrTokenNotFound
	}
	return readAccountToken(s.pool.Query(ctx, s.q.peekAccountToken, string(HashToken(token)), string(purpose)))
}

// takeAccountToken uses the link of token in tx: it deletes the row and
// returns it, so of two uses racing one gets it and the other
// ErrTokenNotFound. An expired link is ErrTokenExpired; the caller's
// rollback keeps its row for the cleanup job.
func (s *Store) takeAccountToken(ctx context.Context, tx pgx.Tx, purpose AccountTokenPurpose, token string) (*AccountToken, error) {
	if !ValidToken(token) || !purpose.valid() {
		return nil, ErrTokenNotFound
	}
	return readAccountToken(tx.Query(ctx, s.q.takeAccountToken, string(HashToken(token)), string(purpose)))
}

func readAccountToken(rows pgx.Rows, err error) (*AccountToken, error) {
	if err != nil {
		return nil, fmt.Errorf("reading a link: %w", err)
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[accountTokenRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrTokenNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading a link: %w", err)
	}
	if row.Stale {
		return nil, ErrTokenExpired
	}
	return &row.AccountToken, nil
}

// LinkLimit is at most Max links of a purpose per user within Window.
type LinkLimit struct {
	Max    int
	Window time.Duration
}

// ReserveAccountLink counts a link of purpose about to be sent to the user
// against limits: below every one it records the link and returns 0;
// otherwise it records nothing and returns how long until the limit
// reached lets one more through. The count survives the links themselves,
// which a use or a newer link deletes. An id no user has is ErrUserNotFound.
func (s *Store) ReserveAccountLink(ctx context.Context, purpose AccountTokenPurpose, userID UserID,
	limits ...LinkLimit) (time.Duration, error) {
	if !purpose.valid() {
		return 0, fmt.Errorf("no such link purpose %q", purpose)
	}
	if !validUUID(string(userID)) {
		return 0, ErrUserNotFound
	}
	var wait time.Duration
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The user's row lock makes reservations of one user take turns, so
		// each counts the ones before it.
		if err := tx.QueryRow(ctx, s.q.lockUserVersion, string(userID)).Scan(new(int64)); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrUserNotFound
			}
			return err
		}
		var longest time.Duration
		for _, l := range limits {
			longest = max(longest, l.Window)
			var n int
			var retry float64
			if err := tx.QueryRow(ctx, s.q.countLinksSent, string(userID), string(purpose), l.Window.Seconds()).
				Scan(&n, &retry); err != nil {
				return err
			}
			if l.Max > 0 && n >= l.Max {
				wait = max(wait, time.Duration(retry*float64(time.Second)), time.Second)
			}
		}
		if wait > 0 {
			return nil
		}
		_, err := tx.Exec(ctx, s.q.recordLinkSent, string(userID), string(purpose), max(longest, time.Minute).Seconds())
		return err
	})
	if errors.Is(err, ErrUserNotFound) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("counting links sent: %w", err)
	}
	return wait, nil
}

// CleanupAccountTokens deletes expired links and the counts of sent ones
// that no longer count, in batches, and returns how many links it removed.
func (s *Store) CleanupAccountTokens(ctx context.Context) (int64, error) {
	n, err := s.deleteInBatches(ctx, s.q.cleanupAccountTokens, "deleting expired links")
	if err != nil {
		return n, err
	}
	_, err = s.deleteInBatches(ctx, s.q.cleanupLinksSent, "deleting counts of links sent")
	return n, err
}

func accountTokenQueries(r *strings.Replacer, q *queries) {
	q.lockUserVersion = r.Replace(`SELECT credential_version FROM {users} WHERE id = $1 FOR NO KEY UPDATE`)
	q.deleteAccountTokens = r.Replace(`DELETE FROM {account_tokens} WHERE user_id = $1 AND purpose = $2`)
	q.createAccountToken = r.Replace(`INSERT INTO {account_tokens} (id, purpose, user_id, email, credential_version, expires_at)
		VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))`)
	// A link stops counting when its time is up, when the user's password
	// changed since it was sent, and, for a reset, when the address it went
	// to is no longer the user's: a reset must reach the owner of the
	// account's address as it is now.
	const stale = `(t.expires_at <= now() OR t.credential_version <> u.credential_version
		OR (t.purpose = 'reset' AND t.email IS DISTINCT FROM u.email)) AS stale`
	const columns = `t.purpose, t.user_id::text AS user_id, t.email, t.credential_version, t.created_at, t.expires_at, `
	q.peekAccountToken = r.Replace(`SELECT ` + columns + stale + `
		FROM {account_tokens} t JOIN {users} u ON u.id = t.user_id WHERE t.id = $1 AND t.purpose = $2`)
	q.takeAccountToken = r.Replace(`DELETE FROM {account_tokens} t USING {users} u
		WHERE t.id = $1 AND t.purpose = $2 AND u.id = t.user_id
		RETURNING ` + columns + stale)
	q.countLinksSent = r.Replace(`SELECT count(*)::integer,
			coalesce(extract(epoch FROM min(sent_at) + make_interval(secs => $3) - now()), 0)::float8
		FROM {account_links_sent} WHERE user_id = $1 AND purpose = $2 AND sent_at > now() - make_interval(secs => $3)`)
	q.recordLinkSent = r.Replace(`INSERT INTO {account_links_sent} (user_id, purpose, expires_at)
		VALUES ($1, $2, now() + make_interval(secs => $3))`)
	q.cleanupAccountTokens = r.Replace(`DELETE FROM {account_tokens} WHERE id IN (
		SELECT id FROM {account_tokens} WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)`)
	q.cleanupLinksSent = r.Replace(`DELETE FROM {account_links_sent} WHERE id IN (
		SELECT id FROM {account_links_sent} WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)`)
}
