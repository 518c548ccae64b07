package access

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func get(target string) *http.Request { return httptest.NewRequest(http.MethodGet, target, nil) }

func compileLines(t testing.TB, lines ...string) *Policy {
	t.Helper()
	p, err := Compile(rules(t, lines...), withSecondFactor)
	require.NoError(t, err)
	return p
}

// The example, less public, which the gate reads before the rules.
var example = []string{
	"allow /admin/*    group admins  second_factor",
	"allow /internal/* group staff admins",
	"deny  /drafts/*",
	"allow /docs/*     any_user",
}

var (
	alice = Subject{Username: "alice", Groups: "staff"}
	root  = Subject{Username: "root", Groups: "admins,ops", SecondFactorDone: true}
	eve   = Subject{Username: "eve"}
)

func TestDecide(t *testing.T) {
	t.Parallel()
	p := compileLines(t, example...)
	noFactor := root
	noFactor.SecondFactorDone = false
	for _, tc := range []struct {
		name   string
		method string
		path   string
		who    Subject
		want   Decision
	}{
		{"group with a second factor", "GET", "/admin/users", root, Decision{Rule: 0, Allowed: true}},
		{"group without one: step up", "GET", "/admin/users", noFactor, Decision{Rule: 0, StepUp: true}},
		{"not in the group: refused", "GET", "/admin/users", alice, Decision{Rule: 0}},
		{"another group of the list", "POST", "/internal/wiki", noFactor, Decision{Rule: 1, Allowed: true}},
		{"first of the list", "GET", "/internal/wiki", alice, Decision{Rule: 1, Allowed: true}},
		// A matching path with a non-matching subject does not fall through
		// to the any_user rule below it.
		{"allow does not fall through", "GET", "/internal/docs/x", eve, Decision{Rule: 1}},
		{"deny refuses everyone", "GET", "/drafts/plan", root, Decision{Rule: 2}},
		{"any_user", "GET", "/docs/intro", eve, Decision{Rule: 3, Allowed: true}},
		{"no rule: today's behaviour", "GET", "/elsewhere", eve, Decision{Rule: -1, Allowed: true}},
		{"prefix needs the slash", "GET", "/admin", eve, Decision{Rule: -1, Allowed: true}},
		{"case-insensitive", "GET", "/ADMIN/Users", alice, Decision{Rule: 0}},
		{"doubled slashes are merged", "GET", "//admin//users", alice, Decision{Rule: 0}},
		{"dot segments are cleaned", "GET", "/docs/../admin/users", alice, Decision{Rule: 0}},
		{"encoded slash decodes", "GET", "/admin%2Fusers", alice, Decision{Rule: 0}},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		got := p.Decide(r, tc.who)
		assert.NotEmpty(t, got.Why, tc.name)
		got.Why = ""
		assert.Equal(t, tc.want, got, tc.name)
	}
}

func TestDecideSubjectsAndMethods(t *testing.T) {
	t.Parallel()
	p := compileLines(t,
		"allow /api/* method GET HEAD any_user",
		"allow /api/* method POST user alice admin",
		"deny  /api/*",
		"allow /me/* user bob alice",
		"deny  /ops/* group interns",
		"allow /ops/* group ops",
		"allow /a* /b *.pdf *secret* admin",
	)
	admin := Subject{Username: "carol", Admin: true}
	intern := Subject{Username: "ivan", Groups: "interns,ops"}
	for _, tc := range []struct {
		method, path string
		who          Subject
		rule         int
		allowed      bool
	}{
		{"GET", "/api/x", eve, 0, true},
		{"HEAD", "/api/x", eve, 0, true},
		{"POST", "/api/x", alice, 1, true},
		{"POST", "/api/x", admin, 1, true},
		{"POST", "/api/x", eve, 1, false},
		{"DELETE", "/api/x", admin, 2, false}, // no method rule matches: the deny below decides
		{"GET", "/me/x", alice, 3, true},
		{"GET", "/me/x", admin, 3, false}, // admin is not named: admins have no rights a rule does not give
		{"GET", "/ops/x", intern, 4, false},
		{"GET", "/ops/x", root, 5, true}, // the deny names interns only: root goes on to the next rule
		{"GET", "/ops/x", eve, 5, false},
		{"GET", "/abc", admin, 6, true},
		{"GET", "/b", admin, 6, true},
		{"GET", "/b/", eve, -1, true},
		{"GET", "/x/y.PDF", eve, 6, false},
		{"GET", "/x/top-secret/y", eve, 6, false},
	} {
		d := p.Decide(httptest.NewRequest(tc.method, tc.path, nil), tc.who)
		assert.Equal(t, tc.rule, d.Rule, "%s %s %s", tc.method, tc.path, tc.who.Username)
		assert.Equal(t, tc.allowed, d.Allowed, "%s %s %s", tc.method, tc.path, tc.who.Username)
	}
}

// Groups are read right when the caller did not sort them, and a user in
// no group matches no group rule.
func TestDecideGroups(t *testing.T) {
	t.Parallel()
	p := compileLines(t, "allow /x group c a")
	for _, tc := range []struct {
		groups []string
		want   bool
	}{
		{nil, false}, {[]string{"b"}, false}, {[]string{"a"}, true}, {[]string{"b", "c"}, true},
		{[]string{"c", "d"}, true}, {[]string{"b", "z"}, false}, {[]string{"aa", "bb", "cc"}, false},
	} {
		assert.Equal(t, tc.want, p.Decide(get("/x"), Subject{Username: "u", Groups: strings.Join(tc.groups, ",")}).Allowed, "%v", tc.groups)
	}
}

func TestNoRules(t *testing.T) {
	t.Parallel()
	for _, p := range []*Policy{compileLines(t), {}} {
		d := p.Decide(get("/x"), eve)
		assert.Equal(t, Decision{Rule: -1, Allowed: true, Why: noRule}, d)
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	p := compileLines(t, append(example, "allow /me/* user alice", "allow /ops/* admin", "deny /eve/* any_user")...)
	noFactor := root
	noFactor.SecondFactorDone = false
	admin := Subject{Username: "carol", Admin: true}
	for _, tc := range []struct {
		path string
		who  Subject
		want string
	}{
		{"/internal/x", alice, "rule 2 (allow /internal/* group staff admins) allows: alice is in staff"},
		{"/internal/x", eve, "rule 2 (allow /internal/* group staff admins) refuses: eve matches none of its subjects (group staff admins)"},
		{"/admin/x", noFactor, "rule 1 (allow /admin/* group admins second_factor) needs a second factor first: root is in admins, " +
			"but has given no second factor in this session"},
		{"/drafts/x", alice, "rule 3 (deny /drafts/*) refuses: it names no one, so it refuses everyone"},
		{"/docs/x", eve, "rule 4 (allow /docs/* any_user) allows: eve is signed in (any_user)"},
		{"/me/x", alice, "rule 5 (allow /me/* user alice) allows: it names alice"},
		{"/ops/x", admin, "rule 6 (allow /ops/* admin) allows: carol is an admin"},
		{"/eve/x", eve, "rule 7 (deny /eve/* any_user) refuses: eve is signed in (any_user)"},
		{"/x", eve, noRule},
	} {
		assert.Equal(t, tc.want, p.Explain(get(tc.path), tc.who).Why, tc.path)
		// Decide says the same without the reason.
		assert.Contains(t, tc.want, p.Decide(get(tc.path), tc.who).Why, tc.path)
	}
}

// Decide needs nothing in the request's context: a bare request, as
// check-access makes, is decided as the gate's would be.
func TestDecideWithoutReplacer(t *testing.T) {
	t.Parallel()
	p := compileLines(t, "deny /x")
	r, err := http.NewRequest(http.MethodGet, "http://example.com/X", nil)
	require.NoError(t, err)
	assert.False(t, p.Decide(r, eve).Allowed)
}

// An API token's paths match as a rule's do: Caddy's patterns, any case,
// on the cleaned path.
func TestMatchesAny(t *testing.T) {
	t.Parallel()
	patterns := []string{"/api/*", "*.json"}
	for path, want := range map[string]bool{"/api/x": true, "/API/x": true, "//api/x": true, "/data.json": true,
		"/account": false, "/api": false, "/apix/y": false} {
		assert.Equal(t, want, MatchesAny(get(path), patterns), path)
	}
}
