package access

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parseLine reads one rule line as the handler's block would hand it over.
func parseLine(t testing.TB, line string) (Rule, error) {
	t.Helper()
	d := caddyfile.NewTestDispenser(line)
	require.True(t, d.Next())
	return ParseRule(d)
}

func TestParseRule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want Rule
	}{
		{"allow /* any_user", Rule{Action: "allow", Paths: []string{"/*"}, AnyUser: true}},
		{"allow /admin/* group admins second_factor",
			Rule{Action: "allow", Paths: []string{"/admin/*"}, Groups: []string{"admins"}, SecondFactor: true}},
		{"allow /internal/* group staff admins",
			Rule{Action: "allow", Paths: []string{"/internal/*"}, Groups: []string{"staff", "admins"}}},
		{"deny /drafts/*", Rule{Action: "deny", Paths: []string{"/drafts/*"}}},
		{"deny /a /b *.pdf *x*", Rule{Action: "deny", Paths: []string{"/a", "/b", "*.pdf", "*x*"}}},
		{"allow /api/* method GET HEAD group readers",
			Rule{Action: "allow", Paths: []string{"/api/*"}, Methods: []string{"GET", "HEAD"}, Groups: []string{"readers"}}},
		{"allow /api/* method POST user alice bob admin",
			Rule{Action: "allow", Paths: []string{"/api/*"}, Methods: []string{"POST"}, Users: []string{"alice", "bob"}, Admin: true}},
		// Lists may be repeated, and subjects come in any order.
		{"allow /x admin group a user u group b any_user",
			Rule{Action: "allow", Paths: []string{"/x"}, Groups: []string{"a", "b"}, Users: []string{"u"}, Admin: true, AnyUser: true}},
		// A quoted word is a name even when it is a keyword; a quoted path is a path.
		{`allow "/a b" group "admin" "user"`,
			Rule{Action: "allow", Paths: []string{"/a b"}, Groups: []string{"admin", "user"}}},
		{`allow /x user "Ada Lovelace"`, Rule{Action: "allow", Paths: []string{"/x"}, Users: []string{"Ada Lovelace"}}},
		// The parser reads text; Compile judges it (lowercase methods, bad names).
		{"allow /x method get group Bad", Rule{Action: "allow", Paths: []string{"/x"}, Methods: []string{"get"}, Groups: []string{"Bad"}}},
		{"deny /x second_factor", Rule{Action: "deny", Paths: []string{"/x"}, SecondFactor: true}},
		{"allow /x", Rule{Action: "allow", Paths: []string{"/x"}}},
	} {
		got, err := parseLine(t, tc.line)
		if assert.NoError(t, err, tc.line) {
			assert.Equal(t, tc.want, got, tc.line)
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ line, want string }{
		{"permit /x any_user", `expected allow or deny, not "permit", at Testfile:1`},
		{"allow", "allow needs one or more path patterns after it, such as /admin/* or *.pdf, at Testfile:1"},
		{"allow any_user", "allow needs one or more path patterns after it"},
		{"allow admin/* any_user", "allow needs one or more path patterns"},
		{"allow /x anyone", `allow /x: unexpected "anyone"; expected method, any_user, group, user, admin or second_factor`},
		{`allow /x "admin"`, `allow /x: unexpected "admin"`},
		{"allow /x group", "allow /x: group needs one or more group names after it, at Testfile:1"},
		{"allow /x group admin", `allow /x: group needs one or more group names after it, not the keyword admin (quote a name that is a keyword: group "admin")`},
		{"allow /x user second_factor", "user needs one or more usernames after it, not the keyword second_factor"},
		{"allow /x method group a", "allow /x: method needs one or more methods after it, such as GET POST"},
		{"allow /x any_user /y", "allow /x: path pattern /y must come right after allow, before the other words"},
		{"allow /x group a /y", "allow /x: path pattern /y must come right after allow, not after group"},
		{"allow /x any_user {\n}", "allow /x: a rule takes no block"},
		{"allow /x any_user {\n\tfoo\n}", "allow /x: a rule takes no block"},
	} {
		_, err := parseLine(t, tc.line)
		if assert.Error(t, err, tc.line) {
			assert.Contains(t, err.Error(), tc.want, tc.line)
		}
	}
}

// ParseRule leaves the dispenser at the rule's last word, so that a block's
// next option is read next, and each error carries the rule's own line.
func TestParseRuleInABlock(t *testing.T) {
	t.Parallel()
	d := caddyfile.NewTestDispenser("pg_session {\n\tallow /a any_user\n\tdeny /b\n\tallow /c group\n}")
	d.Next()
	var rules []Rule
	var err error
	for d.NextBlock(0) {
		var r Rule
		if r, err = ParseRule(d); err != nil {
			break
		}
		rules = append(rules, r)
	}
	assert.Equal(t, []Rule{{Action: "allow", Paths: []string{"/a"}, AnyUser: true}, {Action: "deny", Paths: []string{"/b"}}}, rules)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Testfile:4")
}

// String writes a rule as ParseRule reads it.
func TestRuleStringRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range []Rule{
		{Action: "allow", Paths: []string{"/admin/*"}, Groups: []string{"admins"}, SecondFactor: true},
		{Action: "allow", Paths: []string{"/a b", "*.PDF"}, Methods: []string{"GET"}, Users: []string{"Ada Lovelace", "admin", "/x"}},
		{Action: "deny", Paths: []string{`/back\slash`, `/q"uote`, "/#hash", "/{x}"}},
		{Action: "allow", Paths: []string{"/x"}, Groups: []string{"group", "method"}, Admin: true, AnyUser: true},
	} {
		got, err := parseLine(t, r.String())
		if assert.NoError(t, err, r.String()) {
			assert.Equal(t, r, got, r.String())
		}
	}
	assert.Equal(t, `allow /x group "admin" staff`, Rule{Action: "allow", Paths: []string{"/x"}, Groups: []string{"admin", "staff"}}.String())
}
