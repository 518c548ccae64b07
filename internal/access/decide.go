package access

import (
	"net/http"
	"slices"
	"strings"
)

// Policy decides requests by a list of rules, in order. Compile makes it;
// it is read-only afterwards, so requests share it without locks.
type Policy struct {
	rules []compiled
}

// compiled is a rule made ready for Decide.
type compiled struct {
	rule Rule
	// What Why says when the rule decides, made once so that Decide
	// allocates no sentence: "rule 2 (allow /internal/* group staff admins) allows".
	allows, refuses, stepUp string
	paths                   paths
	methods                 []string
	groups, users           []string // sorted, without repeats
	deny, anyUser, admin    bool
	secondFactor            bool
}

// Subject is the user of a live session, as a rule's subjects are matched
// against it.
type Subject struct {
	// Username is the user's key, the form UserKey gives a rule's names.
	Username string
	// Groups are the user's groups, comma-separated and sorted by bytes,
	// as the store reads them and X-Auth-Groups and the session in memory
	// carry them, so a decision needs no slice of its own and one walk
	// through each list.
	Groups           string
	Admin            bool
	SecondFactorDone bool // a second factor was given in this session
}

// Decision is what the rules say of one request.
type Decision struct {
	// Rule is the index of the rule that decided, from 0, or -1 if none
	// matched the request.
	Rule int
	// Allowed says whether the request may go on.
	Allowed bool
	// StepUp says that the request would be allowed once the user gives a
	// second factor; Allowed is false then.
	StepUp bool
	// Why says it in a sentence: which rule, and what it did. Decide names
	// the rule and its outcome; Explain adds why the user matched or not.
	Why string
}

// noRule is Why when no rule matches.
const noRule = "no rule matches: any signed-in user may go on"

// Decide applies the rules to a request by a signed-in user: the first rule
// whose paths and methods match the request decides, and later rules are
// not read.
//
//   - An allow rule admits the users it names (with a second factor given,
//     if it asks for one; without it the decision is a step-up) and refuses
//     everyone else. A request that matches an allow rule's paths but not its
//     subjects is refused: it does not fall through to a later rule, so a
//     broader rule further down never widens a narrower one above it.
//   - A deny rule refuses the users it names, or everyone if it names none;
//     a user it does not name goes on to the next rule, so a deny is an
//     exception carved out of what follows.
//   - A request no rule matches is allowed, as it was before rules existed:
//     any live session may go on.
//
// Paths are matched exactly as Caddy's path matcher (caddyhttp.MatchPath)
// matches them, case-insensitively and on the cleaned path (see paths).
// Decide allocates nothing unless the path has an uppercase letter or needs
// cleaning (doubled slashes, dot segments), which it does once per request.
func (p *Policy) Decide(r *http.Request, who Subject) Decision {
	return p.decide(r, who, false)
}

// Explain is Decide with a Why that says why the rule matched the user or
// not ("alice is in staff"), for check-access and logs at debug level; it
// allocates that sentence.
func (p *Policy) Explain(r *http.Request, who Subject) Decision {
	return p.decide(r, who, true)
}

func (p *Policy) decide(r *http.Request, who Subject, explain bool) Decision {
	if len(p.rules) == 0 {
		return Decision{Rule: -1, Allowed: true, Why: noRule}
	}
	path := newRequestPath(r)
	defer path.release()
	for i := range p.rules {
		c := &p.rules[i]
		if len(c.methods) > 0 && !slices.Contains(c.methods, r.Method) {
			continue
		}
		if !path.matches(&c.paths) {
			continue
		}
		reason, named := c.subjectMatches(who)
		d := Decision{Rule: i}
		switch {
		case c.deny && !named:
			continue // the deny names others: the next rule decides
		case c.deny, !named:
			d.Why = c.refuses
		case c.secondFactor && !who.SecondFactorDone:
			d.StepUp, d.Why = true, c.stepUp
		default:
			d.Allowed, d.Why = true, c.allows
		}
		if explain {
			d.Why += ": " + c.explain(who, reason)
			if d.StepUp {
				d.Why += ", but has given no second factor in this session"
			}
		}
		return d
	}
	return Decision{Rule: -1, Allowed: true, Why: noRule}
}

// The reasons subjectMatches gives, for Explain.
const (
	byAnyone = iota
	byAnyUser
	byAdmin
	byUser
	byGroup
	byNone
)

// subjectMatches reports whether who is among the rule's subjects, and how;
// a deny without subjects names everyone.
func (c *compiled) subjectMatches(who Subject) (reason int, named bool) {
	switch {
	case c.deny && !c.anyUser && !c.admin && c.groups == nil && c.users == nil:
		return byAnyone, true
	case c.anyUser:
		return byAnyUser, true
	case c.admin && who.Admin:
		return byAdmin, true
	case c.users != nil && slices.Contains(c.users, who.Username):
		return byUser, true
	case commonGroup(c.groups, who.Groups) >= 0:
		return byGroup, true
	}
	return byNone, false
}

// commonGroup returns the index in mine of a group both lists hold, or -1:
// a merge of two sorted lists, or a plain search when theirs is unsorted.
func commonGroup(mine []string, theirs string) int {
	if len(mine) == 0 || theirs == "" {
		return -1
	}
	// Both sorted: one walk through each.
	i, rest := 0, theirs
	for i < len(mine) && rest != "" {
		g, next, _ := strings.Cut(rest, ",")
		switch strings.Compare(mine[i], g) {
		case 0:
			return i
		case -1:
			i++
		default:
			rest = next
		}
	}
	return -1
}

// explain says why who matched the rule's subjects or not.
func (c *compiled) explain(who Subject, reason int) string {
	name := who.Username
	if name == "" {
		name = "the user"
	}
	switch reason {
	case byAnyone:
		return "it names no one, so it refuses everyone"
	case byAnyUser:
		return name + " is signed in (any_user)"
	case byAdmin:
		return name + " is an admin"
	case byUser:
		return "it names " + name
	case byGroup:
		return name + " is in " + c.groups[commonGroup(c.groups, who.Groups)]
	}
	return name + " matches none of its subjects (" + subjects(c.rule) + ")"
}

// subjects writes a rule's subjects as the Caddyfile does.
func subjects(r Rule) string {
	s := Rule{AnyUser: r.AnyUser, Groups: r.Groups, Users: r.Users, Admin: r.Admin}.String()
	return strings.TrimSpace(s)
}
