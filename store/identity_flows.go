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

	"github.com/pgsession/caddy-pgsession/internal/sealed"
)

// A flow is a sign-in with a provider (or the account page's "Link")
// between the redirect to the provider and its callback, kept in the
// database so that the callback may reach any server and each tab's
// sign-in is its own. It is bound to a cookie of its own, the flow cookie,
// which one browser keeps for all its flows: the callback needs both the
// state the provider sends back and that cookie, so a state that leaked
// (in a log, a Referer) finishes nothing in another browser. The database
// holds only the hashes of the two, and the flow's secrets (the nonce, the
// PKCE verifier) sealed under a key derived from the cookie's value.

// IdentityFlowLifetime is how long a flow waits for its callback: enough
// for a slow sign-in at the provider, short enough that a forgotten tab's
// flow is gone before anyone finds it.
const IdentityFlowLifetime = 10 * time.Minute

// MaxFlowRedirectLength bounds the return address a flow keeps.
const MaxFlowRedirectLength = 2048

// ErrFlowNotFound means the callback's flow cannot be taken: unknown,
// expired, taken already, of another provider, or bound to another
// browser's flow cookie. Which of them is not told, to the caller nor to
// whoever sent the callback: each gets the same page offering to start
// again, and nobody learns whether a state they hold is still waiting.
var ErrFlowNotFound = errors.New("no such sign-in in progress, or it expired or was finished")

// IdentityFlow is a sign-in or link in progress.
type IdentityFlow struct {
	// Binding is the value of the browser's flow cookie. BeginIdentityFlow
	// keeps the one given when it has the shape of the store's tokens and
	// makes a new one otherwise; the caller sets the cookie to what it
	// returns.
	Binding string
	// State is the state parameter, made by BeginIdentityFlow: random,
	// sent to the provider and back.
	State    string
	Provider string
	// Nonce and PKCEVerifier are made by BeginIdentityFlow (256 random bits,
	// base64url, a verifier as RFC 7636 asks) unless given.
	Nonce        string
	PKCEVerifier string
	// Redirect is where the browser goes once signed in.
	Redirect string
	// LinkUserID is the signed-in user who asked to link the provider;
	// empty for a sign-in.
	LinkUserID UserID
	// InvitationID is the invitation to create an account that the
	// sign-in began on (see AcceptInvitationWithIdentity); empty for none.
	InvitationID string
	CreatedAt    time.Time
	ExpiresAt    time.Time
}

// flowKeyPurpose names the key a flow's secrets are sealed under.
const flowKeyPurpose = "caddy-pgsession identity flow v1"

// flowBox is the seal of the flows of one flow cookie.
func flowBox(binding string) (*sealed.Box, error) {
	key, err := sealed.DeriveKey(binding, flowKeyPurpose)
	if err != nil {
		return nil, err
	}
	return sealed.New(key)
}

// flowAD binds a sealed secret to its flow and to what it is, so neither
// opens as another's.
func flowAD(id SessionID, what string) []byte { return []byte(string(id) + " " + what) }

// validVerifier reports whether v is a PKCE code verifier (RFC 7636:
// 43 to 128 of A-Z a-z 0-9 - . _ ~).
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			return false
		}
	}
	return true
}

func flowQueries(r *strings.Replacer, q *queries) {
	q.beginFlow = r.Replace(`INSERT INTO {identity_flows} (id, binding, provider, nonce, pkce_verifier, redirect, link_user_id, expires_at,
			invitation_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8), $9)
		RETURNING created_at, expires_at`)
	// takeFlow deletes the flow as it reads it: of callbacks racing with
	// one state, the first takes the row and the others, waiting on its
	// lock, find none. A wrong binding or provider takes nothing, so it
	// cannot spoil the sign-in of the browser the flow belongs to.
	q.takeFlow = r.Replace(`DELETE FROM {identity_flows}
		WHERE id = $1 AND binding = $2 AND provider = $3 AND expires_at > now()
		RETURNING nonce, pkce_verifier, redirect, coalesce(link_user_id::text, '') AS link_user_id,
			coalesce(invitation_id::text, '') AS invitation_id, created_at, expires_at`)
	q.cleanupFlows = r.Replace(`DELETE FROM {identity_flows} WHERE id IN (
		SELECT id FROM {identity_flows} WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)`)
}

// BeginIdentityFlow records a flow for f.Provider, lasting
// IdentityFlowLifetime by the database's clock, and returns it with its
// state, binding, nonce and verifier: the caller sends the first and the
// last two to the provider and sets the flow cookie to the binding. It
// returns an *InputError for a bad provider, redirect or given secret, and
// ErrUserNotFound when f.LinkUserID names no user, ErrInvitationUnknown when
// f.InvitationID names no invitation.
func (s *Store) BeginIdentityFlow(ctx context.Context, f IdentityFlow) (*IdentityFlow, error) {
	if err := ValidProviderName(f.Provider); err != nil {
		return nil, err
	}
	if len(f.Redirect) > MaxFlowRedirectLength || !utf8.ValidString(f.Redirect) || strings.ContainsRune(f.Redirect, 0) {
		return nil, &InputError{fmt.Sprintf("a flow's return address is at most %d bytes of UTF-8", MaxFlowRedirectLength)}
	}
	if f.PKCEVerifier != "" && !validVerifier(f.PKCEVerifier) {
		return nil, &InputError{"a PKCE verifier is 43 to 128 of A-Z a-z 0-9 - . _ ~ (RFC 7636)"}
	}
	if len(f.Nonce) > 256 || !utf8.ValidString(f.Nonce) {
		return nil, &InputError{"a nonce is at most 256 bytes of UTF-8"}
	}
	var link any
	if f.LinkUserID != "" {
		if !validUUID(string(f.LinkUserID)) {
			return nil, ErrUserNotFound
		}
		link = string(f.LinkUserID)
	}
	var invitation any
	if f.InvitationID != "" {
		if !validUUID(f.InvitationID) {
			return nil, ErrInvitationUnknown
		}
		invitation = f.InvitationID
	}
	if !ValidToken(f.Binding) {
		f.Binding = newToken()
	}
	f.State = newToken()
	if f.Nonce == "" {
		f.Nonce = newToken()
	}
	if f.PKCEVerifier == "" {
		f.PKCEVerifier = newToken()
	}
	box, err := flowBox(f.Binding)
	if err != nil {
		return nil, fmt.Errorf("beginning a sign-in: %w", err)
	}
	id := HashToken(f.State)
	err = s.pool.QueryRow(ctx, s.q.beginFlow, string(id), string(HashToken(f.Binding)), f.Provider,
		box.Seal([]byte(f.Nonce), flowAD(id, "nonce")), box.Seal([]byte(f.PKCEVerifier), flowAD(id, "pkce_verifier")),
		f.Redirect, link, IdentityFlowLifetime.Seconds(), invitation).Scan(&f.CreatedAt, &f.ExpiresAt)
	if pgErrorCode(err) == pgerrcode.ForeignKeyViolation && pgConstraint(err) == "identity_flows_invitation_id_fkey" {
		return nil, ErrInvitationUnknown
	}
	if pgErrorCode(err) == pgerrcode.ForeignKeyViolation {
		return nil, ErrUserNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("beginning a sign-in: %w", err)
	}
	return &f, nil
}

// TakeIdentityFlow takes, once, the flow of provider whose state the
// callback brought, with the browser's flow cookie as binding, while it
// has not expired by the database's clock, and returns it with its
// secrets opened. ErrFlowNotFound otherwise; see it for why the cases are
// not told apart.
func (s *Store) TakeIdentityFlow(ctx context.Context, provider, state, binding string) (*IdentityFlow, error) {
	if ValidProviderName(provider) != nil || !ValidToken(state) || !ValidToken(binding) {
		return nil, ErrFlowNotFound
	}
	id := HashToken(state)
	type row struct {
		Nonce        []byte    `db:"nonce"`
		PKCEVerifier []byte    `db:"pkce_verifier"`
		Redirect     string    `db:"redirect"`
		LinkUserID   UserID    `db:"link_user_id"`
		InvitationID string    `db:"invitation_id"`
		CreatedAt    time.Time `db:"created_at"`
		ExpiresAt    time.Time `db:"expires_at"`
	}
	rows, err := s.pool.Query(ctx, s.q.takeFlow, string(id), string(HashToken(binding)), provider)
	var r row
	if err == nil {
		r, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[row])
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrFlowNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("finishing a sign-in: %w", err)
	}
	box, err := flowBox(binding)
	if err != nil {
		return nil, fmt.Errorf("finishing a sign-in: %w", err)
	}
	nonce, err := box.Open(r.Nonce, flowAD(id, "nonce"))
	if err != nil {
		return nil, fmt.Errorf("%w: its nonce does not open (the row was changed)", ErrFlowNotFound)
	}
	verifier, err := box.Open(r.PKCEVerifier, flowAD(id, "pkce_verifier"))
	if err != nil {
		return nil, fmt.Errorf("%w: its PKCE verifier does not open (the row was changed)", ErrFlowNotFound)
	}
	return &IdentityFlow{Binding: binding, State: state, Provider: provider, Nonce: string(nonce),
		PKCEVerifier: string(verifier), Redirect: r.Redirect, LinkUserID: r.LinkUserID,
		InvitationID: r.InvitationID, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}, nil
}

// CleanupIdentityFlows deletes flows that expired without their callback,
// in batches, and returns how many it removed.
func (s *Store) CleanupIdentityFlows(ctx context.Context) (int64, error) {
	return s.deleteInBatches(ctx, s.q.cleanupFlows, "deleting expired sign-ins with a provider")
}
