package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// MaxUserAgentLength caps what is kept of a User-Agent header; enough to
// recognise a device, too little to fill the table with junk.
const MaxUserAgentLength = 256

// Session is one login of one user.
type Session struct {
	// ID is the hex SHA-256 of the session's token, never the token itself.
	ID string
	// Handle names the session to users and admins (a UUID); unlike ID it
	// reveals nothing about the token.
	Handle string
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
}

// NewSession describes a session to create.
type NewSession struct {
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
	// ends their least recently used sessions.
	MaxPerUser int
	// UserAgent and IP describe the device, for a user looking at their sessions.
	UserAgent string
	IP        string
}

// CreateSession starts a session and returns its token, which exists only in
// the return value: the database keeps its hash. It returns
// ErrCredentialsChanged when the user's password was set after ns.User was
// read, and ErrUserNotFound when the user is gone.
func (s *Store) CreateSession(ctx context.Context, ns NewSession) (string, *Session, error) {
	if ns.Lifetime <= 0 {
		return "", nil, errors.New("creating session: lifetime must be positive")
	}
	if !validUUID(ns.User.ID) {
		return "", nil, fmt.Errorf("creating session: %w", ErrUserNotFound)
	}
	var idle *int32
	if ns.IdleTimeout > 0 {
		secs := int32(min(max(ns.IdleTimeout.Round(time.Second), time.Second), time.Duration(math.MaxInt32)*time.Second) / time.Second)
		idle = &secs
	}
	token := newToken()
	args := []any{HashToken(token), ns.User.ID, ns.Lifetime.Seconds(),
		trimUTF8(ns.UserAgent, MaxUserAgentLength), trimUTF8(ns.IP, 64), idle, ns.User.CredentialVersion}
	var sess *Session
	var err error
	if ns.MaxPerUser <= 0 {
		// One statement, one round trip: the common case pays for no transaction.
		sess, err = scanSession(s.pool.QueryRow(ctx, s.q.createSession, args...))
	} else {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			if sess, err = scanSession(tx.QueryRow(ctx, s.q.createSession, args...)); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, s.q.trimSessions, ns.User.ID, ns.MaxPerUser)
			return err
		})
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// The user is gone or their credentials moved on; which one is
		// asked only now, off the common path.
		if _, lookupErr := s.GetUser(ctx, ns.User.ID); errors.Is(lookupErr, ErrUserNotFound) {
			return "", nil, fmt.Errorf("creating session: %w", ErrUserNotFound)
		}
		return "", nil, fmt.Errorf("creating session: %w", ErrCredentialsChanged)
	}
	if err != nil {
		if pgErrorCode(err) == foreignKeyViolation {
			return "", nil, fmt.Errorf("creating session: %w", ErrUserNotFound)
		}
		return "", nil, fmt.Errorf("creating session: %w", err)
	}
	return token, sess, nil
}

// GetSession returns the live session for token. A token that is malformed,
// unknown or expired gives (nil, nil) without an error, and a malformed one
// costs no query; an error always means the database failed.
func (s *Store) GetSession(ctx context.Context, token string) (*Session, error) {
	if !ValidToken(token) {
		return nil, nil
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, s.q.getSession, HashToken(token)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up session: %w", err)
	}
	return sess, nil
}

// GetSessionByID returns the live session whose id (the token's hash,
// Session.ID) is id; nil with a nil error when there is none. It serves a
// server that must check again a session it already knows, without the token.
func (s *Store) GetSessionByID(ctx context.Context, id string) (*Session, error) {
	sess, err := scanSession(s.pool.QueryRow(ctx, s.q.getSession, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up session: %w", err)
	}
	return sess, nil
}

// TouchSession records that the session of id (its hash, Session.ID) was
// used now and pushes back its idle expiry, but writes only when the last
// record is older than minAge: at most one write per minAge, whatever the
// traffic and however many servers share the database. It reports whether
// it wrote.
func (s *Store) TouchSession(ctx context.Context, id string, minAge time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, s.q.touchSession, id, minAge.Seconds())
	if err != nil {
		return false, fmt.Errorf("renewing session: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// DeleteSessionByHandle ends the session with that handle. With a userID it
// ends it only if it belongs to that user, so a user can end only their own.
// It reports whether a session was ended.
func (s *Store) DeleteSessionByHandle(ctx context.Context, handle, userID string) (bool, error) {
	if !validUUID(handle) {
		return false, nil
	}
	var tag pgconn.CommandTag
	var err error
	if userID == "" {
		tag, err = s.pool.Exec(ctx, s.q.deleteSessionByHandle, handle)
	} else if validUUID(userID) {
		tag, err = s.pool.Exec(ctx, s.q.deleteSessionByHandleOfUser, handle, userID)
	} else {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("deleting session: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// DeleteOtherSessions ends every session of a user except the one of
// keepToken, and returns how many it ended.
func (s *Store) DeleteOtherSessions(ctx context.Context, userID, keepToken string) (int64, error) {
	if !validUUID(userID) {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, s.q.deleteOtherSessions, userID, HashToken(keepToken))
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
	if _, err := s.pool.Exec(ctx, s.q.deleteSession, HashToken(token)); err != nil {
		return fmt.Errorf("deleting session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session of a user and returns how many there were.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) (int64, error) {
	if !validUUID(userID) {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, s.q.deleteUserSessions, userID)
	if err != nil {
		return 0, fmt.Errorf("deleting sessions of user: %w", err)
	}
	return tag.RowsAffected(), nil
}

// GetUserSessions lists a user's live sessions, most recently used first.
func (s *Store) GetUserSessions(ctx context.Context, userID string) ([]Session, error) {
	if !validUUID(userID) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, s.q.getUserSessions, userID)
	if err != nil {
		return nil, fmt.Errorf("listing sessions of user: %w", err)
	}
	defer rows.Close()
	var out []Session
	for rows.Next() {
		sess, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("listing sessions of user: %w", err)
		}
		out = append(out, *sess)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing sessions of user: %w", err)
	}
	return out, nil
}

// CleanupExpiredSessions deletes expired sessions in batches of the
// configured size, each its own short statement, and returns how many it
// removed. It stops early, returning the count so far, when ctx ends.
func (s *Store) CleanupExpiredSessions(ctx context.Context) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, s.q.cleanupSessions, s.batchSize)
		if err != nil {
			return total, fmt.Errorf("deleting expired sessions: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(s.batchSize) {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

func scanSession(row pgx.Row) (*Session, error) {
	var sess Session
	var idleSeconds *int32
	err := row.Scan(&sess.ID, &sess.Handle, &sess.ExpiresAt, &sess.IdleExpiresAt, &idleSeconds, &sess.CreatedAt, &sess.LastSeenAt,
		&sess.UserAgent, &sess.IP, &sess.User.ID, &sess.User.Username, &sess.User.IsAdmin, &sess.User.CreatedAt,
		&sess.User.UpdatedAt, &sess.User.CredentialVersion, &sess.CheckedAt)
	if err != nil {
		return nil, err
	}
	if idleSeconds != nil {
		sess.IdleTimeout = time.Duration(*idleSeconds) * time.Second
	}
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
