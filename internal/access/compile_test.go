package access

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rules reads Caddyfile lines into rules.
func rules(t testing.TB, lines ...string) []Rule {
	t.Helper()
	var rs []Rule
	for _, line := range lines {
		r, err := parseLine(t, line)
		require.NoError(t, err, line)
		rs = append(rs, r)
	}
	return rs
}

// withSecondFactor is the usual site: TOTP or passkeys are set up.
var withSecondFactor = CompileOptions{SecondFactorAvailable: true}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rules []Rule
		opts  CompileOptions
		index int
		want  string
	}{
		{[]Rule{{Action: "permit", Paths: []string{"/x"}, AnyUser: true}}, withSecondFactor, 0,
			`rule 1 (permit /x): the action must be allow or deny, not "permit"`},
		{[]Rule{{Action: "deny"}}, withSecondFactor, 0, "rule 1 (deny): the rule has no path patterns"},
		{rules(t, "allow /a any_user", "deny /b /c admin"), withSecondFactor, -1, ""},
		{[]Rule{{Action: "deny", Paths: []string{"/ok", "admin/*"}}}, withSecondFactor, 0,
			`rule 1 (deny /ok admin/*): path pattern "admin/*" must start with / or *`},
		{[]Rule{{Action: "deny", Paths: []string{"/{http.request.header.x}/*"}}}, withSecondFactor, 0, "holds a placeholder"},
		{[]Rule{{Action: "deny", Paths: []string{"/a\nb"}}}, withSecondFactor, 0, "holds a control character"},
		{rules(t, "deny /a", "allow /admin/*"), withSecondFactor, 1,
			"rule 2 (allow /admin/*): an allow rule needs a subject: any_user, admin, group <names...> or user <names...>"},
		{[]Rule{{Action: "allow", Paths: []string{"/x"}, AnyUser: true, Groups: []string{}}}, withSecondFactor, 0,
			"the group list is empty"},
		{[]Rule{{Action: "allow", Paths: []string{"/x"}, Admin: true, Users: []string{}}}, withSecondFactor, 0,
			"the user list is empty"},
		{rules(t, "allow /x group Admins"), withSecondFactor, 0,
			`rule 1 (allow /x): "Admins" is not a group name: 1 to 64 lowercase letters, digits, - _ or ., starting with a letter or digit`},
		{rules(t, "allow /x group staff -x"), withSecondFactor, 0, `"-x" is not a group name`},
		{rules(t, "allow /x group "+strings.Repeat("a", 65)), withSecondFactor, 0, "is not a group name"},
		{rules(t, "allow /x method GET FETCH any_user"), withSecondFactor, 0,
			`rule 1 (allow /x): unknown method "FETCH"; methods are CONNECT, COPY,`},
		{rules(t, "allow /x method post any_user"), withSecondFactor, 0,
			`method "post" must be written in uppercase, POST, as clients send it`},
		{rules(t, "allow /* any_user", "deny /drafts/*"), withSecondFactor, 1,
			"rule 2 (deny /drafts/*): can never match: rule 1 (allow /*) before it decides every request"},
		{rules(t, "deny * /x", "allow /y any_user"), withSecondFactor, 1, "can never match: rule 1 (deny * /x)"},
		{rules(t, "deny /a", "deny /* any_user", "deny /b", "deny /c"), withSecondFactor, 2, "rule 3 (deny /b): can never match: rule 2 (deny /*)"},
		{rules(t, "allow /admin/* group admins second_factor"), CompileOptions{}, 0,
			"rule 1 (allow /admin/*): second_factor needs a factor users can give: secrets_key in the pg_session global option"},
		{rules(t, "deny /x second_factor"), withSecondFactor, 0, "second_factor belongs to allow rules"},
		{rules(t, "allow /x user bad!"), CompileOptions{UserKey: func(string) (string, error) {
			return "", errors.New("username contains \"!\"")
		}}, 0, `rule 1 (allow /x): user "bad!": username contains "!"`},
	} {
		_, err := Compile(tc.rules, tc.opts)
		if tc.index < 0 {
			assert.NoError(t, err)
			continue
		}
		var re *RuleError
		if assert.ErrorAs(t, err, &re, tc.want) {
			assert.Equal(t, tc.index, re.Index, tc.want)
			assert.Contains(t, err.Error(), tc.want)
		}
	}
}

// Rules that only look unreachable are not: a rule limited by method, a
// deny naming some users (the rest go on), a catch-all at the end.
func TestCompileKeepsReachableRules(t *testing.T) {
	t.Parallel()
	for _, rs := range [][]Rule{
		rules(t, "allow /* method GET any_user", "deny /x"),
		rules(t, "deny /* group interns", "allow /x any_user"),
		rules(t, "allow /x* any_user", "deny /x"),
		rules(t, "deny /drafts/*", "allow /* any_user"),
		nil,
	} {
		_, err := Compile(rs, withSecondFactor)
		assert.NoError(t, err, fmt.Sprint(rs))
		i, by := Unreachable(rs)
		assert.Equal(t, [2]int{-1, -1}, [2]int{i, by}, fmt.Sprint(rs))
	}
}

func TestValidGroupName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"a", "0", "staff", "team-a", "team_b", "v1.2", strings.Repeat("z", 64)} {
		assert.True(t, validGroupName(ok), ok)
	}
	for _, bad := range []string{"", "-a", "_a", ".a", "Staff", "a b", "é", "a/b", strings.Repeat("z", 65)} {
		assert.False(t, validGroupName(bad), bad)
	}
}

// Compile keeps what it needs, so the caller's slices may change after.
func TestCompileCopiesRules(t *testing.T) {
	t.Parallel()
	rs := rules(t, "allow /x group b a user Bob")
	p, err := Compile(rs, withSecondFactor)
	require.NoError(t, err)
	rs[0].Groups[0], rs[0].Paths[0] = "zz", "/y"
	assert.True(t, p.Decide(get("/x"), Subject{Username: "u", Groups: "b"}).Allowed)
	assert.True(t, p.Decide(get("/x"), Subject{Username: "bob"}).Allowed, "names are lowercased by default")
}
