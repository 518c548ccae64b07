package cli

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

func TestSessionsList(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	t1 := newSession(t, s, alice, "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "192.0.2.1")
	t2 := newSession(t, s, alice, "evil\x1b[2J\tagent\u202e", "2001:db8::1")
	newSession(t, s, alice, "", "")
	newSession(t, s, bob, "Safari", "198.51.100.7")

	r := executeDB(t, url, "", "sessions", "list", "alice")
	require.NoError(t, r.err)
	rows := table(r.stdout)
	require.Len(t, rows, 4, r.stdout)
	assert.Equal(t, []string{"ID", "CREATED", "LAST SEEN", "EXPIRES", "IP", "USER AGENT"}, rows[0])
	assert.Contains(t, r.stdout, "192.0.2.1")
	assert.Contains(t, r.stdout, "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0")
	assert.Contains(t, r.stdout, "2001:db8::1")
	assert.Contains(t, r.stdout, "evil?[2J?agent?", "control characters in a User-Agent are not sent to the terminal")
	assert.NotContains(t, r.stdout, "\x1b")
	assert.NotContains(t, r.stdout, "Safari", "only alice's sessions")
	for _, row := range rows[1:] {
		assert.Len(t, row, 6, row)
	}
	assert.Contains(t, rows[1:], []string{rows[1][0], rows[1][1], rows[1][2], rows[1][3], "-", "-"},
		"an empty IP and User-Agent show as -; newest session first")
	for _, token := range []string{t1, t2} {
		assert.NotContains(t, r.stdout, token)
		assert.NotContains(t, r.stdout, string(store.HashToken(token))[:9], "at most 8 characters of a session id")
	}
	sessions, err := s.GetUserSessions(ctx, alice.ID)
	require.NoError(t, err)
	assert.Contains(t, r.stdout, sessions[0].ExpiresAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	for _, sess := range sessions {
		assert.Contains(t, r.stdout, string(sess.Handle), "each session shows the ID that revoke --id takes")
	}

	r = executeDB(t, url, "", "sessions", "list", "carol")
	require.Error(t, r.err)
	assert.Equal(t, `no user "carol"`, r.err.Error())

	_, err = s.DeleteUserSessions(ctx, bob.ID)
	require.NoError(t, err)
	r = executeDB(t, url, "", "sessions", "list", "bob")
	require.NoError(t, r.err)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "no live sessions for \"bob\"\n", r.stderr)
}

func TestSessionsRevoke(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	tokens := []string{newSession(t, s, alice, "a", ""), newSession(t, s, alice, "b", ""), newSession(t, s, alice, "c", "")}
	bobToken := newSession(t, s, bob, "Safari", "")

	assert.Equal(t, "ended 3 sessions of \"alice\"\n", executeOK(t, url, "", "sessions", "revoke", "alice"))
	for _, token := range tokens {
		assert.False(t, isLive(t, s, token))
	}
	assert.True(t, isLive(t, s, bobToken))
	assert.Equal(t, "ended 0 sessions of \"alice\"\n", executeOK(t, url, "", "sessions", "revoke", "alice"))
	assert.Equal(t, "ended 1 session of \"bob\"\n", executeOK(t, url, "", "sessions", "revoke", "bob"))
	_, err := s.VerifyPassword(ctx, "alice", testPassword)
	assert.NoError(t, err, "revoking sessions leaves the user")

	r := executeDB(t, url, "", "sessions", "revoke", "carol")
	require.Error(t, r.err)
	assert.Equal(t, `no user "carol"`, r.err.Error())

	// One session by its ID, and only one of that user's.
	keep, end := newSession(t, s, alice, "keep", ""), newSession(t, s, alice, "end", "")
	sessions, err := s.GetUserSessions(ctx, alice.ID)
	require.NoError(t, err)
	var endID string
	for _, sess := range sessions {
		if sess.UserAgent == "end" {
			endID = string(sess.Handle)
		}
	}
	r = executeDB(t, url, "", "sessions", "revoke", "bob", "--id", endID)
	require.Error(t, r.err, "bob's name cannot end alice's session")
	assert.True(t, isLive(t, s, end))
	assert.Equal(t, "ended session "+endID+" of \"alice\"\n", executeOK(t, url, "", "sessions", "revoke", "alice", "--id", endID))
	assert.False(t, isLive(t, s, end))
	assert.True(t, isLive(t, s, keep))
}
