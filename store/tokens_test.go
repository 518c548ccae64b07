package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/internal/pgtest/migrated"
	"github.com/pgsession/caddy-pgsession/store"
)

func newAPIToken(tb testing.TB, s *store.Store, u *store.User, name string, paths ...string) (string, store.APIToken) {
	tb.Helper()
	token, t, err := s.CreateAPIToken(context.Background(), u.ID, name, time.Time{}, paths, false)
	require.NoError(tb, err)
	return token, t
}

func tokenIsLive(tb testing.TB, s *store.Store, token string) bool {
	tb.Helper()
	_, ok, err := s.CheckAPIToken(context.Background(), store.HashAPIToken(token))
	require.NoError(tb, err)
	return ok
}

func TestAPITokensCreateListRevoke(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")

	expires := time.Now().Add(30 * 24 * time.Hour)
	deploy, created, err := s.CreateAPIToken(ctx, alice.ID, "deploy", expires, []string{"/api/*", "*.json"}, false)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(deploy, "pgs_"), deploy[:4])
	assert.True(t, store.IsAPIToken(deploy))
	assert.Equal(t, "deploy", created.Name)
	assert.NotEmpty(t, created.Handle)
	backup, _ := newAPIToken(t, s, alice, "backup")
	bobs, _ := newAPIToken(t, s, bob, "deploy")
	assert.NotEqual(t, deploy, backup)
	assert.Zero(t, count(t, s, `SELECT count(*) FROM pgsession.api_tokens WHERE id IN ($1, $2, $3)`, deploy, backup, bobs),
		"the database keeps no token")
	assert.Equal(t, 3, count(t, s, `SELECT count(*) FROM pgsession.api_tokens WHERE id IN ($1, $2, $3)`,
		store.HashAPIToken(deploy), store.HashAPIToken(backup), store.HashAPIToken(bobs)), "only their hashes")

	list, err := s.ListAPITokens(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, list, 2, "only alice's")
	assert.Equal(t, "backup", list[0].Name, "newest first")
	assert.Zero(t, list[0].ExpiresAt, "no expiry")
	assert.Empty(t, list[0].Paths)
	assert.Zero(t, list[0].LastUsedAt, "never used")
	assert.Equal(t, created.Handle, list[1].Handle)
	assert.Equal(t, []string{"/api/*", "*.json"}, list[1].Paths)
	assert.WithinDuration(t, expires, list[1].ExpiresAt, time.Millisecond)
	for _, tok := range list {
		shown := fmt.Sprintf("%+v", tok)
		for _, secret := range []string{deploy, backup, string(store.HashAPIToken(deploy)), string(store.HashAPIToken(backup))} {
			assert.NotContains(t, shown, secret, "a listed token shows neither the token nor its hash")
		}
	}

	live, ok, err := s.CheckAPIToken(ctx, store.HashAPIToken(deploy))
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, alice.ID, live.UserID)
	assert.Equal(t, "alice", live.Username)
	assert.False(t, live.IsAdmin)
	assert.Equal(t, []string{"/api/*", "*.json"}, live.Paths)
	assert.WithinDuration(t, expires, live.ExpiresAt, time.Millisecond)
	assert.Zero(t, live.IdleExpiresAt, "a token has no idle timeout")
	assert.Empty(t, live.Groups)
	for _, g := range []string{"staff", "ops"} {
		_, err = s.CreateGroup(ctx, g)
		require.NoError(t, err)
	}
	require.NoError(t, s.AddToGroups(ctx, alice.ID, "staff", "ops"))
	live, _, err = s.CheckAPIToken(ctx, store.HashAPIToken(deploy))
	require.NoError(t, err)
	assert.Equal(t, []string{"ops", "staff"}, live.Groups, "a token acts with its user's groups")
	live, ok, err = s.CheckAPIToken(ctx, store.HashAPIToken(backup))
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, store.NoExpiry, live.ExpiresAt, "a token without expiry ends at NoExpiry")
	_, ok, err = s.CheckSession(ctx, store.HashAPIToken(backup))
	require.NoError(t, err)
	assert.False(t, ok, "a token is not a session")

	assert.ErrorIs(t, s.RevokeAPIToken(ctx, bob.ID, created.Handle), store.ErrTokenNotFound, "bob cannot revoke alice's token")
	assert.True(t, tokenIsLive(t, s, deploy))
	require.NoError(t, s.RevokeAPIToken(ctx, alice.ID, created.Handle))
	assert.False(t, tokenIsLive(t, s, deploy), "a revoked token is refused")
	assert.ErrorIs(t, s.RevokeAPIToken(ctx, alice.ID, created.Handle), store.ErrTokenNotFound, "revoked once")
	assert.ErrorIs(t, s.RevokeAPIToken(ctx, alice.ID, "not-a-handle"), store.ErrTokenNotFound)

	newAPIToken(t, s, alice, "deploy")
	n, err := s.RevokeAllAPITokens(ctx, alice.ID)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.False(t, tokenIsLive(t, s, backup))
	assert.True(t, tokenIsLive(t, s, bobs), "bob's token stays")
	list, err = s.ListAPITokens(ctx, alice.ID)
	require.NoError(t, err)
	assert.Empty(t, list)
}

func TestAPITokenNamesAndPathsAreChecked(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")

	_, first := newAPIToken(t, s, alice, "ci")
	_, _, err := s.CreateAPIToken(ctx, alice.ID, "ci", time.Time{}, nil, false)
	assert.ErrorIs(t, err, store.ErrTokenNameTaken)
	newAPIToken(t, s, bob, "ci")
	newAPIToken(t, s, alice, "CI")
	require.NoError(t, s.RevokeAPIToken(ctx, alice.ID, first.Handle))
	newAPIToken(t, s, alice, "ci")
	newAPIToken(t, s, alice, strings.Repeat("é", 64))
	newAPIToken(t, s, alice, "nightly backup (nas)")

	for _, name := range []string{"", strings.Repeat("x", 65), " ci", "ci ", "a\tb", "a\nb", "rtl\u202e", "zero\u200bwidth", "bad\xff"} {
		_, _, err := s.CreateAPIToken(ctx, alice.ID, name, time.Time{}, nil, false)
		var input *store.InputError
		assert.ErrorAs(t, err, &input, "name %q", name)
	}
	tooMany := make([]string, store.MaxAPITokenPaths+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("/p%d/*", i)
	}
	for _, paths := range [][]string{{"api/*"}, {""}, {"/a b"}, {"/ok", "relative"}, {"/\x00"}, {"/" + strings.Repeat("a", 256)}, tooMany} {
		_, _, err := s.CreateAPIToken(ctx, alice.ID, "paths", time.Time{}, paths, false)
		var input *store.InputError
		assert.ErrorAs(t, err, &input, "paths %q", paths)
	}
	_, created, err := s.CreateAPIToken(ctx, alice.ID, "paths", time.Time{}, tooMany[:store.MaxAPITokenPaths], false)
	require.NoError(t, err)
	assert.Len(t, created.Paths, store.MaxAPITokenPaths)

	for _, id := range []store.UserID{"00000000-0000-0000-0000-000000000000", "not-a-uuid"} {
		_, _, err := s.CreateAPIToken(ctx, id, "ci", time.Time{}, nil, false)
		assert.ErrorIs(t, err, store.ErrUserNotFound, "user %q", id)
	}
}

func TestAdminScopeIsForAdminsOnly(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	root, err := s.CreateUser(ctx, "root", "correct horse battery", true)
	require.NoError(t, err)

	_, _, err = s.CreateAPIToken(ctx, alice.ID, "admin", time.Time{}, nil, true)
	assert.ErrorIs(t, err, store.ErrNotAdmin)
	list, err := s.ListAPITokens(ctx, alice.ID)
	require.NoError(t, err)
	assert.Empty(t, list, "nothing was created")

	scoped, _, err := s.CreateAPIToken(ctx, root.ID, "admin", time.Time{}, nil, true)
	require.NoError(t, err)
	plain, _ := newAPIToken(t, s, root, "plain")
	live, ok, err := s.CheckAPIToken(ctx, store.HashAPIToken(scoped))
	require.NoError(t, err)
	require.True(t, ok)
	assert.True(t, live.IsAdmin)
	assert.True(t, live.AdminScope)
	live, _, err = s.CheckAPIToken(ctx, store.HashAPIToken(plain))
	require.NoError(t, err)
	assert.False(t, live.IsAdmin, "an admin's token without the scope is no admin")

	require.NoError(t, s.SetAdmin(ctx, root.ID, false))
	live, ok, err = s.CheckAPIToken(ctx, store.HashAPIToken(scoped))
	require.NoError(t, err)
	require.True(t, ok)
	assert.False(t, live.IsAdmin, "the scope counts only while its owner is an admin")
	assert.True(t, live.AdminScope)
}

func TestAPITokensExpire(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")

	for _, at := range []time.Time{time.Now().Add(-time.Minute), store.NoExpiry, store.NoExpiry.Add(time.Hour)} {
		_, _, err := s.CreateAPIToken(ctx, alice.ID, "ci", at, nil, false)
		var input *store.InputError
		assert.ErrorAs(t, err, &input, "expiry %v", at)
	}
	token, created, err := s.CreateAPIToken(ctx, alice.ID, "ci", time.Now().Add(time.Hour), nil, false)
	require.NoError(t, err)
	assert.True(t, tokenIsLive(t, s, token))

	exec(t, s, `UPDATE pgsession.api_tokens SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 second'
		WHERE handle = $1`, created.Handle)
	assert.False(t, tokenIsLive(t, s, token), "an expired token is refused")
	list, err := s.ListAPITokens(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, list, 1, "an expired token is still listed, so its owner sees why a script stopped")
	assert.True(t, list[0].ExpiresAt.Before(time.Now()))

	n, err := s.CleanupExpiredAPITokens(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "kept a week after it expired")
	exec(t, s, `UPDATE pgsession.api_tokens SET created_at = now() - interval '9 days', expires_at = now() - interval '8 days'`)
	newAPIToken(t, s, alice, "forever")
	n, err = s.CleanupExpiredAPITokens(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	list, err = s.ListAPITokens(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "forever", list[0].Name)
}

func TestIsAPIToken(t *testing.T) {
	s := newStore(t, store.Options{})
	token, _ := newAPIToken(t, s, newUser(t, s, "alice"), "ci")
	session := login(t, s, newUser(t, s, "bob"))
	body := token[len(store.APITokenPrefix):]
	for _, tc := range []struct {
		name, token string
		ok          bool
	}{
		{"issued", token, true},
		{"session token", session, false},
		{"session token with the prefix", "pgs_" + session, true},
		{"no prefix", body, false},
		{"other prefix", "pgx_" + body, false},
		{"upper-case prefix", "PGS_" + body, false},
		{"one short", token[:len(token)-1], false},
		{"one long", token + "A", false},
		{"empty", "", false},
		{"the prefix alone", "pgs_", false},
		{"padded", token[:len(token)-1] + "=", false},
		{"standard base64", token[:len(token)-1] + "+", false},
		{"space", token[:len(token)-1] + " ", false},
		{"non-ASCII", token[:len(token)-2] + "é", false},
		{"canonical zeros", "pgs_" + strings.Repeat("A", 43), true},
		{"non-zero padding bits", "pgs_" + strings.Repeat("A", 42) + "B", false},
	} {
		assert.Equal(t, tc.ok, store.IsAPIToken(tc.token), "%s: %q", tc.name, tc.token)
	}
	assert.False(t, store.ValidToken(token), "an API token is not a session cookie")
	assert.Len(t, token, store.APITokenLength)
}

// A token's id is a session id in form: memory keys it by the SHA-256 of
// what the request carried, and a notification's id parses to that key.
func TestAPITokenIDIsAMemoryKey(t *testing.T) {
	s := newStore(t, store.Options{})
	token, _ := newAPIToken(t, s, newUser(t, s, "alice"), "ci")
	key, ok := engine.KeyOfID(store.HashAPIToken(token))
	require.True(t, ok)
	assert.Equal(t, engine.KeyOf(token), key)
}

// Using a token is recorded at most once per interval, on any server.
func TestTouchAPITokenWritesAtMostOncePerInterval(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	token, created := newAPIToken(t, s, alice, "ci")
	id := store.HashAPIToken(token)

	live, _, err := s.CheckAPIToken(ctx, id)
	require.NoError(t, err)
	assert.Zero(t, live.LastUsedAt, "never used")
	assert.True(t, live.LastSeenAt.Before(created.CreatedAt.Add(-24*time.Hour)),
		"never seen, so the gate records the first use at once")

	t0 := time.Now().Truncate(time.Microsecond)
	for _, tc := range []struct {
		at    time.Time
		from  string
		wrote bool
	}{
		{t0, "192.0.2.1", true},
		{t0.Add(time.Second), "192.0.2.2", false},
		{t0.Add(59 * time.Second), "192.0.2.3", false},
		{t0.Add(61 * time.Second), "2001:db8::1", true},
		{t0.Add(90 * time.Second), "192.0.2.4", false},
	} {
		wrote, err := s.TouchAPIToken(ctx, id, tc.at, tc.from, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, tc.wrote, wrote, "use at +%v", tc.at.Sub(t0))
	}
	list, err := s.ListAPITokens(ctx, alice.ID)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.True(t, t0.Add(61*time.Second).Equal(list[0].LastUsedAt), "%v", list[0].LastUsedAt)
	assert.Equal(t, "2001:db8::1", list[0].LastUsedFrom)
	live, _, err = s.CheckAPIToken(ctx, id)
	require.NoError(t, err)
	assert.True(t, t0.Add(61*time.Second).Equal(live.LastUsedAt))
	assert.True(t, t0.Add(61*time.Second).Equal(live.LastSeenAt))

	wrote, err := s.TouchAPIToken(ctx, store.HashAPIToken("pgs_unknown"), t0, "192.0.2.1", time.Minute)
	require.NoError(t, err)
	assert.False(t, wrote, "an unknown token records nothing")
}

// A token is a credential of its own: a new password leaves it, deleting
// its owner ends it.
func TestAPITokensSurviveAPasswordChange(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	alice := newUser(t, s, "alice")
	token, _ := newAPIToken(t, s, alice, "ci")
	session := login(t, s, alice)

	_, err := s.ChangePassword(ctx, alice.ID, "a brand new password", "")
	require.NoError(t, err)
	assert.False(t, isLive(t, s, session), "the session ended")
	assert.True(t, tokenIsLive(t, s, token), "the token did not")
	_, err = s.DeleteUserSessions(ctx, alice.ID)
	require.NoError(t, err)
	assert.True(t, tokenIsLive(t, s, token), "ending sessions leaves tokens")

	require.NoError(t, s.DeleteUser(ctx, "alice"))
	assert.False(t, tokenIsLive(t, s, token))
	assert.Zero(t, count(t, s, `SELECT count(*) FROM pgsession.api_tokens`))
}

// Wrong tokens count toward the address's limit of failed logins, with
// wrong passwords, and a token that was found is forgiven.
func TestTokenAttemptsCountTowardTheAddressLimit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, store.Options{})
	limits := store.Throttle{PerAccount: 10, PerIP: 3, Window: time.Minute}
	reserve := func(ip string) store.Attempt {
		t.Helper()
		a, err := s.ReserveTokenAttempt(ctx, ip, limits)
		require.NoError(t, err)
		return a
	}
	found := reserve("2001:db8::1")
	require.False(t, found.Throttled())
	require.NoError(t, s.ReleaseAttempt(ctx, found))
	for range 2 {
		require.False(t, reserve("2001:db8::2").Throttled(), "another address of the same /64")
	}
	_, err := s.ReserveLoginAttempt(ctx, "alice", "2001:db8::3", limits)
	require.NoError(t, err)
	a := reserve("2001:db8::4")
	assert.True(t, a.Throttled(), "two wrong tokens and a wrong password reach the limit of 3")
	assert.Positive(t, a.RetryAfter)
	assert.False(t, reserve("198.51.100.1").Throttled(), "another address is not limited")
}

func isLive(tb testing.TB, s *store.Store, token string) bool {
	tb.Helper()
	sess, err := s.GetSession(context.Background(), token)
	require.NoError(tb, err)
	return sess != nil
}

// Revoking or narrowing a token is announced as its id, which every server
// drops from memory at once; recording its use or renaming it says nothing.
func TestAPITokenChangesAreAnnounced(t *testing.T) {
	ctx := context.Background()
	url := migrated.NewDatabase(t)
	s := newStoreAt(t, url, store.Options{})
	alice, bob := newUser(t, s, "alice"), newUser(t, s, "bob")
	h := listen(t, s, url)
	h.waitFor(t, "the purge of a new connection", func(inv store.Invalidation) bool { return inv.All })
	announced := func(token string) func(store.Invalidation) bool {
		return func(inv store.Invalidation) bool {
			for _, id := range inv.Sessions {
				if id == store.HashAPIToken(token) {
					return true
				}
			}
			return false
		}
	}

	token, created := newAPIToken(t, s, alice, "revoked")
	require.NoError(t, s.RevokeAPIToken(ctx, alice.ID, created.Handle))
	h.waitFor(t, "a revoked token", announced(token))

	token, _ = newAPIToken(t, s, alice, "all")
	_, err := s.RevokeAllAPITokens(ctx, alice.ID)
	require.NoError(t, err)
	h.waitFor(t, "revoking all", announced(token))

	for _, tc := range []struct{ what, before, change string }{
		{"an expiry", "", `expires_at = now() + interval '1 hour'`},
		{"an earlier expiry", `expires_at = now() + interval '1 hour'`, `expires_at = now() + interval '1 minute'`},
		{"other paths", "", `paths = '{/api/*}'`},
		{"paths taken away", `paths = '{/api/*}'`, `paths = '{}'`},
		{"another scope", "", `admin_scope = true`},
		{"the scope taken off", `admin_scope = true`, `admin_scope = false`},
	} {
		token, _ := newAPIToken(t, s, bob, tc.what)
		if tc.before != "" {
			exec(t, s, `UPDATE pgsession.api_tokens SET `+tc.before+` WHERE id = $1`, store.HashAPIToken(token))
			h.waitFor(t, tc.what+", set up", announced(token))
			h.reset()
		}
		exec(t, s, `UPDATE pgsession.api_tokens SET `+tc.change+` WHERE id = $1`, store.HashAPIToken(token))
		h.waitFor(t, tc.what, announced(token))
	}
	token, _ = newAPIToken(t, s, bob, "owner deleted")
	require.NoError(t, s.DeleteUser(ctx, "bob"))
	h.waitFor(t, "the owner's deletion", announced(token))

	// Quiet changes: uses, a rename, a later expiry.
	carol := newUser(t, s, "carol")
	quiet, _, err := s.CreateAPIToken(ctx, carol.ID, "quiet", time.Now().Add(time.Hour), nil, false)
	require.NoError(t, err)
	h.reset()
	for i := range 3 {
		_, err := s.TouchAPIToken(ctx, store.HashAPIToken(quiet), time.Now().Add(time.Duration(i)*time.Hour), "192.0.2.1", time.Minute)
		require.NoError(t, err)
	}
	exec(t, s, `UPDATE pgsession.api_tokens SET name = 'renamed', expires_at = expires_at + interval '1 day'`)
	marker, created := newAPIToken(t, s, carol, "marker")
	require.NoError(t, s.RevokeAPIToken(ctx, carol.ID, created.Handle))
	h.waitFor(t, "the marker", announced(marker))
	assert.Equal(t, []store.Invalidation{{Sessions: []store.SessionID{store.HashAPIToken(marker)}}}, h.all(),
		"the uses, the rename and the later expiry announced nothing")
}

// A token's lifetime is whole days or a Go duration, positive: what the
// command line and the JSON route take alike.
func TestParseAPITokenLifetime(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute} {
		got, err := store.ParseAPITokenLifetime(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "soon", "-3d", "0d", "0s", "-1h", "1.5d", "d", "36501d"} {
		_, err := store.ParseAPITokenLifetime(in)
		var inputErr *store.InputError
		assert.ErrorAs(t, err, &inputErr, "%q", in)
	}
}
