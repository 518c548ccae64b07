package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgsession/caddy-pgsession/migrations"
)

// DefaultCleanupBatchSize is how many expired sessions one DELETE removes;
// small batches keep each transaction short so cleanup never holds locks
// that a login or a request would wait on.
const DefaultCleanupBatchSize = 1000

// Errors callers tell apart with errors.Is. A missing session is not among
// them: GetSession returns a nil session and a nil error for it, so any
// error from GetSession means the database could not answer.
var (
	// ErrBusy means too many password hashes are being computed at once and
	// this one waited its turn for too long; the caller should answer 503.
	ErrBusy               = errors.New("too many password checks at once")
	ErrUserNotFound       = errors.New("user not found")
	ErrUserExists         = errors.New("a user with that name already exists")
	ErrInvalidCredentials = errors.New("invalid username or password")
	// ErrUnknownUser is the ErrInvalidCredentials of a name that is no
	// account's, which is often a password typed into the name field: a
	// caller may log the name of any other failure, but not this one's.
	ErrUnknownUser = fmt.Errorf("%w: no such user", ErrInvalidCredentials)
	// ErrCredentialsChanged means the user's password was set between the
	// check of the old one and the creation of a session: the login must
	// fail as if the password had been wrong.
	ErrCredentialsChanged = errors.New("the user's credentials changed since they were verified")
)

// Options configure a Store; the zero value works.
type Options struct {
	// Schema is the PostgreSQL schema holding the tables. Default: migrations.DefaultSchema.
	Schema string
	// CleanupBatchSize is how many expired rows each cleanup DELETE removes. Default: DefaultCleanupBatchSize.
	CleanupBatchSize int
	// MaxConcurrentHashes bounds the password hashes computed at once: each
	// argon2id takes 19 MiB and milliseconds of CPU, and a flood of logins
	// must not exhaust memory or starve other requests. Default: the number
	// of CPUs.
	MaxConcurrentHashes int
	// HashWait is how long a password check waits for its turn before
	// ErrBusy. Default: 2s.
	HashWait time.Duration
	// Argon2 is the cost of new password hashes, and of the fake hash an
	// unknown user is checked against; a stored hash of lower cost is
	// upgraded at its user's next login. Default: DefaultArgon2, OWASP's
	// first recommended setting. Tests use a cheap one.
	Argon2 Argon2Params
	// HistoryRetention is how long sign-in attempts are kept: each cleanup
	// round deletes older ones. NoHistory records none. Default:
	// DefaultHistoryRetention.
	HistoryRetention time.Duration
}

// Store is the PostgreSQL session and user store. It is safe for concurrent use.
type Store struct {
	pool      *pgxpool.Pool
	schema    string
	batchSize int
	q         queries
	hashSlots chan struct{}
	hashWait  time.Duration
	argon2    Argon2Params
	fakeHash  func() string // of a password nobody has, at argon2's cost
	timing    checkTiming
	calibrate sync.Once
	history   time.Duration // HistoryRetention, or NoHistory
}

// New returns a Store using pool. It does not touch the database; call
// Migrate to install the schema.
func New(pool *pgxpool.Pool, opts Options) (*Store, error) {
	if pool == nil {
		return nil, errors.New("store needs a connection pool")
	}
	if opts.Schema == "" {
		opts.Schema = migrations.DefaultSchema
	}
	if err := migrations.ValidateSchema(opts.Schema); err != nil {
		return nil, err
	}
	if opts.CleanupBatchSize <= 0 {
		opts.CleanupBatchSize = DefaultCleanupBatchSize
	}
	if opts.MaxConcurrentHashes <= 0 {
		opts.MaxConcurrentHashes = runtime.GOMAXPROCS(0)
	}
	if opts.HashWait <= 0 {
		opts.HashWait = 2 * time.Second
	}
	if opts.Argon2 == (Argon2Params{}) {
		opts.Argon2 = DefaultArgon2
	}
	if err := opts.Argon2.validate(); err != nil {
		return nil, err
	}
	if opts.HistoryRetention == 0 {
		opts.HistoryRetention = DefaultHistoryRetention
	}
	params := opts.Argon2
	q := newQueries(opts.Schema)
	learnStatementNames(q)
	return &Store{
		pool:      pool,
		schema:    opts.Schema,
		batchSize: opts.CleanupBatchSize,
		q:         q,
		hashSlots: make(chan struct{}, opts.MaxConcurrentHashes),
		hashWait:  opts.HashWait,
		argon2:    params,
		history:   max(opts.HistoryRetention, NoHistory),
		fakeHash: sync.OnceValue(func() string {
			h, err := params.hash("caddy-pgsession timing defence")
			if err != nil {
				panic(err) // only crypto/rand failing, which crashes the program anyway
			}
			return h
		}),
	}, nil
}

// hashSlot waits for a turn to compute a password hash and returns the
// function that ends it, or ErrBusy after HashWait.
func (s *Store) hashSlot(ctx context.Context) (func(), error) {
	select {
	case s.hashSlots <- struct{}{}:
		return func() { <-s.hashSlots }, nil
	default:
	}
	timer := time.NewTimer(s.hashWait)
	defer timer.Stop()
	select {
	case s.hashSlots <- struct{}{}:
		return func() { <-s.hashSlots }, nil
	case <-timer.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Schema returns the PostgreSQL schema the store uses.
func (s *Store) Schema() string { return s.schema }

// Migrate installs or upgrades the schema and returns how many migrations it
// applied. It also gives usernames from before the username profile their
// key, and those from before the look-alike check their skeletons (see
// LegacyUsernames).
func (s *Store) Migrate(ctx context.Context) (int, error) {
	n, err := migrations.Migrate(ctx, s.pool, s.schema)
	if err != nil {
		return n, err
	}
	if err := s.keyUsernames(ctx); err != nil {
		return n, err
	}
	return n, s.fillSkeletons(ctx)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("pinging database: %w", err)
	}
	return nil
}

// queries holds every SQL statement with the schema spelled out, built once
// so the request path does no string work and pgx can cache the statements.
type queries struct {
	createSession, trimSessions, getSession, deleteSession, cleanupSessions string
	checkSession                                                            string
	touchSession, deleteSessionByHandle, deleteSessionByHandleOfUser        string
	deleteUserSessions, getUserSessions, deleteOtherSessions                string
	createUser, getUserByName, getUserByID, listUsers, setAdmin             string
	deleteUser, setPassword, setPasswordHash, getUserCredential             string
	keepSession, reserveAttempt, releaseAttempt, clearLoginFailures         string
	cleanupLoginAttempts, anyAdmin, unkeyedUsers, setUsernameKey            string
	claimCleanup, notify                                                    string
	signInByName, signInByID, signInHistory, trimSignInHistory              string
	countSessions, topUsers                                                 string
	// The second factor (totp.go, pending.go).
	setTOTPSecret, getTOTP, confirmTOTP, acceptTOTPStep, deleteTOTP       string
	deleteRecoveryCodes, addRecoveryCode, useRecoveryCode                 string
	bumpCredentials, deletePendingOfUser                                  string
	deletePasskeysOfUser, userFactors                                     string
	createPending, getPending, failPending, deletePending, cleanupPending string
	finishPending                                                         string
	addPasskey, userPasskeys, deletePasskey, usePasskey, webauthnHandle   string
	userByWebauthnHandle, addCeremonyKey, ceremonyKey                     string
	useChallenge, cleanupChallenges                                       string
	// Look-alike names (lookalike.go).
	lockUsernames, lookalikeOf, unskeletonedUsers, setSkeletons, legacyUsers string
	// Groups (groups.go).
	createGroup, deleteGroup, listGroups, joinGroups, leaveGroups, userGroups string
	// API tokens (tokens.go).
	createAPIToken, listAPITokens, revokeAPIToken, revokeAllAPITokens string
	checkAPIToken, touchAPIToken, cleanupAPITokens, apiTokenOwner     string
	// Step-up (stepup.go).
	stepUpSession string
	// Identity providers (identities.go, invitations.go, identity_flows.go, identity_users.go).
	lockSignInWays, otherSignInWays, linkIdentity, userByIdentity, listIdentities string
	unlinkIdentity, leaveProviderGroups, syncProviderGroups                       string
	allowIdentity, takeInvitation, listInvitations, withdrawInvitations           string
	cleanupInvitations, beginFlow, takeFlow, cleanupFlows                         string
	// Invitations to create an account (user_invitations.go).
	missingGroup, createUserInvitation, peekUserInvitation, userInvitationByID string
	useInvitation, useInvitationByID, invitationUsedBy, joinInvitedGroups      string
	listUserInvitations, revokeUserInvitation, cleanupUserInvitations          string
	// The audit trail (audit.go).
	recordAudit, auditLog, cleanupAudit string
	// Email addresses and their links (email.go, account_tokens.go).
	setEmail, userByVerifiedEmail, userByEmail, verifyEmail, lockUserVersion, deleteAccountTokens, createAccountToken string
	peekAccountToken, takeAccountToken, countLinksSent, recordLinkSent                                                string
	cleanupAccountTokens, cleanupLinksSent                                                                            string
}

// userColumns are what userRow reads from users, by name.
const userColumns = `id::text AS id, username, is_admin, created_at, updated_at, credential_version,
	password_hash IS NOT NULL AS has_password, {groups_of_users} AS groups,
	coalesce(email, '') AS email, email_verified_at IS NOT NULL AS email_verified`

// userColumnsOfU are userColumns of a users table named u in a join.
const userColumnsOfU = `u.id::text AS id, u.username, u.is_admin, u.created_at, u.updated_at, u.credential_version,
	u.password_hash IS NOT NULL AS has_password, {groups_of_u} AS groups,
	coalesce(u.email, '') AS email, u.email_verified_at IS NOT NULL AS email_verified`

// sessionColumns are what sessionRow reads, by name, from sessions s joined
// with users u.
const sessionColumns = `s.id, s.handle::text AS handle, s.expires_at, s.idle_expires_at, s.idle_timeout_seconds,
	s.created_at, s.last_seen_at, s.user_agent, s.ip, u.id::text AS user_id, u.username, u.is_admin,
	u.created_at AS user_created_at, u.updated_at AS user_updated_at, u.credential_version,
	u.password_hash IS NOT NULL AS has_password, now() AS checked_at,
	{has_second_factor} AS second_factor, {groups_of_u} AS groups, s.auth_method,
	coalesce(u.email, '') AS email, u.email_verified_at IS NOT NULL AS email_verified`

// liveSession is the condition a session row s, joined with its user u, must
// meet to count: not expired, not idle too long, and created under the user's
// current credentials.
const liveSession = `s.expires_at > now() AND (s.idle_expires_at IS NULL OR s.idle_expires_at > now())
	AND s.credential_version = u.credential_version`

// byName finds a user by name: by the profile key ($1), or, for a legacy row
// without one, by lower(username) ($2); a keyed row wins over a legacy one.
const byName = `(username_key = $1 OR (username_key IS NULL AND lower(username) = lower($2)))`

func newQueries(schema string) queries {
	// The column lists hold expressions of their own to spell out first,
	// since a Replacer does not look again at what it put in.
	users := pgx.Identifier{schema, "users"}.Sanitize()
	inner := strings.NewReplacer("{has_second_factor}", hasSecondFactor(schema),
		"{groups_of_u}", groupsOf(schema, "u.id"), "{groups_of_users}", groupsOf(schema, users+".id"))
	r := strings.NewReplacer(
		"{users}", users,
		"{sessions}", pgx.Identifier{schema, "sessions"}.Sanitize(),
		"{attempts}", pgx.Identifier{schema, "login_attempts"}.Sanitize(),
		"{maintenance}", pgx.Identifier{schema, "maintenance"}.Sanitize(),
		"{history}", pgx.Identifier{schema, "sign_in_history"}.Sanitize(),
		"{totp}", pgx.Identifier{schema, "totp_secrets"}.Sanitize(),
		"{recovery_codes}", pgx.Identifier{schema, "recovery_codes"}.Sanitize(),
		"{pending}", pgx.Identifier{schema, "pending_logins"}.Sanitize(),
		"{reserve_attempt}", pgx.Identifier{schema, "reserve_attempt"}.Sanitize(),
		"{groups}", pgx.Identifier{schema, "groups"}.Sanitize(),
		"{user_groups}", pgx.Identifier{schema, "user_groups"}.Sanitize(),
		"{columns}", inner.Replace(sessionColumns),
		"{has_second_factor}", hasSecondFactor(schema),
		"{groups_of_u}", groupsOf(schema, "u.id"),
		"{passkeys}", pgx.Identifier{schema, "passkeys"}.Sanitize(),
		"{ceremony_keys}", pgx.Identifier{schema, "ceremony_keys"}.Sanitize(),
		"{used_challenges}", pgx.Identifier{schema, "used_challenges"}.Sanitize(),
		"{api_tokens}", pgx.Identifier{schema, "api_tokens"}.Sanitize(),
		"{identities}", pgx.Identifier{schema, "identities"}.Sanitize(),
		"{identity_invitations}", pgx.Identifier{schema, "identity_invitations"}.Sanitize(),
		"{identity_flows}", pgx.Identifier{schema, "identity_flows"}.Sanitize(),
		"{user_invitations}", pgx.Identifier{schema, "user_invitations"}.Sanitize(),
		"{account_tokens}", pgx.Identifier{schema, "account_tokens"}.Sanitize(),
		"{account_links_sent}", pgx.Identifier{schema, "account_links_sent"}.Sanitize(),
		"{user_columns}", inner.Replace(userColumns),
		"{user_columns_u}", inner.Replace(userColumnsOfU),
		"{live}", liveSession,
		"{by_name}", byName,
	)
	q := queries{
		// createSession inserts only while the user's credentials are still
		// the ones verified ($7), and returns the row joined with its user in
		// the same round trip.
		createSession: r.Replace(`WITH s AS (
				INSERT INTO {sessions} (id, user_id, expires_at, user_agent, ip, idle_timeout_seconds, idle_expires_at,
					credential_version, auth_method)
				SELECT $1, u.id, now() + make_interval(secs => $3), $4, $5, $6::integer,
					now() + make_interval(secs => $6::integer), u.credential_version, $8
				FROM {users} u WHERE u.id = $2 AND u.credential_version = $7
				RETURNING *)
			SELECT {columns} FROM s JOIN {users} u ON u.id = s.user_id`),
		// trimSessions keeps a user's $2 most recently used sessions.
		trimSessions: r.Replace(`DELETE FROM {sessions} WHERE id IN (
				SELECT id FROM {sessions} WHERE user_id = $1
				ORDER BY last_seen_at DESC, created_at DESC OFFSET $2)`),
		getSession: r.Replace(`SELECT {columns}
			FROM {sessions} s JOIN {users} u ON u.id = s.user_id
			WHERE s.id = $1 AND {live}`),
		// checkSession is the gate's lookup: only what a decision needs, in
		// the order CheckSession scans it, scanned without reflection.
		checkSession: r.Replace(`SELECT u.id::text, u.username, u.is_admin, {has_second_factor},
				s.expires_at, s.idle_expires_at, coalesce(s.idle_timeout_seconds, 0),
				s.last_seen_at, now(), {groups_of_u}, s.auth_method
			FROM {sessions} s JOIN {users} u ON u.id = s.user_id
			WHERE s.id = $1 AND {live}`),
		notify: `SELECT pg_notify($1, $2)`,
		// claimCleanup moves the round's start forward only if the last one
		// started at least $1 seconds ago, so one server runs each round.
		claimCleanup: r.Replace(`UPDATE {maintenance} SET last_started = now(), last_server = $2
			WHERE task = 'cleanup' AND last_started <= now() - make_interval(secs => $1)`),
		// touchSession writes only when the last write is older than $2
		// seconds, so servers racing to renew one session update it once,
		// and says in the same round trip whether the session is still
		// live, as the statement's snapshot shows it: a row gone without
		// a notification is told from one another server just renewed.
		touchSession: r.Replace(`WITH touched AS (
				UPDATE {sessions} SET last_seen_at = now(),
					idle_expires_at = now() + make_interval(secs => idle_timeout_seconds)
				WHERE id = $1 AND last_seen_at < now() - make_interval(secs => $2)
					AND expires_at > now() AND (idle_expires_at IS NULL OR idle_expires_at > now())
				RETURNING 1)
			SELECT EXISTS (SELECT FROM touched) AS wrote,
				EXISTS (SELECT FROM {sessions} s JOIN {users} u ON u.id = s.user_id WHERE s.id = $1 AND {live}) AS live`),
		deleteSession:               r.Replace(`DELETE FROM {sessions} WHERE id = $1`),
		deleteSessionByHandle:       r.Replace(`DELETE FROM {sessions} WHERE handle = $1 RETURNING user_id::text`),
		deleteSessionByHandleOfUser: r.Replace(`DELETE FROM {sessions} WHERE handle = $1 AND user_id = $2`),
		cleanupSessions: r.Replace(`DELETE FROM {sessions} WHERE id IN (
				(SELECT id FROM {sessions} WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)
				UNION
				(SELECT id FROM {sessions} WHERE idle_expires_at <= now() ORDER BY idle_expires_at LIMIT $1)
				LIMIT $1)`),
		deleteUserSessions: r.Replace(`DELETE FROM {sessions} WHERE user_id = $1`),
		getUserSessions: r.Replace(`SELECT {columns}
			FROM {sessions} s JOIN {users} u ON u.id = s.user_id
			WHERE s.user_id = $1 AND {live}
			ORDER BY s.last_seen_at DESC, s.created_at DESC`),
		deleteOtherSessions: r.Replace(`DELETE FROM {sessions} WHERE user_id = $1 AND id <> $2`),
		// keepSession carries the session a password change was made from
		// over to the new credentials.
		keepSession: r.Replace(`UPDATE {sessions} SET credential_version = $3 WHERE user_id = $1 AND id = $2`),
		getUserByName: r.Replace(`SELECT {user_columns} FROM {users} WHERE {by_name}
			ORDER BY username_key IS NULL LIMIT 1`),
		getUserByID: r.Replace(`SELECT {user_columns} FROM {users} WHERE id = $1`),
		listUsers:   r.Replace(`SELECT {user_columns} FROM {users} ORDER BY coalesce(username_key, lower(username))`),
		deleteUser: r.Replace(`DELETE FROM {users} WHERE id = (
				SELECT id FROM {users} WHERE {by_name} ORDER BY username_key IS NULL LIMIT 1)`),
		// setPassword moves the user to new credentials: every session made
		// under the old ones stops counting at once.
		setPassword: r.Replace(`UPDATE {users} SET password_hash = $2, updated_at = now(),
				credential_version = credential_version + 1
			WHERE id = $1 RETURNING credential_version`),
		// setPasswordHash upgrades an old hash only if nobody changed it
		// meanwhile; the password is the same, so the sessions stay.
		setPasswordHash: r.Replace(`UPDATE {users} SET password_hash = $3 WHERE id = $1 AND password_hash = $2`),
		setAdmin:        r.Replace(`UPDATE {users} SET is_admin = $2, updated_at = now() WHERE id = $1`),
		// getUserCredential reads a user without a password as an empty hash.
		getUserCredential: r.Replace(`SELECT {user_columns}, coalesce(password_hash, '') AS password_hash FROM {users} WHERE {by_name}
			ORDER BY username_key IS NULL LIMIT 1`),
		unkeyedUsers:   r.Replace(`SELECT id::text AS id, username FROM {users} WHERE username_key IS NULL ORDER BY created_at, id`),
		setUsernameKey: r.Replace(`UPDATE {users} SET username_key = $2 WHERE id = $1 AND username_key IS NULL`),
		anyAdmin:       r.Replace(`SELECT EXISTS (SELECT 1 FROM {users} WHERE is_admin)`),
		reserveAttempt: r.Replace(`SELECT attempt_id, account_count, ip_count, retry_after
			FROM {reserve_attempt}($1, $2, $3, $4, $5, $6)`),
		releaseAttempt:     r.Replace(`DELETE FROM {attempts} WHERE id = $1`),
		clearLoginFailures: r.Replace(`DELETE FROM {attempts} WHERE username_key = $1 AND kind = 'login'`),
		// countSessions counts by what cleanupSessions deletes and by the
		// UTC day, whatever the server's time zone.
		countSessions: r.Replace(`SELECT count(*) FILTER (WHERE {live}) AS active,
				count(*) FILTER (WHERE s.expires_at <= now() OR s.idle_expires_at <= now()) AS expired,
				count(*) FILTER (WHERE s.created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
					AS created_today
			FROM {sessions} s JOIN {users} u ON u.id = s.user_id`),
		topUsers: r.Replace(`SELECT u.username, count(*) AS sessions
			FROM {sessions} s JOIN {users} u ON u.id = s.user_id
			WHERE {live} GROUP BY u.id, u.username ORDER BY sessions DESC, u.username LIMIT $1`),
		cleanupLoginAttempts: r.Replace(`DELETE FROM {attempts} WHERE id IN (
				SELECT id FROM {attempts} WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)`),
		// The sign-in history is written only for an account that exists:
		// the INSERT takes the user's id from users, so a name no account
		// has inserts nothing and is never stored. Its commit does not wait
		// for the WAL to reach the disk (synchronous_commit off, for this
		// transaction only): a login is not slowed by a flush, and a failed
		// login for an account, which writes a row, takes no measurably
		// longer than one for an unknown name, which writes none. A crash
		// may lose the last fraction of a second of history.
		signInByName: r.Replace(`INSERT INTO {history} (user_id, ip, user_agent, outcome, factor)
			SELECT id, $3, $4, $5, $6 FROM {users}, set_config('synchronous_commit', 'off', true)
			WHERE {by_name} ORDER BY username_key IS NULL LIMIT 1`),
		signInByID: r.Replace(`INSERT INTO {history} (user_id, ip, user_agent, outcome, factor)
			SELECT id, $2, $3, $4, $5 FROM {users}, set_config('synchronous_commit', 'off', true) WHERE id = $1`),
		signInHistory: r.Replace(`SELECT attempted_at, ip, user_agent, outcome, coalesce(factor, '') AS factor FROM {history}
			WHERE user_id = $1 ORDER BY attempted_at DESC, id DESC LIMIT $2`),
		trimSignInHistory: r.Replace(`DELETE FROM {history} WHERE id IN (
				SELECT id FROM {history} WHERE attempted_at <= now() - make_interval(secs => $2)
				ORDER BY attempted_at LIMIT $1)`),
	}
	secondFactorQueries(r, &q)
	passkeyQueries(r, &q)
	lookalikeQueries(r, &q)
	groupQueries(r, &q)
	apiTokenQueries(r, &q)
	stepUpQueries(r, &q)
	identityQueries(r, &q)
	userInvitationQueries(r, &q)
	emailQueries(r, &q)
	auditQueries(schema, &q)
	return q
}

// queryAll runs q and reads every row into a T by column name; what says
// what was being read, in its errors.
func queryAll[T any](ctx context.Context, s *Store, what, q string, args ...any) ([]T, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[T])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
