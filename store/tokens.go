package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Limits on what an API token's owner chooses, so a token's row and a
// request's check of its paths stay small.
const (
	MaxAPITokenNameLength = 64 // characters
	MaxAPITokenPaths      = 32
	MaxAPITokenPathLength = 256 // bytes
)

// NoExpiry is the ExpiresAt of a TokenSession whose token never expires:
// far enough that no expiry check ends it, near enough that UnixNano and a
// time.Duration from now still hold it (both end in the 2200s).
var NoExpiry = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)

// apiTokenExpiredKept is how long the cleanup keeps an expired token, so its
// owner can still see in the list why a script stopped working.
const apiTokenExpiredKept = 7 * 24 * time.Hour

var (
	// ErrTokenNotFound means the user has no API token by that handle, or
	// (account_tokens.go) a mailed link is unknown, used or replaced.
	ErrTokenNotFound = errors.New("token not found")
	// ErrTokenNameTaken means the user already has an API token of that name.
	ErrTokenNameTaken = errors.New("the user already has an API token of that name")
	// ErrNotAdmin means an admin-scoped token was asked for a user who is no admin.
	ErrNotAdmin = errors.New("only an admin can create an admin-scoped API token")
)

// APIToken is one of a user's API tokens as its owner sees it: never the
// token, which only its creator was shown, nor its hash.
type APIToken struct {
	Handle    Handle
	Name      string
	CreatedAt time.Time
	// ExpiresAt is zero for a token that never expires.
	ExpiresAt time.Time
	// Paths are the path patterns the token is limited to; empty for none.
	Paths      []string
	AdminScope bool
	// LastUsedAt is zero for a token never used; uses are recorded at most
	// once per TouchAPIToken's interval.
	LastUsedAt   time.Time
	LastUsedFrom string
}

// TokenSession is what a gate needs of a live API token: a LiveSession, so
// memory and the gate's checks take it as they take a session, and what
// limits the token. In the LiveSession, IsAdmin is the owner's admin rights
// AND the token's admin scope, so a token without the scope is never admin;
// ExpiresAt is NoExpiry for a token without one; there is no idle timeout;
// LastSeenAt is the last recorded use, or the Unix epoch before any, so that
// the first use is recorded at once.
type TokenSession struct {
	LiveSession
	// Paths are the path patterns the token is limited to; empty for none.
	Paths []string
	// AdminScope is the token's own scope, whatever its owner's rights now.
	AdminScope bool
	// LastUsedAt is zero for a token never used.
	LastUsedAt time.Time
}

// ValidateAPITokenName reports why name cannot name an API token, or nil:
// 1 to 64 printable characters, without spaces at either end.
func ValidateAPITokenName(name string) error {
	switch n := utf8.RuneCountInString(name); {
	case !utf8.ValidString(name):
		return &InputError{"a token's name must be valid UTF-8"}
	case n == 0:
		return &InputError{"a token's name is empty"}
	case n > MaxAPITokenNameLength:
		return &InputError{fmt.Sprintf("a token's name is longer than %d characters", MaxAPITokenNameLength)}
	case strings.TrimSpace(name) != name:
		return &InputError{"a token's name must not start or end with a space"}
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return &InputError{"a token's name must be printable characters only"}
		}
	}
	return nil
}

// ValidateAPITokenPaths reports why paths cannot limit an API token, or nil:
// each a path pattern as Caddy's path matcher takes it, starting with / or *,
// without spaces or control characters.
func ValidateAPITokenPaths(paths []string) error {
	if len(paths) > MaxAPITokenPaths {
		return &InputError{fmt.Sprintf("a token is limited to at most %d paths", MaxAPITokenPaths)}
	}
	for _, p := range paths {
		if p == "" || p[0] != '/' && p[0] != '*' {
			return &InputError{"a token's path must start with / or *"}
		}
		if len(p) > MaxAPITokenPathLength || !utf8.ValidString(p) {
			return &InputError{fmt.Sprintf("a token's path must be valid UTF-8 of at most %d bytes", MaxAPITokenPathLength)}
		}
		if strings.ContainsFunc(p, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
			return &InputError{"a token's path must not contain spaces or control characters"}
		}
	}
	return nil
}

// ParseAPITokenLifetime reads how long a new API token lasts, as the
// command line's --expires and the JSON route's expires_in both write it:
// whole days (30d) or a Go duration (12h, 90m, 1h30m), positive. One
// parser keeps the two spellings the same.
func ParseAPITokenLifetime(s string) (time.Duration, error) {
	invalid := &InputError{"a token's lifetime must be a positive duration such as 30d, 12h or 90m"}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100*365 {
			return 0, invalid
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, invalid
	}
	return d, nil
}

// CreateAPIToken makes an API token for a user and returns it, which
// exists only in the return value: the database keeps its hash. A zero
// expiresAt means no expiry; paths, when given, limit the token. It
// returns an *InputError for a bad name, paths or expiry, ErrTokenNameTaken,
// ErrNotAdmin for adminScope asked by a user who is no admin, and
// ErrUserNotFound.
func (s *Store) CreateAPIToken(ctx context.Context, userID UserID, name string, expiresAt time.Time,
	paths []string, adminScope bool) (string, APIToken, error) {
	if err := ValidateAPITokenName(name); err != nil {
		return "", APIToken{}, err
	}
	if err := ValidateAPITokenPaths(paths); err != nil {
		return "", APIToken{}, err
	}
	if !expiresAt.IsZero() && !expiresAt.Before(NoExpiry) {
		return "", APIToken{}, &InputError{"a token's expiry must be before " + NoExpiry.Format("2006")}
	}
	if !validUUID(string(userID)) {
		return "", APIToken{}, fmt.Errorf("creating API token: %w", ErrUserNotFound)
	}
	paths = append([]string{}, paths...) // never nil, which would be NULL
	var expires *time.Time
	if !expiresAt.IsZero() {
		expires = &expiresAt
	}
	token := newAPIToken()
	t := APIToken{Name: name, ExpiresAt: expiresAt, Paths: paths, AdminScope: adminScope}
	err := s.pool.QueryRow(ctx, s.q.createAPIToken, string(HashAPIToken(token)), string(userID), name, expires,
		paths, adminScope).Scan(&t.Handle, &t.CreatedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// The user is gone or is no admin; which one is asked only now.
		if _, lookupErr := s.GetUser(ctx, userID); lookupErr != nil {
			return "", APIToken{}, fmt.Errorf("creating API token: %w", lookupErr)
		}
		return "", APIToken{}, fmt.Errorf("creating API token: %w", ErrNotAdmin)
	case pgErrorCode(err) == pgerrcode.UniqueViolation && pgConstraint(err) == "api_tokens_name_key":
		return "", APIToken{}, fmt.Errorf("creating API token: %w", ErrTokenNameTaken)
	case pgErrorCode(err) == pgerrcode.CheckViolation && pgConstraint(err) == "api_tokens_expiry_check":
		return "", APIToken{}, &InputError{"a token's expiry must be in the future"}
	case pgErrorCode(err) == pgerrcode.ForeignKeyViolation:
		return "", APIToken{}, fmt.Errorf("creating API token: %w", ErrUserNotFound)
	case err != nil:
		return "", APIToken{}, fmt.Errorf("creating API token: %w", err)
	}
	return token, t, nil
}

// ListAPITokens lists a user's API tokens, newest first, those expired in
// the last days included; an unknown user has none.
func (s *Store) ListAPITokens(ctx context.Context, userID UserID) ([]APIToken, error) {
	if !validUUID(string(userID)) {
		return nil, nil
	}
	found, err := queryAll[apiTokenRow](ctx, s, "listing API tokens", s.q.listAPITokens, string(userID))
	if err != nil {
		return nil, err
	}
	out := make([]APIToken, len(found))
	for i, r := range found {
		out[i] = APIToken{Handle: r.Handle, Name: r.Name, CreatedAt: r.CreatedAt, ExpiresAt: orZero(r.ExpiresAt),
			Paths: r.Paths, AdminScope: r.AdminScope, LastUsedAt: orZero(r.LastUsedAt), LastUsedFrom: r.LastUsedFrom}
	}
	return out, nil
}

// RevokeAPIToken deletes the user's API token with that handle, on every
// server at once (the delete is announced): ErrTokenNotFound when the user
// has none by that handle, another user's included.
func (s *Store) RevokeAPIToken(ctx context.Context, userID UserID, handle Handle) error {
	if !validUUID(string(handle)) || !validUUID(string(userID)) {
		return ErrTokenNotFound
	}
	tag, err := s.pool.Exec(ctx, s.q.revokeAPIToken, string(handle), string(userID))
	if err != nil {
		return fmt.Errorf("revoking API token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrTokenNotFound
	}
	return nil
}

// RevokeAllAPITokens deletes every API token of a user and returns how many
// there were; an unknown user has none.
func (s *Store) RevokeAllAPITokens(ctx context.Context, userID UserID) (int, error) {
	if !validUUID(string(userID)) {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, s.q.revokeAllAPITokens, string(userID))
	if err != nil {
		return 0, fmt.Errorf("revoking API tokens: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// CheckAPIToken is the gate's lookup of an API token by its id
// (HashAPIToken): one round trip, scanned by position. It reports false when
// there is no live token named id: unknown, revoked or expired.
func (s *Store) CheckAPIToken(ctx context.Context, id SessionID) (TokenSession, bool, error) {
	var t TokenSession
	var expires, used *time.Time
	err := s.pool.QueryRow(ctx, s.q.checkAPIToken, string(id)).Scan(&t.UserID, &t.Username, &t.IsAdmin,
		&t.SecondFactor, &expires, &t.LastSeenAt, &used, &t.CheckedAt, &t.Paths, &t.AdminScope, &t.Groups)
	if errors.Is(err, pgx.ErrNoRows) {
		return TokenSession{}, false, nil
	}
	if err != nil {
		return TokenSession{}, false, fmt.Errorf("looking up API token: %w", err)
	}
	t.ExpiresAt = NoExpiry
	if expires != nil {
		t.ExpiresAt = *expires
	}
	t.LastUsedAt = orZero(used)
	t.Scope = &TokenScope{Paths: t.Paths}
	return t, true, nil
}

// APITokenOwner returns the user of the token id, live or expired within
// the week its row is kept: whom a script still sending it concerns.
func (s *Store) APITokenOwner(ctx context.Context, id SessionID) (UserID, bool, error) {
	var owner UserID
	err := s.pool.QueryRow(ctx, s.q.apiTokenOwner, string(id)).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("looking up an API token's user: %w", err)
	}
	return owner, true, nil
}

// TouchAPIToken records that the token id was used at from, but writes only
// when the last record is older than interval before at: at most one write
// per interval, however many servers share the database. It reports whether
// it wrote. Nothing is announced: a use changes nothing a server keeps.
func (s *Store) TouchAPIToken(ctx context.Context, id SessionID, at time.Time, from string, interval time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, s.q.touchAPIToken, string(id), at, trimUTF8(from, 64), interval.Seconds())
	if err != nil {
		return false, fmt.Errorf("recording the use of an API token: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// ReserveTokenAttempt reserves the check of an API token from ip against the
// per-address limit of failed logins, as ReservePasskeyAttempt does: below
// it the attempt is recorded, as a failure, until ReleaseAttempt forgives it
// for a token that was found. A gate needs it only for a token it does not
// hold in memory, and none for one IsAPIToken refuses.
func (s *Store) ReserveTokenAttempt(ctx context.Context, ip string, t Throttle) (Attempt, error) {
	return s.reserve(ctx, "token", "", ip, 0, t)
}

// CleanupExpiredAPITokens deletes API tokens that expired over a week ago,
// in batches, and returns how many it removed.
func (s *Store) CleanupExpiredAPITokens(ctx context.Context) (int64, error) {
	return s.deleteInBatches(ctx, s.q.cleanupAPITokens, "deleting expired API tokens", apiTokenExpiredKept.Seconds())
}

// apiTokenRow is a row of api_tokens as listAPITokens names the columns.
type apiTokenRow struct {
	Handle       Handle     `db:"handle"`
	Name         string     `db:"name"`
	CreatedAt    time.Time  `db:"created_at"`
	ExpiresAt    *time.Time `db:"expires_at"`
	Paths        []string   `db:"paths"`
	AdminScope   bool       `db:"admin_scope"`
	LastUsedAt   *time.Time `db:"last_used_at"`
	LastUsedFrom string     `db:"last_used_from"`
}

// orZero is *t, or the zero time for NULL.
func orZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// pgConstraint names the constraint a PostgreSQL error is about, or "".
func pgConstraint(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.ConstraintName
	}
	return ""
}

func apiTokenQueries(r *strings.Replacer, q *queries) {
	// createAPIToken inserts only for an existing user, and an admin-scoped
	// token only for an admin, in one statement.
	q.createAPIToken = r.Replace(`INSERT INTO {api_tokens} (id, user_id, name, expires_at, paths, admin_scope)
		SELECT $1, u.id, $3, $4::timestamptz, $5::text[], $6::boolean FROM {users} u
		WHERE u.id = $2 AND (u.is_admin OR NOT $6::boolean)
		RETURNING handle::text, created_at`)
	q.listAPITokens = r.Replace(`SELECT handle::text AS handle, name, created_at, expires_at, paths, admin_scope,
			last_used_at, last_used_from
		FROM {api_tokens} WHERE user_id = $1 ORDER BY created_at DESC, name`)
	q.revokeAPIToken = r.Replace(`DELETE FROM {api_tokens} WHERE handle = $1 AND user_id = $2`)
	q.revokeAllAPITokens = r.Replace(`DELETE FROM {api_tokens} WHERE user_id = $1`)
	// checkAPIToken reads, in the order CheckAPIToken scans it, what a
	// LiveSession holds and what limits the token.
	q.checkAPIToken = r.Replace(`SELECT u.id::text, u.username, u.is_admin AND a.admin_scope, {has_second_factor},
			a.expires_at, coalesce(a.last_used_at, 'epoch'::timestamptz), a.last_used_at, now(), a.paths, a.admin_scope,
			{groups_of_u}
		FROM {api_tokens} a JOIN {users} u ON u.id = a.user_id
		WHERE a.id = $1 AND (a.expires_at IS NULL OR a.expires_at > now())`)
	q.apiTokenOwner = r.Replace(`SELECT user_id::text FROM {api_tokens} WHERE id = $1`)
	// touchAPIToken writes only when the last use recorded is older than $4
	// seconds before $2, so servers racing to record one token write once.
	q.touchAPIToken = r.Replace(`UPDATE {api_tokens} SET last_used_at = $2, last_used_from = $3
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2::timestamptz - make_interval(secs => $4))`)
	q.cleanupAPITokens = r.Replace(`DELETE FROM {api_tokens} WHERE id IN (
			SELECT id FROM {api_tokens} WHERE expires_at <= now() - make_interval(secs => $2)
			ORDER BY expires_at LIMIT $1)`)
}

// TokenScope is what an API token is limited to, beyond its user's rights.
type TokenScope struct {
	// Paths are the path patterns the token may reach; empty for any.
	Paths []string
}
