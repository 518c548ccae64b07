package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/store"
)

// accessCaddyfile has two sites: an intranet with rules and public assets,
// and a site with neither, gated for any signed-in user.
const accessCaddyfile = `{
	pg_session {
		secrets_key {env.PGSESSION_SECRETS_KEY}
	}
}

intranet.example.com {
	pg_session {
		public /assets/*
		allow /admin/* group admins second_factor
		allow /internal/* group staff admins
		deny /drafts/*
		allow /reports/* method GET user Carol
		allow /* any_user
	}
	respond "intranet"
}

www.example.com, *.www.example.com {
	pg_session
	respond "www"
}
`

// The blocks check-access prints for each site.
const (
	intranet = "intranet.example.com\n"
	www      = "www.example.com, *.www.example.com\n"
	anyone   = "  allowed: no rule matches: any signed-in user may go on\n"
)

// exitStatus is the status caddy exits with after the command returned err.
func exitStatus(t *testing.T, err error) int {
	t.Helper()
	var e *exitError
	if err == nil {
		return 0
	} else if !errors.As(err, &e) {
		return 1 // any other error: caddycmd.Main exits with 1
	}
	if e.status > 1 {
		// caddycmd.Main finds its own exit error in the chain; this is its message.
		require.EqualError(t, e.caddy, "exiting with status 2")
	}
	return e.status
}

// writeFile writes content to name in a new temporary folder and returns
// its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// accessUsers creates alice (staff), bob (no group), dana (admins) and
// Carol (no group, named by a rule).
func accessUsers(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := context.Background()
	for _, g := range []string{"staff", "admins"} {
		_, err := s.CreateGroup(ctx, g)
		require.NoError(t, err)
	}
	require.NoError(t, s.AddToGroups(ctx, addUser(t, s, "alice").ID, "staff"))
	addUser(t, s, "bob")
	require.NoError(t, s.AddToGroups(ctx, addUser(t, s, "dana").ID, "admins"))
	addUser(t, s, "Carol")
}

func TestCheckAccess(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	accessUsers(t, s)
	config := writeFile(t, "Caddyfile", accessCaddyfile)

	for _, tc := range []struct {
		args   []string
		want   string
		status int
	}{
		{[]string{"alice", "GET", "/internal/report"},
			intranet + "  allowed: rule 2 (allow /internal/* group staff admins) allows: alice is in staff\n" + www + anyone, 0},
		{[]string{"ALICE", "GET", "/Internal/Report?year=2026"},
			intranet + "  allowed: rule 2 (allow /internal/* group staff admins) allows: alice is in staff\n" + www + anyone, 0},
		{[]string{"bob", "GET", "/internal/report"},
			intranet + "  refused (403): rule 2 (allow /internal/* group staff admins) refuses: " +
				"bob matches none of its subjects (group staff admins)\n" + www + anyone, 1},
		{[]string{"dana", "POST", "/admin/users"},
			intranet + "  needs a second factor (step-up): rule 1 (allow /admin/* group admins second_factor) " +
				"needs a second factor first: dana is in admins, but has given no second factor in this session\n" + www + anyone, 1},
		{[]string{"alice", "GET", "/admin/users"},
			intranet + "  refused (403): rule 1 (allow /admin/* group admins second_factor) refuses: " +
				"alice matches none of its subjects (group admins)\n" + www + anyone, 1},
		{[]string{"dana", "GET", "/drafts/plan"},
			intranet + "  refused (403): rule 3 (deny /drafts/*) refuses: it names no one, so it refuses everyone\n" + www + anyone, 1},
		{[]string{"carol", "GET", "/reports/q1"},
			intranet + "  allowed: rule 4 (allow /reports/* method GET user Carol) allows: it names carol\n" + www + anyone, 0},
		{[]string{"carol", "POST", "/reports/q1"},
			intranet + "  allowed: rule 5 (allow /* any_user) allows: carol is signed in (any_user)\n" + www + anyone, 0},
		{[]string{"bob", "GET", "/assets/app.css"},
			intranet + "  public: served without a session (public /assets/*)\n" + www + anyone, 0},
		// The gate serves public paths only with the case as sent.
		{[]string{"bob", "GET", "/ASSETS/app.css"},
			intranet + "  allowed: rule 5 (allow /* any_user) allows: bob is signed in (any_user)\n" + www + anyone, 0},
		{[]string{"bob", "GET", "/assets/..;/drafts/plan"},
			intranet + "  allowed: rule 5 (allow /* any_user) allows: bob is signed in (any_user)\n" + www + anyone, 0},
	} {
		r := executeDB(t, url, "", append([]string{"check-access", "--config", config}, tc.args...)...)
		assert.Equal(t, tc.want, r.stdout, tc.args)
		assert.Equal(t, tc.status, exitStatus(t, r.err), tc.args)
		assert.Empty(t, r.stderr, "a refusal is the answer, not an error: %v", tc.args)
	}
}

func TestCheckAccessHost(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	accessUsers(t, s)
	config := writeFile(t, "Caddyfile", accessCaddyfile)

	for _, tc := range []struct {
		host, want string
		status     int
	}{
		{"intranet.example.com", intranet + "  refused (403): rule 3 (deny /drafts/*) refuses: it names no one, so it refuses everyone\n", 1},
		{"INTRANET.example.com:8443", intranet + "  refused (403): rule 3 (deny /drafts/*) refuses: it names no one, so it refuses everyone\n", 1},
		{"www.example.com", www + anyone, 0},
		{"docs.www.example.com", www + anyone, 0},
	} {
		r := executeDB(t, url, "", "check-access", "bob", "GET", "/drafts/plan", "--config", config, "--host", tc.host)
		assert.Equal(t, tc.want, r.stdout, tc.host)
		assert.Equal(t, tc.status, exitStatus(t, r.err), tc.host)
	}

	// A wildcard is one label, as in Caddy's host matcher.
	for _, host := range []string{"a.docs.www.example.com", "example.com", "other.example.org"} {
		r := executeDB(t, url, "", "check-access", "bob", "GET", "/", "--config", config, "--host", host)
		require.Error(t, r.err, host)
		assert.Equal(t, "no pg_session site of "+config+" serves host \""+host+"\"", r.err.Error())
		assert.Equal(t, "Error: "+r.err.Error()+"\n", r.stderr)
		assert.Equal(t, 2, exitStatus(t, r.err))
		assert.Empty(t, r.stdout)
	}
}

func TestCheckAccessSecondFactor(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	accessUsers(t, s)
	config := writeFile(t, "Caddyfile", accessCaddyfile)
	args := []string{"check-access", "dana", "GET", "/admin/users", "--config", config, "--host", "intranet.example.com"}

	r := executeDB(t, url, "", args...)
	assert.Equal(t, intranet+"  needs a second factor (step-up): rule 1 (allow /admin/* group admins second_factor) "+
		"needs a second factor first: dana is in admins, but has given no second factor in this session\n", r.stdout)
	assert.Equal(t, 1, exitStatus(t, r.err))

	r = executeDB(t, url, "", append(args, "--second-factor")...)
	assert.Equal(t, intranet+"  allowed: rule 1 (allow /admin/* group admins second_factor) allows: dana is in admins\n", r.stdout)
	assert.Equal(t, 0, exitStatus(t, r.err))
}

func TestCheckAccessUnknownUser(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	accessUsers(t, s)
	config := writeFile(t, "Caddyfile", accessCaddyfile)

	r := executeDB(t, url, "", "check-access", "zed", "GET", "/", "--config", config)
	require.Error(t, r.err)
	assert.Equal(t, `no user "zed"`, r.err.Error())
	assert.Equal(t, "Error: no user \"zed\"\n", r.stderr, "one line, no usage")
	assert.Empty(t, r.stdout)
	assert.Equal(t, 2, exitStatus(t, r.err))
}

// A rule at fault is reported as caddy adapt reports it, with the file and
// line, before any database is asked.
func TestCheckAccessBadRule(t *testing.T) {
	t.Parallel()
	config := writeFile(t, "Caddyfile", `docs.example.com {
	pg_session {
		allow /x/* group Staff
	}
	respond "docs"
}
`)
	r := executeDB(t, "postgres://u@127.0.0.1:1/nowhere", "", "check-access", "alice", "GET", "/x/y", "--config", config)
	require.Error(t, r.err)
	assert.Equal(t, `parsing caddyfile tokens for 'pg_session': rule 1 (allow /x/*): "Staff" is not a group name: `+
		`1 to 64 lowercase letters, digits, - _ or ., starting with a letter or digit, at `+config+`:3`, r.err.Error())
	assert.Equal(t, "Error: "+r.err.Error()+"\n", r.stderr)
	assert.Empty(t, r.stdout)
	assert.Equal(t, 2, exitStatus(t, r.err))
}

// A .json file is Caddy's own config; its rules are checked as the plugin
// checks them, since no adapter did.
func TestCheckAccessJSONConfig(t *testing.T) {
	t.Parallel()
	url, s := newDatabase(t)
	accessUsers(t, s)
	config := writeFile(t, "caddy.json", `{"apps": {"http": {"servers": {"srv0": {"listen": [":8080"], "routes": [
		{"handle": [{"handler": "pg_session", "rules": [
			{"action": "deny", "paths": ["/ops/*"], "users": ["Bob"]}
		]}]}
	]}}}}}`)

	r := executeDB(t, url, "", "check-access", "bob", "DELETE", "/ops/x", "--config", config)
	assert.Equal(t, "every host on :8080\n  refused (403): rule 1 (deny /ops/* user Bob) refuses: it names bob\n", r.stdout)
	assert.Equal(t, 1, exitStatus(t, r.err))
	r = executeDB(t, url, "", "check-access", "alice", "DELETE", "/ops/x", "--config", config, "--host", "any.example")
	assert.Equal(t, "every host on :8080\n"+anyone, r.stdout, "a deny passes on the users it does not name")
	assert.Equal(t, 0, exitStatus(t, r.err))

	unreachable := writeFile(t, "caddy.json", `{"apps": {"http": {"servers": {"srv0": {"routes": [
		{"match": [{"host": ["a.example"]}], "handle": [{"handler": "pg_session", "rules": [
			{"action": "allow", "paths": ["/*"], "any_user": true},
			{"action": "deny", "paths": ["/ops/*"]}
		]}]}
	]}}}}}`)
	r = executeDB(t, url, "", "check-access", "bob", "GET", "/ops/x", "--config", unreachable)
	require.Error(t, r.err)
	assert.Equal(t, unreachable+": the pg_session handler of a.example: rule 2 (deny /ops/*): can never match: "+
		"rule 1 (allow /*) before it decides every request; move this rule above it, or remove it", r.err.Error())
	assert.Equal(t, 2, exitStatus(t, r.err))

	none := writeFile(t, "caddy.json", `{"apps": {"http": {"servers": {"srv0": {"routes": [
		{"handle": [{"handler": "static_response", "body": "hi"}]}]}}}}}`)
	r = executeDB(t, url, "", "check-access", "bob", "GET", "/", "--config", none)
	require.Error(t, r.err)
	assert.Equal(t, none+" has no pg_session handler", r.err.Error())
	assert.Equal(t, 2, exitStatus(t, r.err))
}

// Slips in the arguments are usage errors, status 2, with nothing read.
func TestCheckAccessUsage(t *testing.T) {
	t.Parallel()
	config := writeFile(t, "Caddyfile", accessCaddyfile)
	nowhere := "postgres://u@127.0.0.1:1/nowhere"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"alice", "GET"}, "give the user, the method and the path: check-access alice GET /internal/report --config Caddyfile"},
		{[]string{"alice", "GET", "/", "extra"}, "too many arguments: give the user, the method and the path"},
		{[]string{"alice", "get", "/"}, `method "get" must be written in uppercase, GET, as clients send it`},
		{[]string{"alice", "GE T", "/"}, `"GE T" is not a request method: a method is a word such as GET or POST`},
		{[]string{"alice", "GET", "internal/report"}, `path "internal/report" must start with /, as in /internal/report`},
		{[]string{"alice", "GET", "/a#b"}, `path "/a#b" has a fragment (#…), which clients never send`},
		{[]string{"alice", "GET", "/", "--host", "https://a.example/"}, `--host "https://a.example/" is not a host name: give it as example.com, without scheme or path`},
		{[]string{"alice", "GET", "/", "--frob"}, "unknown flag --frob"},
		{[]string{"alice", "GET", "/", "--second-factor=maybe"}, "--second-factor takes no value"},
		{[]string{"alice", "GET", "/", "--adapter", "nginx"}, "unrecognized config adapter: nginx"},
	} {
		r := executeDB(t, nowhere, "", append([]string{"check-access", "--config", config}, tc.args...)...)
		require.Error(t, r.err, tc.args)
		assert.Equal(t, tc.want, r.err.Error(), tc.args)
		assert.Equal(t, "Error: "+tc.want+"\n", r.stderr, tc.args)
		assert.Empty(t, r.stdout, tc.args)
		assert.Equal(t, 2, exitStatus(t, r.err), tc.args)
	}

	r := executeDB(t, nowhere, "", "check-access", "alice", "GET", "/")
	assert.EqualError(t, r.err, "missing --config: the Caddyfile or JSON config whose rules to check")
	assert.Equal(t, 2, exitStatus(t, r.err))
	r = executeDB(t, nowhere, "", "check-access", "alice", "GET", "/", "--config", filepath.Join(t.TempDir(), "Caddyfile"))
	require.Error(t, r.err)
	assert.Contains(t, r.err.Error(), "reading the config: open ")
	assert.Equal(t, 2, exitStatus(t, r.err))
}
