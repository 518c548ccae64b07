package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// An invitation is an admin's permission for the first sign-in with a
// provider whose verified email is the one allowed to link to an existing
// user. It is used once: the sign-in stores the link by subject, and from
// then on the email plays no part, so a provider's address that changes
// hands later cannot reach the account.

// ErrInvitationNotFound means no admin allowed that provider and email, or
// the permission expired or was used.
var ErrInvitationNotFound = errors.New("no such identity invitation, or it expired or was used")

// IdentityInvitation is an admin's permission to link.
type IdentityInvitation struct {
	Provider string `db:"provider"`
	// Email is lower-cased; a sign-in's verified email is compared
	// lower-cased to it.
	Email  string `db:"email"`
	UserID UserID `db:"user_id"`
	// CreatedBy is the admin who allowed it; empty from the command line.
	CreatedBy UserID    `db:"created_by"`
	CreatedAt time.Time `db:"created_at"`
	// ExpiresAt is zero for a permission that does not expire.
	ExpiresAt time.Time `db:"-"`
}

// invitationRow is an invitation as read, its expiry NULL for none.
type invitationRow struct {
	IdentityInvitation
	Expires *time.Time `db:"expires_at"`
}

func (r invitationRow) invitation() IdentityInvitation {
	inv := r.IdentityInvitation
	inv.ExpiresAt = orZero(r.Expires)
	return inv
}

// NormalizeEmail is an email as invitations and users' addresses compare
// it: trimmed and lower-cased, so that " Alice@Example.com" as a form or a
// provider says it is the alice@example.com an admin allowed or a user has.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// validEmail reports, as an *InputError, why an admin cannot allow email.
// It asks for a name, one @ and a domain, nothing more: the provider says
// which addresses exist, and this one only has to match theirs.
func validEmail(email string) error {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || len(email) > MaxEmailLength ||
		strings.ContainsFunc(email, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
		return &InputError{fmt.Sprintf("an email is a name, @ and a domain, without spaces, at most %d bytes", MaxEmailLength)}
	}
	return nil
}

const invitationColumns = `provider::text AS provider, email, user_id::text AS user_id,
	coalesce(created_by::text, '') AS created_by, created_at, expires_at`

func invitationQueries(r *strings.Replacer, q *queries) {
	// allowIdentity replaces what an email was allowed before, so an admin
	// fixes a mistake by allowing again, and allows nothing for a user who
	// has linked the provider already: that sign-in could not link.
	q.allowIdentity = r.Replace(`INSERT INTO {identity_invitations} (provider, email, user_id, created_by, expires_at)
		SELECT $1::text, $2::text, $3::uuid, $4::uuid, $5::timestamptz
		WHERE NOT EXISTS (SELECT FROM {identities} WHERE user_id = $3::uuid AND provider = $1::text)
		ON CONFLICT (provider, email) DO UPDATE SET user_id = excluded.user_id, created_by = excluded.created_by,
			created_at = now(), expires_at = excluded.expires_at
		RETURNING ` + invitationColumns)
	q.takeInvitation = r.Replace(`DELETE FROM {identity_invitations}
		WHERE provider = $1 AND email = $2 AND (expires_at IS NULL OR expires_at > now())
		RETURNING user_id::text`)
	q.listInvitations = r.Replace(`SELECT ` + invitationColumns + ` FROM {identity_invitations}
		WHERE user_id = $1 AND (expires_at IS NULL OR expires_at > now()) ORDER BY provider, email`)
	q.withdrawInvitations = r.Replace(`DELETE FROM {identity_invitations} WHERE user_id = $1 AND provider = $2`)
	q.cleanupInvitations = r.Replace(`DELETE FROM {identity_invitations} WHERE (provider, email) IN (
		SELECT provider, email FROM {identity_invitations} WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)`)
}

// AllowIdentity lets the first sign-in with inv.Provider whose verified
// email is inv.Email (compared lower-cased) link to inv.UserID, once, until
// inv.ExpiresAt (zero: no expiry), and returns what it stored. Allowing an
// email again replaces what it allowed before. It returns an *InputError
// for a bad provider, email or expiry, ErrProviderLinked when the user has
// an identity of the provider already, and ErrUserNotFound.
func (s *Store) AllowIdentity(ctx context.Context, inv IdentityInvitation) (*IdentityInvitation, error) {
	if err := ValidProviderName(inv.Provider); err != nil {
		return nil, err
	}
	inv.Email = NormalizeEmail(inv.Email)
	if err := validEmail(inv.Email); err != nil {
		return nil, err
	}
	if !validUUID(string(inv.UserID)) || inv.CreatedBy != "" && !validUUID(string(inv.CreatedBy)) {
		return nil, ErrUserNotFound
	}
	var expires, createdBy any
	if !inv.ExpiresAt.IsZero() {
		expires = inv.ExpiresAt
	}
	if inv.CreatedBy != "" {
		createdBy = string(inv.CreatedBy)
	}
	rows, err := s.pool.Query(ctx, s.q.allowIdentity, inv.Provider, inv.Email, string(inv.UserID), createdBy, expires)
	var row invitationRow
	if err == nil {
		row, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[invitationRow])
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, ErrProviderLinked
	case pgErrorCode(err) == pgerrcode.CheckViolation && pgConstraint(err) == "identity_invitations_expiry_check":
		return nil, &InputError{"an invitation's expiry must be in the future"}
	case pgErrorCode(err) == pgerrcode.ForeignKeyViolation:
		return nil, ErrUserNotFound
	case err != nil:
		return nil, fmt.Errorf("allowing an identity: %w", err)
	}
	inv = row.invitation()
	return &inv, nil
}

// TakeIdentityInvitation uses the invitation for id's provider and
// verified email (id.Email, which the caller must have seen verified) and
// links id to its user, in one transaction, and returns the user. It
// returns ErrInvitationNotFound when there is no live invitation, and
// LinkIdentity's errors, with the invitation kept, when the link cannot
// be made. Of two sign-ins racing for one invitation, one links.
func (s *Store) TakeIdentityInvitation(ctx context.Context, id Identity) (*User, error) {
	if id.Email == "" || id.validate() != nil {
		return nil, ErrInvitationNotFound
	}
	var u *User
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var userID UserID
		if err := tx.QueryRow(ctx, s.q.takeInvitation, id.Provider, NormalizeEmail(id.Email)).Scan(&userID); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrInvitationNotFound
			}
			return err
		}
		if err := s.link(ctx, tx, userID, id); err != nil {
			return err
		}
		var err error
		u, err = collectUser(tx.Query(ctx, s.q.getUserByID, string(userID)))
		return err
	})
	switch {
	case errors.Is(err, ErrInvitationNotFound), errors.Is(err, ErrIdentityTaken), errors.Is(err, ErrProviderLinked):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("taking an identity invitation: %w", err)
	}
	return u, nil
}

// IdentityInvitations lists the invitations to link to the user that are
// still live, by provider; an unknown user has none.
func (s *Store) IdentityInvitations(ctx context.Context, userID UserID) ([]IdentityInvitation, error) {
	if !validUUID(string(userID)) {
		return nil, nil
	}
	found, err := queryAll[invitationRow](ctx, s, "listing identity invitations", s.q.listInvitations, string(userID))
	if err != nil {
		return nil, err
	}
	out := make([]IdentityInvitation, len(found))
	for i, r := range found {
		out[i] = r.invitation()
	}
	return out, nil
}

// WithdrawIdentityInvitations deletes the invitations of provider to link
// to the user, used or not, and returns how many it deleted.
func (s *Store) WithdrawIdentityInvitations(ctx context.Context, userID UserID, provider string) (int64, error) {
	if !validUUID(string(userID)) || ValidProviderName(provider) != nil {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, s.q.withdrawInvitations, string(userID), provider)
	if err != nil {
		return 0, fmt.Errorf("withdrawing identity invitations: %w", err)
	}
	return tag.RowsAffected(), nil
}

// CleanupIdentityInvitations deletes expired invitations, in batches, and
// returns how many it removed.
func (s *Store) CleanupIdentityInvitations(ctx context.Context) (int64, error) {
	return s.deleteInBatches(ctx, s.q.cleanupInvitations, "deleting expired identity invitations")
}
