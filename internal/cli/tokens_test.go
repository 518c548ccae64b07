package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

func apiTokens(t *testing.T, s *store.Store, u *store.User) []store.APIToken {
	t.Helper()
	tokens, err := s.ListAPITokens(context.Background(), u.ID)
	require.NoError(t, err)
	return tokens
}

func tokenIsLive(t *testing.T, s *store.Store, token string) bool {
	t.Helper()
	_, ok, err := s.CheckAPIToken(context.Background(), store.HashAPIToken(token))
	require.NoError(t, err)
	return ok
}

func TestTokenAdd(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	alice := addUser(t, s, "alice")
	root, err := s.CreateUser(ctx, "root", testPassword, true)
	require.NoError(t, err)

	r := executeDB(t, url, "", "token", "add", "ALICE", "deploy", "--expires", "30d", "--path", "/api/*", "--path", "/hooks/*")
	require.NoError(t, r.err)
	token := strings.TrimSuffix(r.stdout, "\n")
	assert.Equal(t, token+"\n", r.stdout, "the token alone on a line")
	assert.True(t, store.IsAPIToken(token), token)
	assert.Contains(t, r.stderr, `created API token "deploy"`)
	assert.Contains(t, r.stderr, `for "alice"`)
	assert.Contains(t, r.stderr, "shown only this once")
	assert.NotContains(t, r.stderr, token)
	assert.True(t, tokenIsLive(t, s, token))
	tokens := apiTokens(t, s, alice)
	require.Len(t, tokens, 1)
	assert.Equal(t, "deploy", tokens[0].Name)
	assert.Equal(t, []string{"/api/*", "/hooks/*"}, tokens[0].Paths)
	assert.WithinDuration(t, time.Now().Add(30*24*time.Hour), tokens[0].ExpiresAt, time.Minute)
	assert.False(t, tokens[0].AdminScope)
	assert.Contains(t, r.stderr, string(tokens[0].Handle), "the ID that revoke takes")

	forever := executeOK(t, url, "", "token", "add", "alice", "forever")
	assert.NotEqual(t, r.stdout, forever, "a new token each time")
	tokens = apiTokens(t, s, alice)
	require.Len(t, tokens, 2)
	assert.Zero(t, tokens[0].ExpiresAt, "without --expires the token does not expire")
	assert.Empty(t, tokens[0].Paths)
	executeOK(t, url, "", "token", "add", "alice", "short", "--expires", "90m")
	assert.WithinDuration(t, time.Now().Add(90*time.Minute), apiTokens(t, s, alice)[0].ExpiresAt, time.Minute)

	r = executeDB(t, url, "", "token", "add", "alice", "admin", "--admin")
	require.Error(t, r.err)
	assert.Equal(t, `"alice" is not an admin: only an admin's token can have --admin`, r.err.Error())
	assert.Empty(t, r.stdout)
	scoped := strings.TrimSpace(executeOK(t, url, "", "token", "add", "root", "admin", "--admin"))
	live, ok, err := s.CheckAPIToken(ctx, store.HashAPIToken(scoped))
	require.NoError(t, err)
	require.True(t, ok)
	assert.True(t, live.AdminScope)
	assert.True(t, live.IsAdmin)
	assert.Len(t, apiTokens(t, s, root), 1)

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"alice", "deploy"}, `"alice" already has an API token named "deploy": see 'token list alice'`},
		{[]string{"carol", "deploy"}, `no user "carol"`},
		{[]string{"alice", "x", "--expires", "soon"}, "invalid value for --expires: give a positive duration such as 30d, 12h or 90m"},
		{[]string{"alice", "x", "--expires", "-3d"}, "invalid value for --expires: give a positive duration such as 30d, 12h or 90m"},
		{[]string{"alice", "x", "--expires", "0s"}, "invalid value for --expires: give a positive duration such as 30d, 12h or 90m"},
		{[]string{"alice", "x", "--path", "api/*"}, "a token's path must start with / or *"},
		{[]string{"alice", " x"}, "a token's name must not start or end with a space"},
		{[]string{"alice", strings.Repeat("x", 65)}, "a token's name is longer than 64 characters"},
		{[]string{"alice"}, "missing the token's name after the user name"},
		{[]string{}, "missing the user name"},
		{[]string{"alice", "x", "y"}, "too many arguments: give the user name, then the token's name"},
	} {
		r := executeDB(t, url, "", append([]string{"token", "add"}, tc.args...)...)
		require.Error(t, r.err, tc.args)
		assert.Equal(t, tc.want, r.err.Error(), tc.args)
		assert.Empty(t, r.stdout, tc.args)
	}
	assert.Len(t, apiTokens(t, s, alice), 3, "no refused command created a token")
}

func TestTokenList(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	root, err := s.CreateUser(ctx, "root", testPassword, true)
	require.NoError(t, err)
	expires := time.Now().Add(24 * time.Hour)
	used, _, err := s.CreateAPIToken(ctx, alice.ID, "deploy", expires, []string{"/api/*", "*.json"}, false)
	require.NoError(t, err)
	_, err = s.TouchAPIToken(ctx, store.HashAPIToken(used), time.Now(), "192.0.2.7\x1b[2J", time.Minute)
	require.NoError(t, err)
	unused, _, err := s.CreateAPIToken(ctx, alice.ID, "nightly", time.Time{}, nil, false)
	require.NoError(t, err)
	bobs, _, err := s.CreateAPIToken(ctx, bob.ID, "bob's", time.Time{}, nil, false)
	require.NoError(t, err)
	_, _, err = s.CreateAPIToken(ctx, root.ID, "ops", time.Time{}, nil, true)
	require.NoError(t, err)

	r := executeDB(t, url, "", "token", "list", "alice")
	require.NoError(t, r.err)
	rows := table(r.stdout)
	require.Len(t, rows, 3, r.stdout)
	assert.Equal(t, []string{"ID", "NAME", "CREATED", "EXPIRES", "LAST USED", "FROM", "PATHS", "ADMIN"}, rows[0])
	tokens := apiTokens(t, s, alice)
	assert.Equal(t, []string{string(tokens[0].Handle), "nightly", formatTime(tokens[0].CreatedAt), "never", "never", "-", "all", "no"},
		rows[1], "newest first")
	assert.Equal(t, []string{string(tokens[1].Handle), "deploy", formatTime(tokens[1].CreatedAt), formatTime(tokens[1].ExpiresAt),
		formatTime(tokens[1].LastUsedAt), "192.0.2.7?[2J", "/api/* *.json", "no"}, rows[2],
		"a control character in an address is not sent to the terminal")
	for _, secret := range []string{used, unused, string(store.HashAPIToken(used))[:9], string(store.HashAPIToken(unused))[:9]} {
		assert.NotContains(t, r.all(), secret, "neither a token nor its hash is shown")
	}
	assert.NotContains(t, r.stdout, "bob's")
	assert.NotContains(t, r.stdout, bobs)

	rows = table(executeOK(t, url, "", "token", "list", "root"))
	require.Len(t, rows, 2)
	assert.Equal(t, "yes", rows[1][7], "an admin-scoped token says so")

	r = executeDB(t, url, "", "token", "list", "carol")
	require.Error(t, r.err)
	assert.Equal(t, `no user "carol"`, r.err.Error())
	addUser(t, s, "dave")
	r = executeDB(t, url, "", "token", "list", "dave")
	require.NoError(t, r.err)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "no API tokens for \"dave\"\n", r.stderr)
}

func TestTokenRevoke(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	newToken := func(u *store.User, name string) (string, store.APIToken) {
		t.Helper()
		token, created, err := s.CreateAPIToken(ctx, u.ID, name, time.Time{}, nil, false)
		require.NoError(t, err)
		return token, created
	}
	byID, first := newToken(alice, "ci")
	byName, _ := newToken(alice, "backup")
	kept, _ := newToken(alice, "kept")
	bobs, bobsToken := newToken(bob, "ci")

	r := executeDB(t, url, "", "token", "revoke", "alice", string(bobsToken.Handle))
	require.Error(t, r.err, "alice's name cannot revoke bob's token")
	assert.Equal(t, `"alice" has no API token "`+string(bobsToken.Handle)+`": see 'token list alice'`, r.err.Error())
	assert.True(t, tokenIsLive(t, s, bobs))

	assert.Equal(t, `revoked API token "ci" (ID `+string(first.Handle)+`) of "alice"`+"\n",
		executeOK(t, url, "", "token", "revoke", "alice", string(first.Handle)))
	assert.False(t, tokenIsLive(t, s, byID))
	assert.Contains(t, executeOK(t, url, "", "token", "revoke", "alice", "backup"), `revoked API token "backup"`)
	assert.False(t, tokenIsLive(t, s, byName), "by its name")
	assert.True(t, tokenIsLive(t, s, kept))
	assert.True(t, tokenIsLive(t, s, bobs), "bob's token of the same name stays")

	r = executeDB(t, url, "", "token", "revoke", "alice", "backup")
	require.Error(t, r.err)
	assert.Equal(t, `"alice" has no API token "backup": see 'token list alice'`, r.err.Error())

	newToken(alice, "another")
	assert.Equal(t, "revoked 2 API tokens of \"alice\"\n", executeOK(t, url, "", "token", "revoke", "alice", "--all"))
	assert.False(t, tokenIsLive(t, s, kept))
	assert.True(t, tokenIsLive(t, s, bobs))
	assert.Equal(t, "revoked 0 API tokens of \"alice\"\n", executeOK(t, url, "", "token", "revoke", "alice", "--all"))
	assert.Equal(t, "revoked 1 API token of \"bob\"\n", executeOK(t, url, "", "token", "revoke", "bob", "--all"))

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"carol", "--all"}, `no user "carol"`},
		{[]string{"alice"}, "missing the token's ID or name after the user name, or --all"},
		{[]string{"alice", "ci", "--all"}, "too many arguments: with --all give only the user name"},
		{[]string{"alice", "ci", "x"}, "too many arguments: give the user name, then the token's ID or name"},
		{[]string{}, "missing the user name"},
	} {
		r := executeDB(t, url, "", append([]string{"token", "revoke"}, tc.args...)...)
		require.Error(t, r.err, tc.args)
		assert.Equal(t, tc.want, r.err.Error(), tc.args)
	}
}
