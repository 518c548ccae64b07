package access

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// ParseRule reads the allow or deny line the dispenser is at (d.Val() is
// "allow" or "deny"). It only turns text into a Rule: whether the rule
// makes sense (its methods, group names, subjects) is Compile's to say, for
// the Caddyfile and JSON alike. Syntax:
//
//	allow <paths...> [method <METHOD...>] <subject...> [second_factor]
//	deny  <paths...> [method <METHOD...>] [<subject...>]
//
// where a path starts with / or *, and a subject is any_user, admin,
// group <name...> or user <name...>. A list of methods or names runs to the
// next keyword; a name that is itself a keyword is written quoted, as in
// group "admin", and a quoted word is always a name.
func ParseRule(d *caddyfile.Dispenser) (Rule, error) {
	r := Rule{Action: d.Val()}
	if r.Action != "allow" && r.Action != "deny" {
		return r, d.Errf("expected allow or deny, not %q", r.Action)
	}
	for d.NextArg() {
		if !isPath(d.Val()) {
			d.Prev() // the keyword, for the loop below
			break
		}
		r.Paths = append(r.Paths, d.Val())
	}
	if len(r.Paths) == 0 {
		return r, d.Errf("%s needs one or more path patterns after it, such as /admin/* or *.pdf", r.Action)
	}
	for d.NextArg() {
		word := d.Val()
		if d.Token().Quoted() || !isKeyword(word) {
			if isPath(word) {
				return r, d.Errf("%s: path pattern %s must come right after %s, before the other words", r.short(), word, r.Action)
			}
			return r, d.Errf("%s: unexpected %q; expected method, any_user, group, user, admin or second_factor", r.short(), word)
		}
		var err error
		switch word {
		case wordMethod:
			r.Methods, err = readNames(d, r, r.Methods)
		case wordGroup:
			r.Groups, err = readNames(d, r, r.Groups)
		case wordUser:
			r.Users, err = readNames(d, r, r.Users)
		case wordAnyUser:
			r.AnyUser = true
		case wordAdmin:
			r.Admin = true
		case wordSecondFactor:
			r.SecondFactor = true
		}
		if err != nil {
			return r, err
		}
	}
	// NextBlock consumes an empty block and says false, leaving its }.
	if d.NextBlock(d.Nesting()) || (d.Val() == "}" && !d.Token().Quoted()) {
		return r, d.Errf("%s: a rule takes no block", r.short())
	}
	return r, nil
}

// readNames appends the words after the keyword d is at, up to the next bare
// keyword or the end of the line, to names; there must be one at least.
func readNames(d *caddyfile.Dispenser, r Rule, names []string) ([]string, error) {
	keyword, n := d.Val(), len(names)
	for d.NextArg() {
		if !d.Token().Quoted() && isKeyword(d.Val()) {
			d.Prev()
			break
		}
		if !d.Token().Quoted() && isPath(d.Val()) {
			return names, d.Errf("%s: path pattern %s must come right after %s, not after %s", r.short(), d.Val(), r.Action, keyword)
		}
		names = append(names, d.Val())
	}
	if len(names) == n {
		if keyword == wordMethod {
			return names, d.Errf("%s: method needs one or more methods after it, such as GET POST", r.short())
		}
		what := map[string]string{wordGroup: "group names", wordUser: "usernames"}[keyword]
		if d.NextArg() { // the keyword that came too soon
			return names, d.Errf("%s: %s needs one or more %s after it, not the keyword %s "+
				"(quote a name that is a keyword: %s %q)", r.short(), keyword, what, d.Val(), keyword, d.Val())
		}
		return names, d.Errf("%s: %s needs one or more %s after it", r.short(), keyword, what)
	}
	return names, nil
}
