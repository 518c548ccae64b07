package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

func TestUserAddAndList(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)

	// Nothing set up by hand: user add installs the schema itself.
	assert.Equal(t, "created admin user \"alice\"\n",
		executeOK(t, url, testPassword+"\n", "user", "add", "alice", "--admin", "--password-stdin"))
	assert.Equal(t, "created user \"bob\"\n",
		executeOK(t, url, "another password\r\n", "user", "add", "bob", "--password-stdin"))
	assert.Equal(t, "created user \"carol\"\n",
		executeOK(t, url, " spaces kept, no newline ", "user", "add", "carol", "--password-stdin"))

	s := openStore(t, url)
	ctx := context.Background()
	for name, password := range map[string]string{"alice": testPassword, "bob": "another password", "carol": " spaces kept, no newline "} {
		_, err := s.VerifyPassword(ctx, name, password)
		assert.NoError(t, err, "%s's password is the line without its line ending", name)
	}
	_, err := s.VerifyPassword(ctx, "bob", "another password\r")
	assert.ErrorIs(t, err, store.ErrInvalidCredentials)

	out := executeOK(t, url, "", "user", "list")
	rows := table(out)
	require.Len(t, rows, 4, out)
	assert.Equal(t, []string{"USERNAME", "ADMIN", "EMAIL", "CREATED", "ID"}, rows[0])
	users, err := s.ListUsers(ctx)
	require.NoError(t, err)
	for i, u := range users {
		admin := "no"
		if u.IsAdmin {
			admin = "yes"
		}
		assert.Equal(t, []string{u.Username, admin, "-", u.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC"), string(u.ID)}, rows[i+1])
	}
	assert.Equal(t, "yes", rows[1][1], "alice is an admin")
	assert.Equal(t, "no", rows[2][1])
	// The columns line up.
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	col := strings.Index(lines[0], "ADMIN")
	for _, line := range lines[1:] {
		assert.Contains(t, []string{"yes", "no "}, line[col:col+3], line)
	}
}

func TestUserListEmpty(t *testing.T) {
	t.Parallel()
	r := executeDB(t, pgtest.NewDatabase(t), "", "user", "list")
	require.NoError(t, r.err)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "no users\n", r.stderr)
}

func TestUserAddExisting(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	executeOK(t, url, testPassword+"\n", "user", "add", "alice", "--password-stdin")
	for _, name := range []string{"alice", "ALICE"} {
		r := executeDB(t, url, "other password\n", "user", "add", name, "--password-stdin")
		require.Error(t, r.err)
		assert.Equal(t, `user "`+name+`" already exists`, r.err.Error())
		assert.Equal(t, "Error: user \""+name+"\" already exists\n", r.stderr, "one line, no usage, no stack")
		assert.Empty(t, r.stdout)
	}
	_, err := openStore(t, url).VerifyPassword(context.Background(), "alice", testPassword)
	assert.NoError(t, err, "the existing user is untouched")
}

func TestUserAddRefusesPasswordOnCommandLine(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	const secret = "Hunter2Hunter2"
	for name, args := range map[string][]string{
		"positional":              {"user", "add", "alice", secret},
		"positional with stdin":   {"user", "add", "alice", secret, "--password-stdin"},
		"positional for passwd":   {"user", "passwd", "alice", secret, "--password-stdin"},
		"password flag":           {"user", "add", "alice", "--password", secret},
		"password flag equals":    {"user", "add", "alice", "--password=" + secret},
		"value on password-stdin": {"user", "add", "alice", "--password-stdin=" + secret},
		"value on admin":          {"user", "add", "alice", "--admin=" + secret, "--password-stdin"},
		"dash password":           {"user", "add", "alice", "-" + secret, "--password-stdin"},
		"double dash password":    {"user", "add", "alice", "--" + secret, "--password-stdin"},
	} {
		t.Run(name, func(t *testing.T) {
			r := executeDB(t, url, testPassword+"\n", args...)
			require.Error(t, r.err, "the command must not succeed")
			assert.NotContains(t, r.all(), secret, "the password is not repeated")
			assert.Empty(t, r.stdout)
		})
	}
	r := executeDB(t, url, "", "user", "add", "alice", secret)
	assert.Equal(t, "too many arguments: give only the user name; a password is never taken from the command line, "+
		"type it at the prompt or pass --password-stdin and write it on stdin", r.err.Error())
	r = executeDB(t, url, "", "user", "add", "alice", "--password-stdin="+secret)
	assert.Equal(t, "--password-stdin takes no value", r.err.Error())

	_, err := openStore(t, url).GetUserByName(context.Background(), "alice")
	assert.ErrorIs(t, err, store.ErrUserNotFound, "no user was created")
}

func TestUserPasswdEndsSessions(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	aliceTokens := []string{newSession(t, s, alice, "Firefox", "192.0.2.1"), newSession(t, s, alice, "curl", "192.0.2.2")}
	bobToken := newSession(t, s, bob, "Safari", "192.0.2.3")

	out := executeOK(t, url, "new password here\n", "user", "passwd", "Alice", "--password-stdin")
	assert.Equal(t, "changed the password of \"alice\" and ended 2 sessions\n", out)
	for _, token := range aliceTokens {
		assert.False(t, isLive(t, s, token), "every session of alice ended")
	}
	assert.True(t, isLive(t, s, bobToken), "bob's session is untouched")
	_, err := s.VerifyPassword(ctx, "alice", "new password here")
	assert.NoError(t, err, "the new password works")
	_, err = s.VerifyPassword(ctx, "alice", testPassword)
	assert.ErrorIs(t, err, store.ErrInvalidCredentials, "the old one does not")

	assert.Equal(t, "changed the password of \"alice\" and ended 0 sessions\n",
		executeOK(t, url, "newer password here\n", "user", "passwd", "alice", "--password-stdin"))

	r := executeDB(t, url, "some password\n", "user", "passwd", "carol", "--password-stdin")
	require.Error(t, r.err)
	assert.Equal(t, `no user "carol"`, r.err.Error())
	r = executeDB(t, url, "short\n", "user", "passwd", "alice", "--password-stdin")
	require.Error(t, r.err)
	assert.Equal(t, "password is shorter than 8 characters", r.err.Error())
	r = executeDB(t, url, "some password\n", "user", "passwd", "alice")
	require.Error(t, r.err)
	assert.Contains(t, r.err.Error(), "pass --password-stdin")
	_, err = s.VerifyPassword(ctx, "alice", "newer password here")
	assert.NoError(t, err, "failed attempts change nothing")
}

func TestUserDelete(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	token := newSession(t, s, alice, "Firefox", "192.0.2.1")
	bobToken := newSession(t, s, bob, "Safari", "192.0.2.3")

	assert.Equal(t, "deleted user \"alice\" and ended 1 session\n", executeOK(t, url, "", "user", "delete", "ALICE"))
	_, err := s.GetUserByName(ctx, "alice")
	assert.ErrorIs(t, err, store.ErrUserNotFound)
	assert.False(t, isLive(t, s, token))
	assert.True(t, isLive(t, s, bobToken))

	r := executeDB(t, url, "", "user", "delete", "alice")
	require.Error(t, r.err)
	assert.Equal(t, `no user "alice"`, r.err.Error())
	assert.Equal(t, "Error: no user \"alice\"\n", r.stderr)

	r = executeDB(t, url, "", "user", "delete")
	require.Error(t, r.err)
	assert.Equal(t, "missing the user name", r.err.Error())
	r = executeDB(t, url, "", "user", "delete", "bob", "carol")
	require.Error(t, r.err)
	assert.Equal(t, "too many arguments: give only the user name", r.err.Error())
	_, err = s.GetUserByName(ctx, "bob")
	assert.NoError(t, err)
}

func TestUserAdmin(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	ctx := context.Background()
	token := newSession(t, s, addUser(t, s, "alice"), "Firefox", "192.0.2.1")

	assert.Equal(t, "\"alice\" is an admin\n", executeOK(t, url, "", "user", "admin", "ＡＬＩＣＥ", "on"))
	sess, err := s.GetSession(ctx, token)
	require.NoError(t, err)
	assert.True(t, sess.User.IsAdmin, "a live session gains the rights at once")
	assert.Equal(t, "\"alice\" is no longer an admin\n", executeOK(t, url, "", "user", "admin", "alice", "off"))
	sess, err = s.GetSession(ctx, token)
	require.NoError(t, err)
	assert.False(t, sess.User.IsAdmin, "and loses them at once")

	for args, msg := range map[string]string{
		"alice":          "missing on or off after the user name",
		"alice yes":      `"yes" is neither on nor off`,
		"alice on extra": "too many arguments: give the user name, then on or off",
		"nobody on":      `no user "nobody"`,
		"":               "missing the user name",
	} {
		r := executeDB(t, url, "", append([]string{"user", "admin"}, strings.Fields(args)...)...)
		if assert.Error(t, r.err, args) {
			assert.Equal(t, msg, r.err.Error(), args)
		}
	}
}

func TestUserReset2FA(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	executeOK(t, url, testPassword+"\n", "user", "add", "alice", "--password-stdin")
	s := openStore(t, url)
	ctx := context.Background()
	u, err := s.GetUserByName(ctx, "alice")
	require.NoError(t, err)
	token, _, err := s.CreateSession(ctx, store.SessionParams{User: *u, Lifetime: time.Hour})
	require.NoError(t, err)
	require.NoError(t, s.SetTOTPSecret(ctx, u.ID, []byte("sealed secret")))
	_, err = s.ConfirmTOTP(ctx, u.ID, 1, [][]byte{[]byte("a code's hash")}, token)
	require.NoError(t, err)
	factors, err := s.UserFactors(ctx, u.ID)
	require.NoError(t, err)
	require.True(t, factors.Any())

	assert.Equal(t, "removed the second factors of \"alice\" and ended 1 session\n",
		executeOK(t, url, "", "user", "reset-2fa", "alice"))
	factors, err = s.UserFactors(ctx, u.ID)
	require.NoError(t, err)
	assert.False(t, factors.Any(), "the authenticator is gone")
	assert.Zero(t, factors.RecoveryCodes, "and the recovery codes")
	sess, err := s.GetSession(ctx, token)
	require.NoError(t, err)
	assert.Nil(t, sess, "and the session")
}

func TestSecretsKeyPrintsAFreshKey(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	a, b := strings.TrimSpace(executeOK(t, url, "", "secrets-key")), strings.TrimSpace(executeOK(t, url, "", "secrets-key"))
	assert.Len(t, a, 43, "32 random bytes, base64url")
	assert.NotEqual(t, a, b)
}
