package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// Identities link a user to an account at an identity provider (OpenID
// Connect, GitHub) by the provider's subject, which the provider never
// gives to another account, never by email, which can change owner. The
// store knows nothing of OAuth: the caller verifies what the provider
// said, and the store keeps the links, the admins' permissions to link
// (invitations.go), the flows in progress (identity_flows.go) and the
// users a first sign-in creates (identity_users.go).

// Errors of identities, told apart with errors.Is.
var (
	// ErrIdentityNotFound means no user has linked that identity, or the
	// user has no identity of that provider.
	ErrIdentityNotFound = errors.New("identity not linked")
	// ErrIdentityTaken means the provider's account is linked to another user.
	ErrIdentityTaken = errors.New("that identity is linked to another user")
	// ErrProviderLinked means the user has an identity of that provider
	// already: there is one a provider, to unlink before linking another.
	ErrProviderLinked = errors.New("the user already has an identity of that provider")
	// ErrLastSignInMethod refuses a change that would leave the user no way
	// to sign in: no password, no passkey and no other identity.
	ErrLastSignInMethod = errors.New("that is the user's last way to sign in")
)

// Limits of what a provider says, held by the tables too.
const (
	MaxProviderNameLength = 32  // bytes of a-z, 0-9 and '-'
	MaxSubjectLength      = 255 // bytes, OpenID Connect's limit on sub
	MaxEmailLength        = 320 // bytes, RFC 3696's longest address
)

// Identity is a user's account at a provider.
type Identity struct {
	Provider string `db:"provider"`
	// Subject is the provider's name of the account: OIDC's sub, GitHub's
	// numeric user id; compared byte by byte.
	Subject string `db:"subject"`
	// Email is the provider's verified email as it said it last; empty
	// when it gave none verified. It links nothing.
	Email     string    `db:"email"`
	CreatedAt time.Time `db:"created_at"`
	// LastUsedAt is the last sign-in with the identity.
	LastUsedAt time.Time `db:"last_used_at"`
}

// providerNameRule is the whole profile of a provider's name, said once.
const providerNameRule = "a provider's name is 1 to 32 characters, each a lowercase letter a-z, a digit or '-'"

// ValidProviderName reports, as an *InputError, why name cannot name an
// identity provider, or nil. Names are identifiers in paths and in the
// database, compared byte by byte, so each has one spelling.
func ValidProviderName(name string) error {
	if name == "" || len(name) > MaxProviderNameLength {
		return &InputError{providerNameRule}
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return &InputError{providerNameRule}
		}
	}
	return nil
}

// validate reports why id cannot be stored, as an *InputError, or nil.
func (id Identity) validate() error {
	if err := ValidProviderName(id.Provider); err != nil {
		return err
	}
	if id.Subject == "" || len(id.Subject) > MaxSubjectLength || !utf8.ValidString(id.Subject) ||
		strings.ContainsRune(id.Subject, 0) {
		return &InputError{fmt.Sprintf("a provider's subject is 1 to %d bytes of UTF-8", MaxSubjectLength)}
	}
	if len(id.Email) > MaxEmailLength || !utf8.ValidString(id.Email) || strings.ContainsRune(id.Email, 0) {
		return &InputError{fmt.Sprintf("an email is at most %d bytes of UTF-8", MaxEmailLength)}
	}
	return nil
}

func identityQueries(r *strings.Replacer, q *queries) {
	// lockSignInWays takes the user's row, so that two changes racing to
	// remove a user's last ways to sign in take turns and the second sees
	// what the first left; it does not block the user's sign-ins (a new
	// session only shares the key lock).
	q.lockSignInWays = r.Replace(`SELECT password_hash IS NOT NULL FROM {users} WHERE id = $1 FOR NO KEY UPDATE`)
	// otherSignInWays runs after lockSignInWays, in a statement of its own,
	// so that it reads what a change that held the lock committed.
	q.otherSignInWays = r.Replace(`SELECT EXISTS (SELECT FROM {identities} WHERE user_id = $1)
		OR EXISTS (SELECT FROM {passkeys} WHERE user_id = $1)`)
	// linkIdentity links an identity to a user, or notes a sign-in with one
	// the user has linked already; one of another user's returns no row.
	q.linkIdentity = r.Replace(`INSERT INTO {identities} (provider, subject, user_id, email, last_used_at)
		VALUES ($1, $2, $3, nullif($4, ''), now())
		ON CONFLICT (provider, subject) DO UPDATE SET email = excluded.email, last_used_at = excluded.last_used_at
		WHERE {identities}.user_id = excluded.user_id
		RETURNING created_at`)
	q.userByIdentity = r.Replace(`WITH i AS (UPDATE {identities} SET last_used_at = now(), email = nullif($3, '')
			WHERE provider = $1 AND subject = $2 RETURNING user_id)
		SELECT {user_columns_u} FROM i JOIN {users} u ON u.id = i.user_id`)
	q.listIdentities = r.Replace(`SELECT provider::text AS provider, subject, coalesce(email, '') AS email, created_at,
			coalesce(last_used_at, created_at) AS last_used_at
		FROM {identities} WHERE user_id = $1 ORDER BY provider`)
	q.unlinkIdentity = r.Replace(`DELETE FROM {identities} WHERE user_id = $1 AND provider = $2`)
	// leaveProviderGroups ends the memberships an unlinked provider's
	// groups claim made; an admin's stay.
	q.leaveProviderGroups = r.Replace(`DELETE FROM {user_groups} WHERE user_id = $1 AND provider = $2`)
	// syncProviderGroups makes the user's memberships from provider those
	// of the claimed groups ($3) that exist: it joins the missing ones as
	// the provider's, keeps a membership the user had already (an admin's
	// stays an admin's), and ends the provider's memberships the claim no
	// longer lists. The triggers announce the user only when a row changed.
	q.syncProviderGroups = r.Replace(`WITH wanted AS (SELECT g.name FROM {groups} g WHERE g.name = ANY($3::text[])),
			joined AS (INSERT INTO {user_groups} (user_id, group_name, provider)
				SELECT $1, name, $2 FROM wanted WHERE EXISTS (SELECT FROM {users} WHERE id = $1)
				ON CONFLICT DO NOTHING),
			left_groups AS (DELETE FROM {user_groups}
				WHERE user_id = $1 AND provider = $2 AND group_name NOT IN (SELECT name FROM wanted))
		SELECT EXISTS (SELECT FROM {users} WHERE id = $1)`)
	invitationQueries(r, q)
	flowQueries(r, q)
}

// LinkIdentity links id to the user, for a sign-in an admin allowed or a
// "Link" from the account page: ErrIdentityTaken when another user has
// linked it, ErrProviderLinked when the user has another identity of the
// provider, ErrUserNotFound, or an *InputError for what cannot be stored.
// Linking one the user has already is no error: it records a sign-in.
func (s *Store) LinkIdentity(ctx context.Context, userID UserID, id Identity) error {
	if err := id.validate(); err != nil {
		return err
	}
	if !validUUID(string(userID)) {
		return ErrUserNotFound
	}
	return s.link(ctx, s.pool, userID, id)
}

// querier is a pool or a transaction, for a statement that runs alone or
// as part of a larger change.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// link runs linkIdentity on db, with its errors.
func (s *Store) link(ctx context.Context, db querier, userID UserID, id Identity) error {
	var created time.Time
	err := db.QueryRow(ctx, s.q.linkIdentity, id.Provider, id.Subject, string(userID), id.Email).Scan(&created)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ErrIdentityTaken
	case pgErrorCode(err) == pgerrcode.UniqueViolation && pgConstraint(err) == "identities_one_per_provider":
		return ErrProviderLinked
	case pgErrorCode(err) == pgerrcode.UniqueViolation:
		// Another sign-in linked the identity at the same moment.
		return ErrIdentityTaken
	case pgErrorCode(err) == pgerrcode.ForeignKeyViolation:
		return ErrUserNotFound
	case err != nil:
		return fmt.Errorf("linking an identity: %w", err)
	}
	return nil
}

// UserByIdentity returns the user who linked id's provider and subject,
// and records the sign-in: when, and id.Email as the provider's verified
// email now (empty: none). ErrIdentityNotFound when nobody linked it.
func (s *Store) UserByIdentity(ctx context.Context, id Identity) (*User, error) {
	if id.validate() != nil {
		return nil, ErrIdentityNotFound
	}
	u, err := collectUser(s.pool.Query(ctx, s.q.userByIdentity, id.Provider, id.Subject, id.Email))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrIdentityNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("finding a user by identity: %w", err)
	}
	return u, nil
}

// Identities lists the user's identities by provider; an unknown user has
// none.
func (s *Store) Identities(ctx context.Context, userID UserID) ([]Identity, error) {
	if !validUUID(string(userID)) {
		return nil, nil
	}
	return queryAll[Identity](ctx, s, "listing identities", s.q.listIdentities, string(userID))
}

// UnlinkIdentity removes the user's identity of provider, and the group
// memberships its groups claim made: ErrIdentityNotFound when there is
// none, ErrUserNotFound, and ErrLastSignInMethod, with nothing changed,
// when the user would have no password, passkey or other identity left.
// The user's sessions stay, as they do when a passkey is removed.
func (s *Store) UnlinkIdentity(ctx context.Context, userID UserID, provider string) error {
	if ValidProviderName(provider) != nil {
		return ErrIdentityNotFound
	}
	if !validUUID(string(userID)) {
		return ErrUserNotFound
	}
	removed, err := s.keepingASignInWay(ctx, userID, func(tx pgx.Tx) (bool, error) {
		tag, err := tx.Exec(ctx, s.q.unlinkIdentity, string(userID), provider)
		if err != nil || tag.RowsAffected() == 0 {
			return false, err
		}
		_, err = tx.Exec(ctx, s.q.leaveProviderGroups, string(userID), provider)
		return true, err
	})
	switch {
	case errors.Is(err, ErrUserNotFound), errors.Is(err, ErrLastSignInMethod):
		return err
	case err != nil:
		return fmt.Errorf("unlinking an identity: %w", err)
	case !removed:
		return ErrIdentityNotFound
	}
	return nil
}

// keepingASignInWay runs remove, which takes away one of the user's ways
// to sign in and says whether it did, in a transaction under the user's
// lock, and rolls it back with ErrLastSignInMethod when it left the user
// no password, passkey or identity. A passkey counts: it is a whole
// sign-in. ErrUserNotFound when the user is gone.
func (s *Store) keepingASignInWay(ctx context.Context, userID UserID, remove func(pgx.Tx) (bool, error)) (bool, error) {
	var removed bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var hasPassword bool
		if err := tx.QueryRow(ctx, s.q.lockSignInWays, string(userID)).Scan(&hasPassword); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrUserNotFound
			}
			return err
		}
		var err error
		if removed, err = remove(tx); err != nil || !removed || hasPassword {
			return err
		}
		var left bool
		if err := tx.QueryRow(ctx, s.q.otherSignInWays, string(userID)).Scan(&left); err != nil {
			return err
		}
		if !left {
			return ErrLastSignInMethod
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return removed, nil
}

// SyncProviderGroups makes the user's group memberships that came from
// provider's groups claim those of groups that exist: it joins the user to
// each that the user is not in, as the provider's membership, and takes
// the user out of the provider's memberships that groups no longer lists.
// Memberships an admin made stay whatever the claim says, and a name that
// is no group's is ignored: a claim cannot create groups. ErrUserNotFound
// for an unknown user. Every server drops the user's sessions from memory
// when a membership changed.
func (s *Store) SyncProviderGroups(ctx context.Context, userID UserID, provider string, groups []string) error {
	if err := ValidProviderName(provider); err != nil {
		return err
	}
	if !validUUID(string(userID)) {
		return ErrUserNotFound
	}
	err := s.syncGroups(ctx, s.pool, userID, provider, groups)
	if pgErrorCode(err) == pgerrcode.ForeignKeyViolation {
		// The user or a group was deleted while the statement ran; once
		// more says which, or joins the groups that are left.
		err = s.syncGroups(ctx, s.pool, userID, provider, groups)
	}
	switch {
	case errors.Is(err, ErrUserNotFound):
		return err
	case err != nil:
		return fmt.Errorf("setting the groups of a provider: %w", err)
	}
	return nil
}

// syncGroups runs syncProviderGroups on db; ErrUserNotFound for an unknown user.
func (s *Store) syncGroups(ctx context.Context, db querier, userID UserID, provider string, groups []string) error {
	names := []string{} // never nil, which would be NULL
	for _, g := range groups {
		if ValidGroupName(g) == nil {
			names = append(names, g)
		}
	}
	var exists bool
	if err := db.QueryRow(ctx, s.q.syncProviderGroups, string(userID), provider, names).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return ErrUserNotFound
	}
	return nil
}
