package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// MaxUserAgentLength caps what is kept of a User-Agent header; enough to
// recognise a device, too little to fill the table with junk.
const MaxUserAgentLength = 256

// SessionID names a session as the database does: the lowercase hex
// SHA-256 of its token (see HashToken), never the token itself.
type SessionID string

// Handle names a session to users and admins: a UUID that, unlike the
// SessionID, reveals nothing about the token.
type Handle string

// Session is one login of one user.
type Session struct {
	ID     SessionID
	Handle Handle
	User   User
	// ExpiresAt is the absolute end of the session.
	ExpiresAt time.Time
	// IdleExpiresAt, when set, is when the session ends unless used again.
	IdleExpiresAt *time.Time
	// IdleTimeout is how long the session may go unused; 0 for none.
	IdleTimeout time.Duration
	CreatedAt   time.Time
	LastSeenAt  time.Time
	UserAgent   string
	IP          string
	// CheckedAt is the database's clock when the row was read, so callers
	// measure the session's age by the clock every server shares.
	CheckedAt time.Time
	// SecondFactor says whether the user has a confirmed second factor,
	// for the second_factor required policy.
	SecondFactor bool
	// Method is how the session was signed in, or stepped up to since:
	// MethodPassword, MethodPasswordTOTP, MethodPasswordRecoveryCode or
	// MethodPasskey.
	Method string
}

// SessionParams describe a session to create.
type SessionParams struct {
	// User is who logs in, as read when their password was verified: the
	// session is created only if the user's credentials have not changed
	// since (User.CredentialVersion), so a password change that commits
	// while a login with the old password is in flight ends that login too.
	User User
	// Lifetime is how long the session lasts from now at most; it must be positive.
	Lifetime time.Duration
	// IdleTimeout, when positive, ends the session after that long without use.
	IdleTimeout time.Duration
	// MaxPerUser, when positive, caps the user's sessions: creating one more
	// ends their least recently used session.
	MaxPerUser int
	// UserAgent and IP describe the device, for a user looking at their sessions.
	UserAgent string
	IP        string
	// Method is how the user signed in; MethodPassword when empty. Only
	// the sign-in routes know it, so the store takes their word.
	Method string
}

// CreateSession starts a session and returns its token, which exists only in
// the return value: the database keeps its hash. It returns
// ErrCredentialsChanged when the user's password was set after p.User was
// read, and ErrUserNotFound when the user is gone.
func (s *Store) CreateSession(ctx context.Context, p SessionParams) (string, *Session, error) {
	token, args, err := newSessionArgs(p)
	if err != nil {
		return "", nil, err
	}
	var sess *Session
	if p.MaxPerUser <= 0 {
		// One statement, one round trip: the common case pays for no transaction.
		sess, err = collectSession(s.pool.Query(ctx, s.q.createSession, args...))
	} else {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			if sess, err = collectSession(tx.Query(ctx, s.q.createSession, args...)); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, s.q.trimSessions, string(p.User.ID), p.MaxPerUser)
			return err
		})
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// The user is gone or their credentials moved on; which one is
		// asked only now, off the common path.
		if _, lookupErr := s.GetUser(ctx, p.User.ID); errors.Is(lookupErr, ErrUserNotFound) {
			return "", nil, fmt.Errorf("creating session: %w", ErrUserNotFound)
		}
		return "", nil, fmt.Errorf("creating session: %w", ErrCredentialsChanged)
	}
	if err != nil {
		if pgErrorCode(err) == pgerrcode.ForeignKeyViolation {
			return "", nil, fmt.Errorf("creating session: %w", ErrUserNotFound)
		}
		return "", nil, fmt.Errorf("creating session: %w", err)
	}
	return token, sess, nil
}

// newSessionArgs makes the token of a session to create and the arguments
// of createSession for it.
func newSessionArgs(p SessionParams) (string, []any, error) {
	if p.Lifetime <= 0 {
		return "", nil, errors.New("creating session: lifetime must be positive")
	}
	if !validUUID(string(p.User.ID)) {
		return "", nil, fmt.Errorf("creating session: %w", ErrUserNotFound)
	}
	var idle *int32
	if p.IdleTimeout > 0 {
		secs := int32(min(max(p.IdleTimeout.Round(time.Second), time.Second), time.Duration(math.MaxInt32)*time.Second) / time.Second)
		idle = &secs
	}
	token := newToken()
	method := p.Method
	if method == "" {
		method = MethodPassword
	}
	return token, []any{string(HashToken(token)), string(p.User.ID), p.Lifetime.Seconds(),
		trimUTF8(p.UserAgent, MaxUserAgentLength), trimUTF8(p.IP, 64), idle, p.User.CredentialVersion, method}, nil
}

// GetSession returns the live session for token. A token that is malformed,
// unknown or expired gives (nil, nil) without an error, and a malformed one
// costs no query; an error always means the database failed.
func (s *Store) GetSession(ctx context.Context, token string) (*Session, error) {
	if !ValidToken(token) {
		return nil, nil
	}
	return s.GetSessionByID(ctx, HashToken(token))
}

// LiveSession is what a gate needs of a live session to let a request
// through: its user, its ends and when it was last renewed, by the
// database's clock (CheckedAt).
type LiveSession struct {
	UserID       UserID
	Username     string
	IsAdmin      bool
	SecondFactor bool
	ExpiresAt    time.Time
	// IdleExpiresAt is zero without an idle timeout.
	IdleExpiresAt time.Time
	IdleTimeout   time.Duration
	LastSeenAt    time.Time
	CheckedAt     time.Time
	// Groups are the names of the user's groups, sorted, read with the
	// session, so a rule on groups costs the gate no query of its own.
	Groups []string
	// Method is how the session was signed in (Session.Method). An API
	// token's is empty: a token is no sign-in, and no factor stands
	// behind it.
	Method string
	// Scope is set when this is an API token rather than a session.
	Scope *TokenScope
}

// CheckSession is GetSessionByID for the request path: one round trip that
// reads only what LiveSession holds, scanned by position. It reports false
// when there is no live session named id.
func (s *Store) CheckSession(ctx context.Context, id SessionID) (LiveSession, bool, error) {
	var l LiveSession
	var idleExpires pgtype.Timestamptz
	var idleSeconds int32
	err := s.pool.QueryRow(ctx, s.q.checkSession, string(id)).Scan(&l.UserID, &l.Username, &l.IsAdmin,
		&l.SecondFactor, &l.ExpiresAt, &idleExpires, &idleSeconds, &l.LastSeenAt, &l.CheckedAt, &l.Groups, &l.Method)
	if errors.Is(err, pgx.ErrNoRows) {
		return LiveSession{}, false, nil
	}
	if err != nil {
		return LiveSession{}, false, fmt.Errorf("looking up session: %w", err)
	}
	if idleExpires.Valid {
		l.IdleExpiresAt = idleExpires.Time
	}
	l.IdleTimeout = time.Duration(idleSeconds) * time.Second
	return l, true, nil
}

// Live is the part of the session a gate needs.
func (sess *Session) Live() LiveSession {
	l := LiveSession{UserID: sess.User.ID, Username: sess.User.Username, IsAdmin: sess.User.IsAdmin,
		SecondFactor: sess.SecondFactor, ExpiresAt: sess.ExpiresAt, IdleTimeout: sess.IdleTimeout,
		LastSeenAt: sess.LastSeenAt, CheckedAt: sess.CheckedAt, Groups: sess.User.Groups, Method: sess.Method}
	if sess.IdleExpiresAt != nil {
		l.IdleExpiresAt = *sess.IdleExpiresAt
	}
	return l
}

// GetSessionByID returns the live session named id; like GetSession, (nil,
// nil) when there is none. It serves a server that must check again a
// session it already knows, without the token.
func (s *Store) GetSessionByID(ctx context.Context, id SessionID) (*Session, error) {
	sess, err := collectSession(s.pool.Query(ctx, s.q.getSession, string(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up session: %w", err)
	}
	return sess, nil
}

// Touch is what TouchSession found.
type Touch int

const (
	// SessionGone: no live session has the id. It was deleted, expired, or
	// belongs to credentials that changed since.
	SessionGone Touch = iota
	// SessionTouched: the use was written now.
	SessionTouched
	// SessionTouchedRecently: the session is live and its use was written
	// within minAge, by this server or another.
	SessionTouchedRecently
)

// TouchSession records that the session id was used now and pushes back its
// idle expiry, but writes only when the last record is older than minAge: at
// most one write per minAge, whatever the traffic and however many servers
// share the database. It reports whether it wrote, and whether the session
// is still live, which tells a server holding the session in memory when its
// row went without a notification (a DELETE with the triggers off); a gone
// session is no error.
func (s *Store) TouchSession(ctx context.Context, id SessionID, minAge time.Duration) (Touch, error) {
	var wrote, live bool
	if err := s.pool.QueryRow(ctx, s.q.touchSession, string(id), minAge.Seconds()).Scan(&wrote, &live); err != nil {
		return SessionGone, fmt.Errorf("renewing session: %w", err)
	}
	switch {
	case !live:
		return SessionGone, nil
	case wrote:
		return SessionTouched, nil
	default:
		return SessionTouchedRecently, nil
	}
}

// DeleteSessionByHandle ends the session with that handle, whoever's it is,
// for an admin. It returns whose it was, or "" when there was none.
func (s *Store) DeleteSessionByHandle(ctx context.Context, handle Handle) (UserID, error) {
	if !validUUID(string(handle)) {
		return "", nil
	}
	var owner UserID
	err := s.pool.QueryRow(ctx, s.q.deleteSessionByHandle, string(handle)).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("deleting session: %w", err)
	}
	return owner, nil
}

// DeleteUserSessionByHandle ends the session with that handle only if it is
// userID's, so users can end their own sessions and no one else's; it
// reports whether there was one.
func (s *Store) DeleteUserSessionByHandle(ctx context.Context, userID UserID, handle Handle) (bool, error) {
	if !validUUID(string(handle)) || !validUUID(string(userID)) {
		return false, nil
	}
	tag, err := s.pool.Exec(ctx, s.q.deleteSessionByHandleOfUser, string(handle), string(userID))
	if err != nil {
		return false, fmt.Errorf("deleting session: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// DeleteOtherSessions ends every session of a user except the one of
// keepToken, and returns how many it ended.
func (s *Store) DeleteOtherSessions(ctx context.Context, userID UserID, keepToken string) (int64, error) {
	if !validUUID(string(userID)) {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, s.q.deleteOtherSessions, string(userID), string(HashToken(keepToken)))
	if err != nil {
		return 0, fmt.Errorf("deleting other sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

// DeleteSession ends the session of token; ending one that does not exist is not an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	if !ValidToken(token) {
		return nil
	}
	if _, err := s.pool.Exec(ctx, s.q.deleteSession, string(HashToken(token))); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session of a user and returns how many there
// were; an unknown user has none.
func (s *Store) DeleteUserSessions(ctx context.Context, userID UserID) (int64, error) {
	if !validUUID(string(userID)) {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, s.q.deleteUserSessions, string(userID))
	if err != nil {
		return 0, fmt.Errorf("deleting sessions of user: %w", err)
	}
	return tag.RowsAffected(), nil
}

// GetUserSessions lists a user's live sessions, most recently used first;
// an unknown user has none.
func (s *Store) GetUserSessions(ctx context.Context, userID UserID) ([]Session, error) {
	if !validUUID(string(userID)) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, s.q.getUserSessions, string(userID))
	if err != nil {
		return nil, fmt.Errorf("listing sessions of user: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowToStructByName[sessionRow])
	if err != nil {
		return nil, fmt.Errorf("listing sessions of user: %w", err)
	}
	out := make([]Session, len(found))
	for i, row := range found {
		out[i] = row.session()
	}
	return out, nil
}

// CleanupExpiredSessions deletes expired sessions in batches of the
// configured size, each its own short statement, and returns how many it
// removed. It stops early, returning the count so far, when ctx ends.
func (s *Store) CleanupExpiredSessions(ctx context.Context) (int64, error) {
	return s.deleteInBatches(ctx, s.q.cleanupSessions, "deleting expired sessions")
}

// batchTimeout bounds one batch of a cleanup.
const batchTimeout = 30 * time.Second

// sessionRow is a session joined with its user, as sessionColumns name
// the columns.
type sessionRow struct {
	ID                 SessionID  `db:"id"`
	Handle             Handle     `db:"handle"`
	ExpiresAt          time.Time  `db:"expires_at"`
	IdleExpiresAt      *time.Time `db:"idle_expires_at"`
	IdleTimeoutSeconds *int32     `db:"idle_timeout_seconds"`
	CreatedAt          time.Time  `db:"created_at"`
	LastSeenAt         time.Time  `db:"last_seen_at"`
	UserAgent          string     `db:"user_agent"`
	IP                 string     `db:"ip"`
	UserID             UserID     `db:"user_id"`
	Username           string     `db:"username"`
	IsAdmin            bool       `db:"is_admin"`
	UserCreatedAt      time.Time  `db:"user_created_at"`
	UserUpdatedAt      time.Time  `db:"user_updated_at"`
	CredentialVersion  int64      `db:"credential_version"`
	HasPassword        bool       `db:"has_password"`
	CheckedAt          time.Time  `db:"checked_at"`
	SecondFactor       bool       `db:"second_factor"`
	Groups             []string   `db:"groups"`
	Method             string     `db:"auth_method"`
	Email              string     `db:"email"`
	EmailVerified      bool       `db:"email_verified"`
}

func (r sessionRow) session() Session {
	sess := Session{
		ID: r.ID, Handle: r.Handle, ExpiresAt: r.ExpiresAt, IdleExpiresAt: r.IdleExpiresAt,
		CreatedAt: r.CreatedAt, LastSeenAt: r.LastSeenAt, UserAgent: r.UserAgent, IP: r.IP, CheckedAt: r.CheckedAt,
		SecondFactor: r.SecondFactor, Method: r.Method,
		User: User{ID: r.UserID, Username: r.Username, IsAdmin: r.IsAdmin, CreatedAt: r.UserCreatedAt,
			UpdatedAt: r.UserUpdatedAt, CredentialVersion: r.CredentialVersion, HasPassword: r.HasPassword, Groups: r.Groups,
			Email: r.Email, EmailVerified: r.EmailVerified},
	}
	if r.IdleTimeoutSeconds != nil {
		sess.IdleTimeout = time.Duration(*r.IdleTimeoutSeconds) * time.Second
	}
	return sess
}

// collectSession reads the one session a query returns, by column name;
// pgx.ErrNoRows when there is none.
func collectSession(rows pgx.Rows, err error) (*Session, error) {
	if err != nil {
		return nil, err
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[sessionRow])
	if err != nil {
		return nil, err
	}
	sess := row.session()
	return &sess, nil
}

// trimUTF8 shortens s to at most n bytes without splitting a character and
// drops invalid UTF-8 and NUL bytes, which PostgreSQL text refuses.
func trimUTF8(s string, n int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, ""), "\x00", "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
