package access

import (
	"fmt"
	"strings"
	"unicode"
)

// Rule is one access rule as the handler's JSON config holds it ("rules":
// [...]), and as ParseRule reads it from a Caddyfile line. Compile checks it.
type Rule struct {
	// Action is "allow" or "deny".
	Action string `json:"action"`
	// Paths are path patterns of Caddy's path matcher: /exact, /prefix/*,
	// *.suffix, *substring*, matched case-insensitively. Any of them matches.
	Paths []string `json:"paths"`
	// Methods, if any, limit the rule to requests with one of these methods
	// (uppercase, as clients send them); none means every method.
	Methods []string `json:"methods,omitempty"`
	// The subjects: a request's user matches the rule if any of them holds.
	// An allow rule needs one; a deny rule without any refuses everyone.
	AnyUser bool     `json:"any_user,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	Users   []string `json:"users,omitempty"`
	Admin   bool     `json:"admin,omitempty"`
	// SecondFactor makes an allow rule admit its users only once they have
	// given a second factor in this session.
	SecondFactor bool `json:"second_factor,omitempty"`
}

// The words of the Caddyfile syntax after a rule's paths.
const (
	wordMethod       = "method"
	wordAnyUser      = "any_user"
	wordGroup        = "group"
	wordUser         = "user"
	wordAdmin        = "admin"
	wordSecondFactor = "second_factor"
)

// isKeyword reports whether a bare word ends a list of methods, groups or users.
func isKeyword(s string) bool {
	switch s {
	case wordMethod, wordAnyUser, wordGroup, wordUser, wordAdmin, wordSecondFactor:
		return true
	}
	return false
}

// String writes the rule back in the Caddyfile's syntax, so that messages
// and check-access show a rule as it was written; ParseRule reads it back to
// the same Rule, quoting a name that would otherwise read as a keyword.
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString(r.Action)
	for _, p := range r.Paths {
		b.WriteByte(' ')
		b.WriteString(quoteIfNeeded(p, false))
	}
	writeList(&b, wordMethod, r.Methods)
	if r.AnyUser {
		b.WriteString(" " + wordAnyUser)
	}
	writeList(&b, wordGroup, r.Groups)
	writeList(&b, wordUser, r.Users)
	if r.Admin {
		b.WriteString(" " + wordAdmin)
	}
	if r.SecondFactor {
		b.WriteString(" " + wordSecondFactor)
	}
	return b.String()
}

// short is the rule's action and paths, which name it in Compile's errors
// without repeating the part that may be at fault.
func (r Rule) short() string {
	return strings.TrimSpace(Rule{Action: r.Action, Paths: r.Paths}.String())
}

func writeList(b *strings.Builder, word string, names []string) {
	if len(names) == 0 {
		return
	}
	b.WriteString(" " + word)
	for _, n := range names {
		b.WriteByte(' ')
		b.WriteString(quoteIfNeeded(n, true))
	}
}

// quoteIfNeeded quotes s when a bare s would not read back as itself: empty,
// with spaces (the lexer splits on any of Unicode's), quotes or braces, or,
// for a name, a keyword or a path. The Caddyfile's double quotes escape only
// a quote, and its backticks nothing, so a backslash calls for backticks.
func quoteIfNeeded(s string, name bool) string {
	bare := s != "" && !strings.ContainsAny(s, "\"'`{}\\#<") && !strings.ContainsFunc(s, unicode.IsSpace) &&
		(!name || (!isKeyword(s) && !isPath(s)))
	switch {
	case bare:
		return s
	case strings.Contains(s, `\`) && !strings.Contains(s, "`"):
		return "`" + s + "`"
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

// isPath reports whether a word is a path pattern: Caddy's path matchers
// start with / or with a wildcard.
func isPath(s string) bool { return strings.HasPrefix(s, "/") || strings.HasPrefix(s, "*") }

// RuleError is a rule Compile refuses. Index is the rule's position in the
// slice, from 0, so that the Caddyfile reader can point at the line it read
// it from; the message counts from 1, as a reader of the config does.
type RuleError struct {
	Index int
	Rule  Rule
	Err   error
}

func (e *RuleError) Error() string {
	return fmt.Sprintf("rule %d (%s): %v", e.Index+1, e.Rule.short(), e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }
