package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
)

// CompileOptions are what the rules are checked against besides themselves.
type CompileOptions struct {
	// SecondFactorAvailable says whether users can give a second factor at
	// all (a secrets_key for TOTP, or passkeys); without one, a rule asking
	// for it could admit nobody.
	SecondFactorAvailable bool
	// UserKey maps a username of a user rule to the form Subject.Username
	// carries (the store's case-mapped key), or says why it cannot be a
	// username. Nil lowercases, which is the store's key for ASCII names.
	UserKey func(name string) (string, error)
}

// methods are the request methods a rule may name: HTTP's own (RFC 9110,
// and PATCH) and WebDAV's (RFC 4918), which a gated site may serve. A word
// outside them is a typo that would make the rule never match.
var methods = []string{"CONNECT", "COPY", "DELETE", "GET", "HEAD", "LOCK", "MKCOL", "MOVE", "OPTIONS", "PATCH",
	"POST", "PROPFIND", "PROPPATCH", "PUT", "TRACE", "UNLOCK"}

// Compile checks rules and makes the Policy that decides requests with them.
// A rule it refuses is reported as a *RuleError with the rule's index.
func Compile(rules []Rule, opts CompileOptions) (*Policy, error) {
	userKey := opts.UserKey
	if userKey == nil {
		userKey = func(name string) (string, error) { return strings.ToLower(name), nil }
	}
	p := &Policy{rules: make([]compiled, len(rules))}
	for i, r := range rules {
		c, err := compileRule(i, r, opts.SecondFactorAvailable, userKey)
		if err != nil {
			return nil, &RuleError{Index: i, Rule: r, Err: err}
		}
		p.rules[i] = c
	}
	if i, by := Unreachable(rules); i >= 0 {
		return nil, &RuleError{Index: i, Rule: rules[i], Err: fmt.Errorf("can never match: rule %d (%s) before it "+
			"decides every request; move this rule above it, or remove it", by+1, rules[by].short())}
	}
	return p, nil
}

func compileRule(i int, r Rule, secondFactor bool, userKey func(string) (string, error)) (compiled, error) {
	r.Paths, r.Methods, r.Groups, r.Users = slices.Clone(r.Paths), slices.Clone(r.Methods), slices.Clone(r.Groups),
		slices.Clone(r.Users) // the caller's slices may change after
	c := compiled{rule: r, deny: r.Action == "deny", anyUser: r.AnyUser, admin: r.Admin,
		secondFactor: r.SecondFactor}
	switch {
	case r.Action != "allow" && r.Action != "deny":
		return c, fmt.Errorf("the action must be allow or deny, not %q", r.Action)
	case len(r.Paths) == 0:
		return c, errors.New("the rule has no path patterns; give one or more, such as /admin/*")
	case r.Action == "allow" && !r.hasSubject():
		return c, errors.New("an allow rule needs a subject: any_user, admin, group <names...> or user <names...>")
	case r.Action == "deny" && r.SecondFactor:
		return c, errors.New("second_factor belongs to allow rules: a deny rule refuses with or without one")
	case r.SecondFactor && !secondFactor:
		return c, errors.New("second_factor needs a factor users can give: secrets_key in the pg_session " +
			"global option (authenticator apps) or passkey_rp_id (passkeys); without either no user could give one")
	case r.Groups != nil && len(r.Groups) == 0:
		return c, errors.New("the group list is empty; name one or more groups, or leave it out")
	case r.Users != nil && len(r.Users) == 0:
		return c, errors.New("the user list is empty; name one or more users, or leave it out")
	}
	for _, p := range r.Paths {
		if err := checkPath(p); err != nil {
			return c, err
		}
	}
	c.paths = compilePaths(r.Paths)
	for _, m := range r.Methods {
		if !slices.Contains(methods, m) {
			if slices.Contains(methods, strings.ToUpper(m)) {
				return c, fmt.Errorf("method %q must be written in uppercase, %s, as clients send it", m, strings.ToUpper(m))
			}
			return c, fmt.Errorf("unknown method %q; methods are %s", m, strings.Join(methods, ", "))
		}
	}
	c.methods = r.Methods
	for _, g := range r.Groups {
		if !validGroupName(g) {
			return c, fmt.Errorf("%q is not a group name: 1 to 64 lowercase letters, digits, - _ or ., "+
				"starting with a letter or digit", g)
		}
	}
	c.groups = sortedSet(r.Groups)
	for _, u := range r.Users {
		key, err := userKey(u)
		if err != nil {
			return c, fmt.Errorf("user %q: %v", u, err)
		}
		c.users = append(c.users, key)
	}
	c.users = sortedSet(c.users)
	label := fmt.Sprintf("rule %d (%s)", i+1, r)
	c.allows, c.refuses, c.stepUp = label+" allows", label+" refuses", label+" needs a second factor first"
	return c, nil
}

// checkPath refuses a pattern Caddy's path matcher would never match as the
// writer meant it. Placeholders are refused too: they are expanded from the
// request, which would let a client choose which rule applies to it, and a
// fixed pattern is one check-access and Unreachable can read.
func checkPath(p string) error {
	switch {
	case !isPath(p):
		return fmt.Errorf("path pattern %q must start with / or *", p)
	case strings.Contains(p, "{"):
		return fmt.Errorf("path pattern %q holds a placeholder; a rule's paths must be fixed", p)
	case strings.ContainsFunc(p, unicode.IsControl):
		return fmt.Errorf("path pattern %q holds a control character", p)
	}
	return nil
}

func (r Rule) hasSubject() bool {
	return r.AnyUser || r.Admin || len(r.Groups) > 0 || len(r.Users) > 0
}

// decidesAll reports whether a rule decides every request, so that none
// reaches a rule after it: a pattern matching any path (/* or *), no
// methods, and an action that never passes a request on, which is any allow
// and a deny of everyone (naming no one, or any_user).
func (r Rule) decidesAll() bool {
	return len(r.Methods) == 0 && (slices.Contains(r.Paths, "/*") || slices.Contains(r.Paths, "*")) &&
		(r.Action == "allow" || (r.Action == "deny" && (!r.hasSubject() || r.AnyUser)))
}

// Unreachable returns the index of the first rule that can never match,
// because rule by before it decides every request, or -1, -1. Compile
// refuses such rules; the reader of a config may want to say so sooner.
func Unreachable(rules []Rule) (i, by int) {
	for by, r := range rules {
		if r.decidesAll() && by+1 < len(rules) {
			return by + 1, by
		}
	}
	return -1, -1
}

// validGroupName reports whether name fits the profile of group names: 1
// to 64 characters, lowercase ASCII letters, digits, '-', '_' and '.',
// starting with a letter or a digit. The store checks the same profile when
// a group is made; this package imports nothing of the project, so it keeps
// its own copy, and a rule naming a group the store could never hold fails
// at startup rather than matching nobody.
func validGroupName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case i > 0 && (c == '-' || c == '_' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// sortedSet returns names sorted and without repeats, for the merge of
// Decide; nil stays nil.
func sortedSet(names []string) []string {
	if names == nil {
		return nil
	}
	s := slices.Clone(names)
	slices.Sort(s)
	return slices.Compact(s)
}
