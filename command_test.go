package pgsession

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/migrations"
	"github.com/pgsession/caddy-pgsession/store"
)

const cliTestPassword = "correct horse battery"

// cliResult is what one run of the pg-session command did.
type cliResult struct {
	stdout, stderr string
	err            error
}

// all is everything the command showed, for checking what it must never show.
func (r cliResult) all() string {
	s := r.stdout + r.stderr
	if r.err != nil {
		s += r.err.Error()
	}
	return s
}

// cliRun runs `caddy pg-session ARGS...` in process with stdin as its input.
func cliRun(t *testing.T, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := newPgSessionCommand()
	var stdout, stderr bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	err := cmd.Execute()
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// cliDB runs the command against the database at url.
func cliDB(t *testing.T, url, stdin string, args ...string) cliResult {
	t.Helper()
	return cliRun(t, stdin, append([]string{"--database-url", url}, args...)...)
}

// cliOK runs the command against url and fails the test if it fails.
func cliOK(t *testing.T, url, stdin string, args ...string) string {
	t.Helper()
	r := cliDB(t, url, stdin, args...)
	require.NoError(t, r.err, "pg-session %v; stderr: %s", args, r.stderr)
	return r.stdout
}

// cliStore opens a store on url with the schema installed, to set up and
// check what the commands do.
func cliStore(t *testing.T, url string) *store.Store {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s, err := store.New(pool, store.Options{})
	require.NoError(t, err)
	_, err = s.Migrate(context.Background())
	require.NoError(t, err)
	return s
}

func cliSession(t *testing.T, s *store.Store, u *store.User, ua, ip string) string {
	t.Helper()
	token, _, err := s.CreateSession(context.Background(), store.SessionParams{User: *u, Lifetime: time.Hour, UserAgent: ua, IP: ip})
	require.NoError(t, err)
	return token
}

func cliLive(t *testing.T, s *store.Store, token string) bool {
	t.Helper()
	sess, err := s.GetSession(context.Background(), token)
	require.NoError(t, err)
	return sess != nil
}

// cliTable splits a tabwriter table into rows of cells; cells are separated by
// two or more spaces.
func cliTable(out string) [][]string {
	var rows [][]string
	for line := range strings.SplitSeq(strings.TrimRight(out, "\n"), "\n") {
		var cells []string
		for cell := range strings.SplitSeq(line, "  ") {
			if cell = strings.TrimSpace(cell); cell != "" {
				cells = append(cells, cell)
			}
		}
		rows = append(rows, cells)
	}
	return rows
}

func TestCommandIsRegisteredWithCaddy(t *testing.T) {
	registered, ok := caddycmd.Commands()["pg-session"]
	require.True(t, ok, "init registers caddy pg-session")
	require.NotNil(t, registered.CobraFunc)
	cmd := &cobra.Command{Use: "pg-session"}
	registered.CobraFunc(cmd)
	for _, path := range [][]string{
		{"migrate"}, {"user", "add"}, {"user", "passwd"}, {"user", "delete"}, {"user", "list"},
		{"sessions", "list"}, {"sessions", "revoke"},
	} {
		found, rest, err := cmd.Find(path)
		require.NoError(t, err, path)
		assert.Empty(t, rest, path)
		assert.Equal(t, path[len(path)-1], found.Name())
	}
	for _, flag := range []string{"database-url", "schema"} {
		assert.NotNil(t, cmd.PersistentFlags().Lookup(flag), flag)
	}
	assert.Equal(t, migrations.DefaultSchema, cmd.PersistentFlags().Lookup("schema").DefValue)
}

func TestCommandMigrateOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	all, err := migrations.All()
	require.NoError(t, err)

	out := cliOK(t, url, "", "migrate")
	assert.Equal(t, "applied "+cliCount(len(all), "migration")+" to schema \"pgsession\"\n", out)
	assert.Equal(t, "applied 0 migrations to schema \"pgsession\": it is up to date\n", cliOK(t, url, "", "migrate"))

	s := cliStore(t, url)
	users, err := s.ListUsers(context.Background())
	require.NoError(t, err)
	assert.Empty(t, users)
}

func TestCommandMigrateOtherSchema(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	assert.Contains(t, cliOK(t, url, "", "--schema", "auth", "migrate"), `to schema "auth"`)
	cliOK(t, url, cliTestPassword+"\n", "--schema", "auth", "user", "add", "alice", "--password-stdin")

	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	defer pool.Close()
	var inAuth, inDefault bool
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT to_regclass('auth.users') IS NOT NULL, to_regclass('pgsession.users') IS NOT NULL`).Scan(&inAuth, &inDefault))
	assert.True(t, inAuth)
	assert.False(t, inDefault, "--schema is the only schema used")

	r := cliDB(t, url, "", "--schema", "Bad-Name", "migrate")
	require.Error(t, r.err)
	assert.Contains(t, r.err.Error(), `schema name "Bad-Name" must be lowercase`)
}

func TestCommandUserAddAndList(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)

	// Nothing set up by hand: user add installs the schema itself.
	assert.Equal(t, "created admin user \"alice\"\n",
		cliOK(t, url, cliTestPassword+"\n", "user", "add", "alice", "--admin", "--password-stdin"))
	assert.Equal(t, "created user \"bob\"\n",
		cliOK(t, url, "another password\r\n", "user", "add", "bob", "--password-stdin"))
	assert.Equal(t, "created user \"carol\"\n",
		cliOK(t, url, " spaces kept, no newline ", "user", "add", "carol", "--password-stdin"))

	s := cliStore(t, url)
	ctx := context.Background()
	for name, password := range map[string]string{"alice": cliTestPassword, "bob": "another password", "carol": " spaces kept, no newline "} {
		_, err := s.VerifyPassword(ctx, name, password)
		assert.NoError(t, err, "%s's password is the line without its line ending", name)
	}
	_, err := s.VerifyPassword(ctx, "bob", "another password\r")
	assert.ErrorIs(t, err, store.ErrInvalidCredentials)

	out := cliOK(t, url, "", "user", "list")
	rows := cliTable(out)
	require.Len(t, rows, 4, out)
	assert.Equal(t, []string{"USERNAME", "ADMIN", "CREATED", "ID"}, rows[0])
	users, err := s.ListUsers(ctx)
	require.NoError(t, err)
	for i, u := range users {
		admin := "no"
		if u.IsAdmin {
			admin = "yes"
		}
		assert.Equal(t, []string{u.Username, admin, u.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC"), string(u.ID)}, rows[i+1])
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

func TestCommandUserListEmpty(t *testing.T) {
	t.Parallel()
	r := cliDB(t, pgtest.NewDatabase(t), "", "user", "list")
	require.NoError(t, r.err)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "no users\n", r.stderr)
}

func TestCommandUserAddExisting(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	cliOK(t, url, cliTestPassword+"\n", "user", "add", "alice", "--password-stdin")
	for _, name := range []string{"alice", "ALICE"} {
		r := cliDB(t, url, "other password\n", "user", "add", name, "--password-stdin")
		require.Error(t, r.err)
		assert.Equal(t, `user "`+name+`" already exists`, r.err.Error())
		assert.Equal(t, "Error: user \""+name+"\" already exists\n", r.stderr, "one line, no usage, no stack")
		assert.Empty(t, r.stdout)
	}
	_, err := cliStore(t, url).VerifyPassword(context.Background(), "alice", cliTestPassword)
	assert.NoError(t, err, "the existing user is untouched")
}

func TestCommandUserAddRefusesPasswordOnCommandLine(t *testing.T) {
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
			r := cliDB(t, url, cliTestPassword+"\n", args...)
			require.Error(t, r.err, "the command must not succeed")
			assert.NotContains(t, r.all(), secret, "the password is not repeated")
			assert.Empty(t, r.stdout)
		})
	}
	r := cliDB(t, url, "", "user", "add", "alice", secret)
	assert.Equal(t, "too many arguments: give only the user name; a password is never taken from the command line, "+
		"type it at the prompt or pass --password-stdin and write it on stdin", r.err.Error())
	r = cliDB(t, url, "", "user", "add", "alice", "--password-stdin="+secret)
	assert.Equal(t, "--password-stdin takes no value", r.err.Error())

	_, err := cliStore(t, url).GetUserByName(context.Background(), "alice")
	assert.ErrorIs(t, err, store.ErrUserNotFound, "no user was created")
}

func TestCommandUserAddPasswordInput(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	for _, tc := range []struct{ name, stdin, err string }{
		{"not a terminal", cliTestPassword + "\n",
			"stdin is not a terminal, so the password cannot be asked for: pass --password-stdin and write the password as one line on stdin"},
		{"empty stdin", "", "no password on stdin: write it as one line"},
		{"empty line", "\n", "password is shorter than 8 characters"},
		{"short", "short\n", "password is shorter than 8 characters"},
		{"too long", strings.Repeat("p", store.MaxPasswordLength+1) + "\n", "password is longer than 1024 bytes"},
		{"far too long", strings.Repeat("p", 1<<20), "password is longer than 1024 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"user", "add", "alice"}
			if tc.name != "not a terminal" {
				args = append(args, "--password-stdin")
			}
			r := cliDB(t, url, tc.stdin, args...)
			require.Error(t, r.err)
			assert.Equal(t, tc.err, r.err.Error())
		})
	}
	r := cliDB(t, url, strings.Repeat("p", store.MaxPasswordLength)+"\r\n", "user", "add", "alice", "--password-stdin")
	assert.NoError(t, r.err, "the longest password allowed fits, with its line ending")

	r = cliDB(t, url, cliTestPassword+"\n", "user", "add", " bob", "--password-stdin")
	require.Error(t, r.err)
	assert.Equal(t, "username starts or ends with a space", r.err.Error(), "store.InputError's message")
}

func TestCommandPasswordPrompt(t *testing.T) {
	answers := func(a ...string) func() ([]byte, error) {
		return func() ([]byte, error) {
			if len(a) == 0 {
				return nil, errors.New("no more input")
			}
			next := a[0]
			a = a[1:]
			return []byte(next), nil
		}
	}
	var w bytes.Buffer
	pw, err := cliPromptPassword(&w, "alice", answers(cliTestPassword, cliTestPassword))
	require.NoError(t, err)
	assert.Equal(t, cliTestPassword, pw)
	assert.Equal(t, "Password for \"alice\": \nRepeat the password: \n", w.String())

	_, err = cliPromptPassword(&w, "alice", answers(cliTestPassword, "correct horse battery!"))
	assert.EqualError(t, err, "the passwords do not match")
	w.Reset()
	_, err = cliPromptPassword(&w, "alice", answers("short"))
	assert.EqualError(t, err, "password is shorter than 8 characters")
	assert.NotContains(t, w.String(), "Repeat", "a password that will be refused is not asked for twice")
	_, err = cliPromptPassword(&w, "alice", answers(cliTestPassword))
	assert.EqualError(t, err, "reading the password: no more input")
}

func TestCommandUserPasswdEndsSessions(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	s := cliStore(t, url)
	ctx := context.Background()
	alice, err := s.CreateUser(ctx, "alice", cliTestPassword, false)
	require.NoError(t, err)
	bob, err := s.CreateUser(ctx, "bob", cliTestPassword, false)
	require.NoError(t, err)
	aliceTokens := []string{cliSession(t, s, alice, "Firefox", "192.0.2.1"), cliSession(t, s, alice, "curl", "192.0.2.2")}
	bobToken := cliSession(t, s, bob, "Safari", "192.0.2.3")

	out := cliOK(t, url, "new password here\n", "user", "passwd", "Alice", "--password-stdin")
	assert.Equal(t, "changed the password of \"alice\" and ended 2 sessions\n", out)
	for _, token := range aliceTokens {
		assert.False(t, cliLive(t, s, token), "every session of alice ended")
	}
	assert.True(t, cliLive(t, s, bobToken), "bob's session is untouched")
	_, err = s.VerifyPassword(ctx, "alice", "new password here")
	assert.NoError(t, err, "the new password works")
	_, err = s.VerifyPassword(ctx, "alice", cliTestPassword)
	assert.ErrorIs(t, err, store.ErrInvalidCredentials, "the old one does not")

	assert.Equal(t, "changed the password of \"alice\" and ended 0 sessions\n",
		cliOK(t, url, "newer password here\n", "user", "passwd", "alice", "--password-stdin"))

	r := cliDB(t, url, "some password\n", "user", "passwd", "carol", "--password-stdin")
	require.Error(t, r.err)
	assert.Equal(t, `no user "carol"`, r.err.Error())
	r = cliDB(t, url, "short\n", "user", "passwd", "alice", "--password-stdin")
	require.Error(t, r.err)
	assert.Equal(t, "password is shorter than 8 characters", r.err.Error())
	r = cliDB(t, url, "some password\n", "user", "passwd", "alice")
	require.Error(t, r.err)
	assert.Contains(t, r.err.Error(), "pass --password-stdin")
	_, err = s.VerifyPassword(ctx, "alice", "newer password here")
	assert.NoError(t, err, "failed attempts change nothing")
}

func TestCommandUserDelete(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	s := cliStore(t, url)
	ctx := context.Background()
	alice, err := s.CreateUser(ctx, "alice", cliTestPassword, false)
	require.NoError(t, err)
	bob, err := s.CreateUser(ctx, "bob", cliTestPassword, false)
	require.NoError(t, err)
	token := cliSession(t, s, alice, "Firefox", "192.0.2.1")
	bobToken := cliSession(t, s, bob, "Safari", "192.0.2.3")

	assert.Equal(t, "deleted user \"alice\" and ended 1 session\n", cliOK(t, url, "", "user", "delete", "ALICE"))
	_, err = s.GetUserByName(ctx, "alice")
	assert.ErrorIs(t, err, store.ErrUserNotFound)
	assert.False(t, cliLive(t, s, token))
	assert.True(t, cliLive(t, s, bobToken))

	r := cliDB(t, url, "", "user", "delete", "alice")
	require.Error(t, r.err)
	assert.Equal(t, `no user "alice"`, r.err.Error())
	assert.Equal(t, "Error: no user \"alice\"\n", r.stderr)

	r = cliDB(t, url, "", "user", "delete")
	require.Error(t, r.err)
	assert.Equal(t, "missing the user name", r.err.Error())
	r = cliDB(t, url, "", "user", "delete", "bob", "carol")
	require.Error(t, r.err)
	assert.Equal(t, "too many arguments: give only the user name", r.err.Error())
	_, err = s.GetUserByName(ctx, "bob")
	assert.NoError(t, err)
}

func TestCommandUserAdmin(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	s := cliStore(t, url)
	ctx := context.Background()
	alice, err := s.CreateUser(ctx, "alice", cliTestPassword, false)
	require.NoError(t, err)
	token := cliSession(t, s, alice, "Firefox", "192.0.2.1")

	assert.Equal(t, "\"alice\" is an admin\n", cliOK(t, url, "", "user", "admin", "ＡＬＩＣＥ", "on"))
	sess, err := s.GetSession(ctx, token)
	require.NoError(t, err)
	assert.True(t, sess.User.IsAdmin, "a live session gains the rights at once")
	assert.Equal(t, "\"alice\" is no longer an admin\n", cliOK(t, url, "", "user", "admin", "alice", "off"))
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
		r := cliDB(t, url, "", append([]string{"user", "admin"}, strings.Fields(args)...)...)
		if assert.Error(t, r.err, args) {
			assert.Equal(t, msg, r.err.Error(), args)
		}
	}
}

func TestCommandSessionsList(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	s := cliStore(t, url)
	ctx := context.Background()
	alice, err := s.CreateUser(ctx, "alice", cliTestPassword, false)
	require.NoError(t, err)
	bob, err := s.CreateUser(ctx, "bob", cliTestPassword, false)
	require.NoError(t, err)
	t1 := cliSession(t, s, alice, "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "192.0.2.1")
	t2 := cliSession(t, s, alice, "evil\x1b[2J\tagent\u202e", "2001:db8::1")
	cliSession(t, s, alice, "", "")
	cliSession(t, s, bob, "Safari", "198.51.100.7")

	r := cliDB(t, url, "", "sessions", "list", "alice")
	require.NoError(t, r.err)
	rows := cliTable(r.stdout)
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

	r = cliDB(t, url, "", "sessions", "list", "carol")
	require.Error(t, r.err)
	assert.Equal(t, `no user "carol"`, r.err.Error())

	_, err = s.DeleteUserSessions(ctx, bob.ID)
	require.NoError(t, err)
	r = cliDB(t, url, "", "sessions", "list", "bob")
	require.NoError(t, r.err)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "no live sessions for \"bob\"\n", r.stderr)
}

func TestCommandSessionsRevoke(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	s := cliStore(t, url)
	ctx := context.Background()
	alice, err := s.CreateUser(ctx, "alice", cliTestPassword, false)
	require.NoError(t, err)
	bob, err := s.CreateUser(ctx, "bob", cliTestPassword, false)
	require.NoError(t, err)
	tokens := []string{cliSession(t, s, alice, "a", ""), cliSession(t, s, alice, "b", ""), cliSession(t, s, alice, "c", "")}
	bobToken := cliSession(t, s, bob, "Safari", "")

	assert.Equal(t, "ended 3 sessions of \"alice\"\n", cliOK(t, url, "", "sessions", "revoke", "alice"))
	for _, token := range tokens {
		assert.False(t, cliLive(t, s, token))
	}
	assert.True(t, cliLive(t, s, bobToken))
	assert.Equal(t, "ended 0 sessions of \"alice\"\n", cliOK(t, url, "", "sessions", "revoke", "alice"))
	assert.Equal(t, "ended 1 session of \"bob\"\n", cliOK(t, url, "", "sessions", "revoke", "bob"))
	_, err = s.VerifyPassword(ctx, "alice", cliTestPassword)
	assert.NoError(t, err, "revoking sessions leaves the user")

	r := cliDB(t, url, "", "sessions", "revoke", "carol")
	require.Error(t, r.err)
	assert.Equal(t, `no user "carol"`, r.err.Error())

	// One session by its ID, and only one of that user's.
	keep, end := cliSession(t, s, alice, "keep", ""), cliSession(t, s, alice, "end", "")
	sessions, err := s.GetUserSessions(ctx, alice.ID)
	require.NoError(t, err)
	var endID string
	for _, sess := range sessions {
		if sess.UserAgent == "end" {
			endID = string(sess.Handle)
		}
	}
	r = cliDB(t, url, "", "sessions", "revoke", "bob", "--id", endID)
	require.Error(t, r.err, "bob's name cannot end alice's session")
	assert.True(t, cliLive(t, s, end))
	assert.Equal(t, "ended session "+endID+" of \"alice\"\n", cliOK(t, url, "", "sessions", "revoke", "alice", "--id", endID))
	assert.False(t, cliLive(t, s, end))
	assert.True(t, cliLive(t, s, keep))
}

func TestCommandDatabaseURLFromEnvironment(t *testing.T) {
	t.Setenv(cliDatabaseURLEnv, "")
	r := cliRun(t, "", "user", "list")
	require.Error(t, r.err)
	assert.Equal(t, "no database given: pass --database-url or set DATABASE_URL", r.err.Error())
	assert.Equal(t, "Error: no database given: pass --database-url or set DATABASE_URL\n", r.stderr)
	r = cliRun(t, "", "migrate")
	require.Error(t, r.err)
	assert.Equal(t, "no database given: pass --database-url or set DATABASE_URL", r.err.Error())

	url := pgtest.NewDatabase(t)
	t.Setenv(cliDatabaseURLEnv, url)
	r = cliRun(t, cliTestPassword+"\n", "user", "add", "alice", "--password-stdin")
	require.NoError(t, r.err)
	assert.Equal(t, "created user \"alice\"\n", r.stdout)

	t.Setenv(cliDatabaseURLEnv, "postgres://u@127.0.0.1:1/nowhere")
	r = cliDB(t, url, "", "user", "list")
	require.NoError(t, r.err, "--database-url wins over DATABASE_URL")
	assert.Contains(t, r.stdout, "alice")
}

func TestCommandDatabaseDownDoesNotShowPassword(t *testing.T) {
	t.Parallel()
	const secret = "s3cretpw"
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"closed port", "postgres://u:" + secret + "@127.0.0.1:1/db?sslmode=disable",
			[]string{"connecting to the database at 127.0.0.1:1/db:", "user=u database=db", "127.0.0.1:1"}},
		{"closed port, password in the query", "postgres://u@127.0.0.1:1/db?sslmode=disable&password=" + secret,
			[]string{"127.0.0.1:1/db"}},
		{"password that is also the database name", "postgres://u:" + secret + "@127.0.0.1:1/" + secret + "?sslmode=disable",
			[]string{"127.0.0.1:1/xxxxx"}},
		{"key=value form", "host=127.0.0.1 port=1 dbname=db user=u password=" + secret + " sslmode=disable",
			[]string{"127.0.0.1:1/db"}},
		{"malformed port", "postgres://u:" + secret + "@127.0.0.1:notaport/db",
			[]string{"the database URL cannot be parsed"}},
		{"malformed, unencoded slash in the password", "postgres://u:" + secret + "/x@127.0.0.1:1/db",
			[]string{"the database URL cannot be parsed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range [][]string{
				{"migrate"},
				{"user", "list"},
				{"user", "add", "alice", "--password-stdin"},
				{"sessions", "revoke", "alice"},
			} {
				start := time.Now()
				r := cliDB(t, tc.url, cliTestPassword+"\n", args...)
				require.Error(t, r.err, args)
				assert.Less(t, time.Since(start), 20*time.Second)
				assert.NotContains(t, r.all(), secret, args)
				for _, want := range tc.want {
					assert.Contains(t, r.err.Error(), want, args)
				}
				assert.Equal(t, "Error: "+r.err.Error()+"\n", r.stderr, "the error once, and no usage")
				assert.Empty(t, r.stdout)
			}
		})
	}
}

func TestCommandUnknownSubcommand(t *testing.T) {
	r := cliRun(t, "", "user", "frob")
	require.Error(t, r.err)
	assert.Equal(t, `unknown command "frob" for "pg-session user"`, r.err.Error())
	r = cliRun(t, "", "sessions")
	require.NoError(t, r.err, "a group without a command shows its help")
	assert.Contains(t, r.stdout, "revoke")
}
