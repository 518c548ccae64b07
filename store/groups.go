package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// MaxGroupNameLength bounds a group's name, as MaxUsernameLength a user's.
const MaxGroupNameLength = 64 // characters

// ErrGroupExists is CreateGroup's answer for a name that a group has.
var ErrGroupExists = errors.New("a group with that name already exists")

// ErrGroupNotFound names no group; a *GroupNotFoundError says which.
var ErrGroupNotFound = errors.New("group not found")

// GroupNotFoundError says which of the groups a change named does not
// exist, so a command or a route can tell the admin which one to fix. It is
// also ErrGroupNotFound.
type GroupNotFoundError struct{ Name string }

func (e *GroupNotFoundError) Error() string { return fmt.Sprintf("no group %q", e.Name) }

// Is makes every missing group ErrGroupNotFound for callers that do not ask which.
func (e *GroupNotFoundError) Is(target error) bool { return target == ErrGroupNotFound }

// Group is a named set of users.
type Group struct {
	Name      string    `db:"name"`
	CreatedAt time.Time `db:"created_at"`
	// Members is how many users are in the group.
	Members int64 `db:"members"`
}

// groupNameRule is the whole profile of a group name, said once: it is the
// error of every name outside it, so whoever typed one learns what fits.
const groupNameRule = "a group name is 1 to 64 characters, each a lowercase letter a-z, a digit, '-', '_' or '.', " +
	"the first a letter or a digit"

// ValidGroupName reports, as an *InputError, why name cannot be a group's
// name, or nil. Group names are identifiers that a site's rules and its
// upstream compare byte by byte, so there is one spelling of each: lowercase
// ASCII, nothing to normalise and nothing that looks like something else.
func ValidGroupName(name string) error {
	if name == "" || len(name) > MaxGroupNameLength {
		return &InputError{groupNameRule}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0:
		default:
			return &InputError{groupNameRule}
		}
	}
	return nil
}

// groupsOf is an SQL expression for the names of the groups of the user
// whose id is the SQL expression userID, sorted, in the statement that
// reads the user: a user and their groups come back in one round trip.
func groupsOf(schema, userID string) string {
	return `ARRAY(SELECT ug.group_name FROM ` + pgx.Identifier{schema, "user_groups"}.Sanitize() +
		` ug WHERE ug.user_id = ` + userID + ` ORDER BY ug.group_name)`
}

// groupQueries fills in the group statements of q, with r naming the tables.
func groupQueries(r *strings.Replacer, q *queries) {
	q.createGroup = r.Replace(`INSERT INTO {groups} (name) VALUES ($1) RETURNING name, created_at, 0::bigint AS members`)
	// deleteGroup counts the members as the statement found them: the
	// cascade that deletes the memberships runs after it.
	q.deleteGroup = r.Replace(`DELETE FROM {groups} g WHERE g.name = $1
		RETURNING (SELECT count(*) FROM {user_groups} ug WHERE ug.group_name = g.name)`)
	q.listGroups = r.Replace(`SELECT g.name, g.created_at, count(ug.user_id) AS members
		FROM {groups} g LEFT JOIN {user_groups} ug ON ug.group_name = g.name
		GROUP BY g.name ORDER BY g.name`)
	// joinGroups and leaveGroups change nothing unless the user and every
	// group named exist, and say in the same round trip whether the user
	// does and which group, if any, does not. A membership the user already
	// has is kept as it is, so joining twice is joining once, except that
	// one a provider's groups claim made becomes the admin's, which the
	// claim no longer ends (SyncProviderGroups).
	const known = `WITH wanted AS (SELECT DISTINCT unnest($2::text[]) AS name),
			missing AS (SELECT min(w.name COLLATE "C") AS name FROM wanted w
				WHERE NOT EXISTS (SELECT FROM {groups} g WHERE g.name = w.name)),
			known AS (SELECT EXISTS (SELECT FROM {users} WHERE id = $1) AND (SELECT name FROM missing) IS NULL AS ok)`
	const answer = `SELECT EXISTS (SELECT FROM {users} WHERE id = $1) AS user_exists,
			coalesce((SELECT name FROM missing), '') AS missing_group`
	q.joinGroups = r.Replace(known + `,
			joined AS (INSERT INTO {user_groups} (user_id, group_name)
				SELECT $1, name FROM wanted WHERE (SELECT ok FROM known)
				ON CONFLICT (user_id, group_name) DO UPDATE SET provider = NULL WHERE {user_groups}.provider IS NOT NULL)
		` + answer)
	q.leaveGroups = r.Replace(known + `,
			left_groups AS (DELETE FROM {user_groups}
				WHERE user_id = $1 AND group_name IN (SELECT name FROM wanted) AND (SELECT ok FROM known))
		` + answer)
	q.userGroups = r.Replace(`SELECT {groups_of_u} FROM {users} u WHERE u.id = $1`)
}

// CreateGroup adds a group with no members: an *InputError for a name
// outside the profile (see ValidGroupName), ErrGroupExists for a name a
// group has.
func (s *Store) CreateGroup(ctx context.Context, name string) (*Group, error) {
	if err := ValidGroupName(name); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, s.q.createGroup, name)
	if err != nil {
		return nil, fmt.Errorf("creating group: %w", err)
	}
	g, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Group])
	if pgErrorCode(err) == pgerrcode.UniqueViolation {
		return nil, ErrGroupExists
	}
	if err != nil {
		return nil, fmt.Errorf("creating group: %w", err)
	}
	return &g, nil
}

// DeleteGroup removes a group, and with it every membership of it, and
// returns how many members it had: an *InputError for a name outside the
// profile, a *GroupNotFoundError for a name no group has.
func (s *Store) DeleteGroup(ctx context.Context, name string) (int64, error) {
	if err := ValidGroupName(name); err != nil {
		return 0, err
	}
	var members int64
	err := s.pool.QueryRow(ctx, s.q.deleteGroup, name).Scan(&members)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, &GroupNotFoundError{Name: name}
	}
	if err != nil {
		return 0, fmt.Errorf("deleting group: %w", err)
	}
	return members, nil
}

// ListGroups returns every group, ordered by name, with its member count.
func (s *Store) ListGroups(ctx context.Context) ([]Group, error) {
	return queryAll[Group](ctx, s, "listing groups", s.q.listGroups)
}

// AddToGroups makes the user a member of each of groups; groups they are
// already in stay as they were, but for being the admin's now when a
// provider's groups claim made them (see SyncProviderGroups). It changes nothing when one name is wrong:
// an *InputError for a name outside the profile, a *GroupNotFoundError for
// the first (by name) that no group has, ErrUserNotFound for an unknown
// user. Every server drops the user's sessions from memory, so the new
// groups count from the next request on.
func (s *Store) AddToGroups(ctx context.Context, userID UserID, groups ...string) error {
	return s.changeGroups(ctx, s.q.joinGroups, "adding to groups", userID, groups)
}

// RemoveFromGroups takes the user out of each of groups; groups they are
// not in are no error. It refuses, and changes nothing, as AddToGroups does.
func (s *Store) RemoveFromGroups(ctx context.Context, userID UserID, groups ...string) error {
	return s.changeGroups(ctx, s.q.leaveGroups, "removing from groups", userID, groups)
}

// changeGroups runs joinGroups or leaveGroups and turns its answer into
// the error of the first thing that does not exist.
func (s *Store) changeGroups(ctx context.Context, query, what string, userID UserID, groups []string) error {
	for _, g := range groups {
		if err := ValidGroupName(g); err != nil {
			return err
		}
	}
	if !validUUID(string(userID)) {
		return ErrUserNotFound
	}
	var userExists bool
	var missing string
	err := s.pool.QueryRow(ctx, query, string(userID), groups).Scan(&userExists, &missing)
	if pgErrorCode(err) == pgerrcode.ForeignKeyViolation {
		// The user or a group was deleted while the statement ran; asking
		// again names which.
		err = s.pool.QueryRow(ctx, query, string(userID), groups).Scan(&userExists, &missing)
	}
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case !userExists:
		return ErrUserNotFound
	case missing != "":
		return &GroupNotFoundError{Name: missing}
	}
	return nil
}

// UserGroups returns the names of the groups the user is in, sorted; an id
// no user has is ErrUserNotFound.
func (s *Store) UserGroups(ctx context.Context, userID UserID) ([]string, error) {
	if !validUUID(string(userID)) {
		return nil, ErrUserNotFound
	}
	var groups []string
	err := s.pool.QueryRow(ctx, s.q.userGroups, string(userID)).Scan(&groups)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading the user's groups: %w", err)
	}
	return groups, nil
}
