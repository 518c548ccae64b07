package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// Passkeys (WebAuthn credentials) and what keeps a WebAuthn ceremony single
// use. The store keeps a passkey's credential record as the JSON the caller
// gives it and knows nothing of WebAuthn itself: it checks names, keeps the
// signature counter moving forward, keeps the key that seals ceremony
// cookies, and lets each ceremony's challenge be finished once.

// Errors of the passkey functions, told apart with errors.Is.
var (
	ErrPasskeyExists    = errors.New("that passkey is already registered")
	ErrNoCeremony       = errors.New("no such passkey ceremony, or it expired or was used")
	ErrPasskeyCounter   = errors.New("the passkey's signature counter did not move forward")
	ErrTooManyPasskeys  = errors.New("too many passkeys")
	errPasskeyNameEmpty = &InputError{"passkey name is empty"}
)

// Limits on passkeys.
const (
	MaxPasskeyNameLength = 64 // characters
	// MaxPasskeysPerUser bounds the rows one account can add; a person has
	// a handful of devices.
	MaxPasskeysPerUser = 50
)

// Passkey is one of a user's passkeys.
type Passkey struct {
	ID     []byte `db:"id"` // the credential id the authenticator chose
	UserID UserID `db:"user_id"`
	Name   string `db:"name"`
	// Credential is the credential record as the WebAuthn library encodes
	// it (JSON); the fields below repeat the parts the store reads.
	Credential     []byte     `db:"credential"`
	PublicKey      []byte     `db:"public_key"`
	SignCount      uint32     `db:"sign_count"`
	AAGUID         []byte     `db:"aaguid"`
	Transports     []string   `db:"transports"`
	BackupEligible bool       `db:"backup_eligible"`
	BackupState    bool       `db:"backup_state"`
	CreatedAt      time.Time  `db:"created_at"`
	LastUsedAt     *time.Time `db:"last_used_at"`
}

// ValidatePasskeyName reports why name cannot name a passkey, or nil.
func ValidatePasskeyName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errPasskeyNameEmpty
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		return &InputError{"passkey name must be one line of text"}
	case utf8.RuneCountInString(name) > MaxPasskeyNameLength:
		return &InputError{fmt.Sprintf("passkey name is longer than %d characters", MaxPasskeyNameLength)}
	}
	return nil
}

const passkeyColumns = `id, user_id::text AS user_id, name, credential, public_key, sign_count, aaguid, transports,
	backup_eligible, backup_state, created_at, last_used_at`

// passkeyQueries fills in the passkey statements of q, with r naming the tables.
func passkeyQueries(r *strings.Replacer, q *queries) {
	// addPasskey inserts only below the per-user limit ($11); the count and
	// the insert race only with the user's own other tabs.
	q.addPasskey = r.Replace(`INSERT INTO {passkeys} (id, user_id, name, credential, public_key, sign_count, aaguid,
			transports, backup_eligible, backup_state)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
		WHERE (SELECT count(*) FROM {passkeys} WHERE user_id = $2) < $11
		RETURNING created_at`)
	q.userPasskeys = r.Replace(`SELECT ` + passkeyColumns + ` FROM {passkeys} WHERE user_id = $1 ORDER BY created_at, id`)
	q.deletePasskey = r.Replace(`DELETE FROM {passkeys} WHERE id = $1 AND user_id = $2`)
	// usePasskey moves the counter forward only: a counter that does not
	// grow, unless it is always 0 (authenticators without one), updates
	// nothing, so two sign-ins racing with one counter value cannot both pass.
	q.usePasskey = r.Replace(`UPDATE {passkeys} SET sign_count = $2, backup_state = $3, last_used_at = now()
		WHERE id = $1 AND (sign_count < $2 OR (sign_count = 0 AND $2 = 0))`)
	q.webauthnHandle = r.Replace(`SELECT webauthn_handle FROM {users} WHERE id = $1`)
	q.userByWebauthnHandle = r.Replace(`SELECT {user_columns} FROM {users} WHERE webauthn_handle = $1`)
	// addCeremonyKey makes the ceremony key once: the first server to
	// start wins, and every later one reads that key.
	q.addCeremonyKey = r.Replace(`INSERT INTO {ceremony_keys} (name, key) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`)
	q.ceremonyKey = r.Replace(`SELECT key FROM {ceremony_keys} WHERE name = $1`)
	// useChallenge records a finished ceremony's challenge; a duplicate
	// inserts nothing, which is how a second finish is told apart.
	q.useChallenge = r.Replace(`INSERT INTO {used_challenges} (challenge_hash, expires_at) VALUES ($1, $2)
		ON CONFLICT (challenge_hash) DO NOTHING`)
	// cleanupChallenges keeps a row an hour past its expiry, a margin for
	// servers whose clocks run behind the database's.
	q.cleanupChallenges = r.Replace(`DELETE FROM {used_challenges} WHERE challenge_hash IN (
		SELECT challenge_hash FROM {used_challenges} WHERE expires_at <= now() - interval '1 hour'
		ORDER BY expires_at LIMIT $1)`)
}

// AddPasskey stores a newly registered passkey of p.UserID and returns it
// with its creation time: ErrPasskeyExists when the credential id is
// registered already, ErrTooManyPasskeys past MaxPasskeysPerUser,
// ErrUserNotFound when the user is gone, or an *InputError for the name.
func (s *Store) AddPasskey(ctx context.Context, p Passkey) (*Passkey, error) {
	if err := ValidatePasskeyName(p.Name); err != nil {
		return nil, err
	}
	if !validUUID(string(p.UserID)) {
		return nil, ErrUserNotFound
	}
	if p.Transports == nil {
		p.Transports = []string{}
	}
	err := s.pool.QueryRow(ctx, s.q.addPasskey, p.ID, string(p.UserID), p.Name, p.Credential, p.PublicKey,
		int64(p.SignCount), p.AAGUID, p.Transports, p.BackupEligible, p.BackupState, MaxPasskeysPerUser).Scan(&p.CreatedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, ErrTooManyPasskeys
	case pgErrorCode(err) == pgerrcode.UniqueViolation:
		return nil, ErrPasskeyExists
	case pgErrorCode(err) == pgerrcode.ForeignKeyViolation:
		return nil, ErrUserNotFound
	case err != nil:
		return nil, fmt.Errorf("adding a passkey: %w", err)
	}
	return &p, nil
}

// UserPasskeys returns a user's passkeys, oldest first.
func (s *Store) UserPasskeys(ctx context.Context, userID UserID) ([]Passkey, error) {
	if !validUUID(string(userID)) {
		return nil, nil
	}
	return queryAll[Passkey](ctx, s, "reading passkeys", s.q.userPasskeys, string(userID))
}

// DeletePasskey removes the passkey id of userID and reports whether there
// was one: another user's passkey is not removed. It refuses with
// ErrLastSignInMethod, removing nothing, the last passkey of a user who
// has no password and no identity, who could not sign in again.
func (s *Store) DeletePasskey(ctx context.Context, userID UserID, id []byte) (bool, error) {
	if !validUUID(string(userID)) || len(id) == 0 {
		return false, nil
	}
	removed, err := s.keepingASignInWay(ctx, userID, func(tx pgx.Tx) (bool, error) {
		tag, err := tx.Exec(ctx, s.q.deletePasskey, id, string(userID))
		return tag.RowsAffected() == 1, err
	})
	switch {
	case errors.Is(err, ErrUserNotFound):
		return false, nil
	case errors.Is(err, ErrLastSignInMethod):
		return false, err
	case err != nil:
		return false, fmt.Errorf("removing a passkey: %w", err)
	}
	return removed, nil
}

// UsePasskey records a sign-in with passkey id whose authenticator reported
// signCount: ErrPasskeyCounter when the counter did not move forward past
// the stored one (a sign of a cloned authenticator, or of a replay racing
// the real sign-in), unless both are 0, as with authenticators that keep no
// counter. It also notes the backup state the authenticator reported.
func (s *Store) UsePasskey(ctx context.Context, id []byte, signCount uint32, backupState bool) error {
	tag, err := s.pool.Exec(ctx, s.q.usePasskey, id, int64(signCount), backupState)
	if err != nil {
		return fmt.Errorf("recording a passkey sign-in: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrPasskeyCounter
	}
	return nil
}

// WebAuthnHandle returns the user's WebAuthn user handle: random bytes an
// authenticator keeps with the user's passkeys and returns at sign-in.
func (s *Store) WebAuthnHandle(ctx context.Context, userID UserID) ([]byte, error) {
	if !validUUID(string(userID)) {
		return nil, ErrUserNotFound
	}
	var handle []byte
	err := s.pool.QueryRow(ctx, s.q.webauthnHandle, string(userID)).Scan(&handle)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading a user's WebAuthn handle: %w", err)
	}
	return handle, nil
}

// UserByWebAuthnHandle returns the user whose WebAuthn user handle is
// handle, or ErrUserNotFound.
func (s *Store) UserByWebAuthnHandle(ctx context.Context, handle []byte) (*User, error) {
	if len(handle) == 0 || len(handle) > 64 {
		return nil, ErrUserNotFound
	}
	u, err := collectUser(s.pool.Query(ctx, s.q.userByWebauthnHandle, handle))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("finding a user by WebAuthn handle: %w", err)
	}
	return u, nil
}

// ceremonyKeyName names the one ceremony key in its table.
const ceremonyKeyName = "passkey ceremony"

// CeremonyKey returns the key that seals passkey ceremony cookies when no
// secrets_key is set. The first call on a new database stores newKey (32
// random bytes); later calls, from any server, return that stored key.
func (s *Store) CeremonyKey(ctx context.Context, newKey []byte) ([]byte, error) {
	if _, err := s.pool.Exec(ctx, s.q.addCeremonyKey, ceremonyKeyName, newKey); err != nil {
		return nil, fmt.Errorf("storing the passkey ceremony key: %w", err)
	}
	var key []byte
	if err := s.pool.QueryRow(ctx, s.q.ceremonyKey, ceremonyKeyName).Scan(&key); err != nil {
		return nil, fmt.Errorf("reading the passkey ceremony key: %w", err)
	}
	return key, nil
}

// UseChallenge records that the ceremony of challenge, whose cookie can be
// opened until expires, was finished: ErrNoCeremony when it was already,
// on this server or another. Only the challenge's hash is kept.
func (s *Store) UseChallenge(ctx context.Context, challenge string, expires time.Time) error {
	hash := sha256.Sum256([]byte(challenge))
	tag, err := s.pool.Exec(ctx, s.q.useChallenge, hash[:], expires)
	if err != nil {
		return fmt.Errorf("finishing a passkey ceremony: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNoCeremony
	}
	return nil
}

// CleanupUsedChallenges deletes the challenges of ceremonies that expired
// over an hour ago, in batches, and returns how many it removed.
func (s *Store) CleanupUsedChallenges(ctx context.Context) (int64, error) {
	return s.deleteInBatches(ctx, s.q.cleanupChallenges, "deleting used passkey challenges")
}

// ReservePasskeyAttempt reserves a passkey sign-in from ip against the
// per-address limit of failed logins, as ReserveLoginAttempt does for a
// password: below it the attempt is recorded, as a failure, until
// ReleaseAttempt forgives it after a sign-in that worked.
func (s *Store) ReservePasskeyAttempt(ctx context.Context, ip string, t Throttle) (Attempt, error) {
	return s.reserve(ctx, "passkey", "", ip, 0, t)
}
