package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// An invitation to create an account (not an IdentityInvitation, which
// lets a provider's email link to a user who exists): a single-use link an
// admin makes, whose holder picks a name and a password, or signs in with
// a provider, and becomes a user in the groups the admin chose. The link
// carries a 256-bit token; the database holds its hash only.

// Why an invitation cannot be used. Each is told to the person holding the
// link, who holds the token and so learns nothing they could not guess.
var (
	ErrInvitationUnknown = errors.New("no such invitation")
	ErrInvitationExpired = errors.New("the invitation has expired")
	ErrInvitationUsed    = errors.New("the invitation was used already")
)

// MaxInvitationLifetime bounds how long an invitation may stay open: a
// link is a credential, and one forgotten in a mailbox for years is one
// nobody remembers to revoke.
const MaxInvitationLifetime = 366 * 24 * time.Hour

// InvitationRetention is how long a used or expired invitation stays in
// the admins' list, and tells its holder what became of it, before the
// cleanup job deletes it.
const InvitationRetention = 30 * 24 * time.Hour

// Invitation is an invitation as stored, with the names of the users it
// refers to for display.
type Invitation struct {
	// ID is the invitation's public name, for listing and revoking it.
	ID string `db:"id"`
	// Email is whom it was for, normalised (NormalizeEmail); "" for none.
	// The account made with it gets the address.
	Email string `db:"email"`
	// Groups are the groups the new user joins, those that still exist.
	Groups []string `db:"groups"`
	// CreatedBy is the admin who made it; "" from the command line or the
	// admin token, or once that admin is deleted.
	CreatedBy     UserID    `db:"created_by"`
	CreatedByName string    `db:"created_by_name"`
	CreatedAt     time.Time `db:"created_at"`
	ExpiresAt     time.Time `db:"expires_at"`
	// Expired says, by the database's clock, that ExpiresAt has passed.
	Expired bool `db:"expired"`
	// UsedAt is when the account was made with it; zero while unused.
	UsedAt     time.Time `db:"-"`
	UsedBy     UserID    `db:"used_by"`
	UsedByName string    `db:"used_by_name"`
}

// Status is "used", "expired" or "open".
func (inv Invitation) Status() string {
	switch {
	case !inv.UsedAt.IsZero():
		return "used"
	case inv.Expired:
		return "expired"
	}
	return "open"
}

// userInvitationRow is an invitation as read, used_at NULL while unused.
type userInvitationRow struct {
	Invitation
	Used *time.Time `db:"used_at"`
}

func (r userInvitationRow) invitation() *Invitation {
	inv := r.Invitation
	inv.UsedAt = orZero(r.Used)
	if inv.Groups == nil {
		inv.Groups = []string{}
	}
	return &inv
}

// userInvitationColumns read an invitation i with its creator c and user u.
const userInvitationColumns = `i.id::text AS id, coalesce(i.email, '') AS email, i.groups,
	coalesce(i.created_by::text, '') AS created_by, coalesce(c.username, '') AS created_by_name,
	i.created_at, i.expires_at, i.expires_at <= now() AS expired, i.used_at,
	coalesce(i.used_by::text, '') AS used_by, coalesce(u.username, '') AS used_by_name`

// userInvitationJoins are the tables userInvitationColumns read, after FROM.
const userInvitationJoins = ` i LEFT JOIN {users} c ON c.id = i.created_by LEFT JOIN {users} u ON u.id = i.used_by`

func userInvitationQueries(r *strings.Replacer, q *queries) {
	read := `SELECT ` + userInvitationColumns + ` FROM `
	q.missingGroup = r.Replace(`SELECT min(w.name COLLATE "C") FROM unnest($1::text[]) w(name)
		WHERE NOT EXISTS (SELECT FROM {groups} g WHERE g.name = w.name)`)
	q.createUserInvitation = r.Replace(`WITH i AS (INSERT INTO {user_invitations} (token_hash, email, groups, created_by, expires_at)
			VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) RETURNING *)
		` + read + `i LEFT JOIN {users} c ON c.id = i.created_by LEFT JOIN {users} u ON u.id = i.used_by`)
	q.peekUserInvitation = r.Replace(read + `{user_invitations}` + userInvitationJoins + ` WHERE i.token_hash = $1`)
	q.userInvitationByID = r.Replace(read + `{user_invitations}` + userInvitationJoins + ` WHERE i.id = $1`)
	// useInvitation marks an open invitation used, and only an open one:
	// of two uses at once, the second waits for the first's row lock and
	// then finds it used.
	const use = `UPDATE {user_invitations} SET used_at = now()
		WHERE used_at IS NULL AND expires_at > now() AND `
	q.useInvitation = r.Replace(use + `token_hash = $1 RETURNING id::text, coalesce(email, ''), groups`)
	q.useInvitationByID = r.Replace(use + `id = $1 RETURNING id::text, coalesce(email, ''), groups`)
	q.invitationUsedBy = r.Replace(`UPDATE {user_invitations} SET used_by = $2 WHERE id = $1`)
	// joinInvitedGroups joins the groups of the invitation that still exist.
	q.joinInvitedGroups = r.Replace(`INSERT INTO {user_groups} (user_id, group_name)
		SELECT $1, g.name FROM {groups} g WHERE g.name = ANY ($2::text[]) ON CONFLICT DO NOTHING`)
	q.listUserInvitations = r.Replace(read + `{user_invitations}` + userInvitationJoins +
		` WHERE $1 OR i.used_at IS NULL ORDER BY i.created_at DESC, i.id`)
	q.revokeUserInvitation = r.Replace(`DELETE FROM {user_invitations} WHERE id = $1 AND used_at IS NULL`)
	q.cleanupUserInvitations = r.Replace(`DELETE FROM {user_invitations} WHERE id IN (
		(SELECT id FROM {user_invitations} WHERE used_at IS NULL AND expires_at <= now() - make_interval(secs => $2)
			ORDER BY expires_at LIMIT $1)
		UNION
		(SELECT id FROM {user_invitations} WHERE used_at <= now() - make_interval(secs => $2) ORDER BY used_at LIMIT $1)
		LIMIT $1)`)
}

// CreateInvitation makes an invitation for inv.Email (optional), into
// inv.Groups, by inv.CreatedBy (optional), open for ttl, and returns the
// token for its link, which is not stored, with the invitation as stored.
// It returns an *InputError for a bad email, group name or lifetime, a
// *GroupNotFoundError for a group that does not exist, and ErrUserNotFound
// when inv.CreatedBy names no user.
func (s *Store) CreateInvitation(ctx context.Context, inv Invitation, ttl time.Duration) (string, *Invitation, error) {
	if ttl <= 0 || ttl > MaxInvitationLifetime {
		return "", nil, &InputError{fmt.Sprintf("an invitation lasts more than 0 and at most %d days", MaxInvitationLifetime/(24*time.Hour))}
	}
	var email, createdBy any
	switch e, err := PrepareEmail(inv.Email); {
	case err != nil:
		return "", nil, err
	case e != "":
		email = e
	}
	if inv.CreatedBy != "" {
		if !validUUID(string(inv.CreatedBy)) {
			return "", nil, ErrUserNotFound
		}
		createdBy = string(inv.CreatedBy)
	}
	groups := slices.Compact(slices.Sorted(slices.Values(inv.Groups)))
	for _, g := range groups {
		if err := ValidGroupName(g); err != nil {
			return "", nil, err
		}
	}
	if groups == nil {
		groups = []string{}
	}
	var missing *string
	if err := s.pool.QueryRow(ctx, s.q.missingGroup, groups).Scan(&missing); err != nil {
		return "", nil, fmt.Errorf("creating an invitation: %w", err)
	}
	if missing != nil {
		return "", nil, &GroupNotFoundError{Name: *missing}
	}
	token := newToken()
	rows, err := s.pool.Query(ctx, s.q.createUserInvitation, string(HashToken(token)), email, groups, createdBy, ttl.Seconds())
	var row userInvitationRow
	if err == nil {
		row, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[userInvitationRow])
	}
	switch {
	case pgErrorCode(err) == pgerrcode.ForeignKeyViolation:
		return "", nil, ErrUserNotFound
	case err != nil:
		return "", nil, fmt.Errorf("creating an invitation: %w", err)
	}
	return token, row.invitation(), nil
}

// PeekInvitation returns the open invitation of token without using it:
// ErrInvitationUnknown, ErrInvitationExpired or ErrInvitationUsed when it
// cannot be used.
func (s *Store) PeekInvitation(ctx context.Context, token string) (*Invitation, error) {
	if !ValidToken(token) {
		return nil, ErrInvitationUnknown
	}
	return s.openInvitation(ctx, s.q.peekUserInvitation, string(HashToken(token)))
}

// openInvitation reads the invitation query finds by arg, and says why it
// cannot be used when it cannot.
func (s *Store) openInvitation(ctx context.Context, query, arg string) (*Invitation, error) {
	rows, err := s.pool.Query(ctx, query, arg)
	var row userInvitationRow
	if err == nil {
		row, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[userInvitationRow])
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, ErrInvitationUnknown
	case err != nil:
		return nil, fmt.Errorf("reading an invitation: %w", err)
	case row.Used != nil:
		return nil, ErrInvitationUsed
	case row.Expired:
		return nil, ErrInvitationExpired
	}
	return row.invitation(), nil
}

// usedInvitation is what using an invitation took from it.
type usedInvitation struct {
	id, email string
	groups    []string
}

// AcceptInvitation uses the invitation of token to create the user
// username with password, in one transaction: the invitation is marked
// used, the user created as CreateUser creates one (the same rules and
// look-alike check), put in the invitation's groups that still exist, and
// given its email. Nothing changes when anything fails: an *InputError for
// a bad name or password, ErrUserExists (or a *LookalikeError) for a taken
// name, and PeekInvitation's errors. Of two uses of one token at once, one
// creates a user and the other gets ErrInvitationUsed.
func (s *Store) AcceptInvitation(ctx context.Context, token, username, password string) (*User, error) {
	if !ValidToken(token) {
		return nil, ErrInvitationUnknown
	}
	if err := errors.Join(ValidateUsername(username), ValidatePassword(password)); err != nil {
		// The first reason alone, as a person reads one thing to fix.
		if inputErr := (*InputError)(nil); errors.As(err, &inputErr) {
			return nil, inputErr
		}
		return nil, err
	}
	name, err := PrepareUsername(username)
	if err != nil {
		return nil, err
	}
	// A link that cannot be used costs no hash.
	hashed := string(HashToken(token))
	if _, err := s.openInvitation(ctx, s.q.peekUserInvitation, hashed); err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(ctx, password)
	if err != nil {
		return nil, fmt.Errorf("accepting an invitation: %w", err)
	}
	var u *User
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		inv, err := s.useInvitation(ctx, tx, s.q.useInvitation, hashed)
		if err != nil {
			return err
		}
		if u, err = s.insertUser(ctx, tx, name, hash, false); err != nil {
			return err
		}
		u, err = s.invited(ctx, tx, inv, u)
		return err
	})
	return u, s.acceptError(ctx, err, s.q.peekUserInvitation, hashed, name)
}

// AcceptInvitationWithIdentity uses the invitation invitationID to create
// a user for a provider's sign-in, as CreateUserFromIdentity does (no
// password, a name from usernameHint, id linked), in the invitation's
// groups and with its email, in one transaction. It takes the id, not the
// token: the sign-in's flow carries the id of an invitation whose token
// was checked (PeekInvitation) when the flow began, and never the token.
// Nothing changes when anything fails: ErrIdentityTaken when id is linked
// to a user already, and PeekInvitation's errors.
func (s *Store) AcceptInvitationWithIdentity(ctx context.Context, invitationID, usernameHint string, id Identity) (*User, error) {
	if err := id.validate(); err != nil {
		return nil, err
	}
	if !validUUID(invitationID) {
		return nil, ErrInvitationUnknown
	}
	var u *User
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		inv, err := s.useInvitation(ctx, tx, s.q.useInvitationByID, invitationID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, s.q.lockUsernames, usernamesLockKey(s.schema)); err != nil {
			return err
		}
		if u, err = s.createNamedUser(ctx, tx, usernameCandidates(usernameHint)); err != nil {
			return err
		}
		if err := s.link(ctx, tx, u.ID, id); err != nil {
			return err
		}
		u, err = s.invited(ctx, tx, inv, u)
		return err
	})
	return u, s.acceptError(ctx, err, s.q.userInvitationByID, invitationID, Username{})
}

// useInvitation marks the open invitation that query finds by arg used,
// in tx; errInvitationClosed when there is none.
func (s *Store) useInvitation(ctx context.Context, tx pgx.Tx, query, arg string) (usedInvitation, error) {
	var inv usedInvitation
	err := tx.QueryRow(ctx, query, arg).Scan(&inv.id, &inv.email, &inv.groups)
	if errors.Is(err, pgx.ErrNoRows) {
		return inv, errInvitationClosed
	}
	return inv, err
}

// errInvitationClosed is an invitation that could not be used, whose
// reason acceptError reads once the transaction is over.
var errInvitationClosed = errors.New("the invitation cannot be used")

// invited finishes, in tx, the user u that the invitation inv made: its
// groups, its email, and who used it; and returns u as it is now.
func (s *Store) invited(ctx context.Context, tx pgx.Tx, inv usedInvitation, u *User) (*User, error) {
	if len(inv.groups) > 0 {
		if _, err := tx.Exec(ctx, s.q.joinInvitedGroups, string(u.ID), inv.groups); err != nil {
			return nil, err
		}
	}
	if inv.email != "" {
		if err := s.invitedEmail(ctx, tx, u.ID, inv.email); err != nil {
			return nil, err
		}
	}
	if _, err := tx.Exec(ctx, s.q.invitationUsedBy, inv.id, string(u.ID)); err != nil {
		return nil, err
	}
	return collectUser(tx.Query(ctx, s.q.getUserByID, string(u.ID)))
}

// invitedEmail gives the user the address the invitation was for, as
// verified: the admin named it, and the link reached its holder. An address
// another user has already is left out rather than refusing the account,
// in a savepoint, so the transaction goes on.
func (s *Store) invitedEmail(ctx context.Context, tx pgx.Tx, userID UserID, email string) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	_, err = sp.Exec(ctx, s.q.setEmail, string(userID), email, true)
	if pgErrorCode(err) == pgerrcode.UniqueViolation {
		return sp.Rollback(ctx)
	}
	if err != nil {
		return err
	}
	return sp.Commit(ctx)
}

// acceptError is the error of an accept that ended with err: why the
// invitation query finds by arg could not be used, why the name was
// refused, or what failed.
func (s *Store) acceptError(ctx context.Context, err error, query, arg string, name Username) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errInvitationClosed):
		if _, err := s.openInvitation(ctx, query, arg); err != nil {
			return err
		}
		// Open again: only a revoked and recreated row could do that.
		return ErrInvitationUsed
	case errors.Is(err, ErrIdentityTaken), errors.Is(err, ErrProviderLinked), errors.Is(err, ErrUserExists):
		return err
	case name.Key != "" && (errors.Is(err, pgx.ErrNoRows) || pgErrorCode(err) == pgerrcode.UniqueViolation):
		return s.createUserError(ctx, name, err)
	}
	return fmt.Errorf("accepting an invitation: %w", err)
}

// ListInvitations lists the invitations, newest first: those not used yet
// (expired ones too, until the cleanup job deletes them), and with
// includeUsed the used ones as well.
func (s *Store) ListInvitations(ctx context.Context, includeUsed bool) ([]Invitation, error) {
	rows, err := queryAll[userInvitationRow](ctx, s, "listing invitations", s.q.listUserInvitations, includeUsed)
	if err != nil {
		return nil, err
	}
	out := make([]Invitation, len(rows))
	for i, r := range rows {
		out[i] = *r.invitation()
	}
	return out, nil
}

// RevokeInvitation deletes the invitation id unless it was used, which
// ends the sign-ins with a provider that carry it: ErrInvitationUsed for
// a used one, ErrInvitationUnknown for an id no invitation has.
func (s *Store) RevokeInvitation(ctx context.Context, id string) error {
	if !validUUID(id) {
		return ErrInvitationUnknown
	}
	tag, err := s.pool.Exec(ctx, s.q.revokeUserInvitation, id)
	if err != nil {
		return fmt.Errorf("revoking an invitation: %w", err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	switch _, err := s.openInvitation(ctx, s.q.userInvitationByID, id); {
	case errors.Is(err, ErrInvitationUsed), errors.Is(err, ErrInvitationUnknown):
		return err
	case err != nil && !errors.Is(err, ErrInvitationExpired):
		return err
	}
	// Deleted by another revoke meanwhile.
	return ErrInvitationUnknown
}

// CleanupInvitations deletes, in batches, the invitations used or expired
// more than InvitationRetention ago, and returns how many it removed.
func (s *Store) CleanupInvitations(ctx context.Context) (int64, error) {
	return s.deleteInBatches(ctx, s.q.cleanupUserInvitations, "deleting old invitations", InvitationRetention.Seconds())
}
