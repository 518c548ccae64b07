package access

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzParseRule reads any line as a rule: ParseRule and Compile must not
// panic, and a rule ParseRule accepts must read back the same from String,
// the form messages and check-access show it in.
func FuzzParseRule(f *testing.F) {
	for _, line := range append(example,
		"allow /api/* method GET HEAD user alice admin any_user",
		`allow "/a b" group "admin" staff user "Ada Lovelace"`,
		"deny *.pdf *x* /y",
		"allow /x group",
		"allow /x method post any_user {\n}",
		"deny /x\u00a0y",
		"allow `/back\\slash` user \"q\\\"uote\"",
	) {
		f.Add(line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		tokens, err := caddyfile.Tokenize([]byte(line), "Fuzzfile")
		if err != nil || len(tokens) == 0 {
			return
		}
		d := caddyfile.NewDispenser(tokens)
		d.Next()
		r, err := ParseRule(d)
		if err != nil {
			return
		}
		_, _ = Compile([]Rule{r}, withSecondFactor)
		for _, v := range append(append(append(append([]string{}, r.Paths...), r.Methods...), r.Groups...), r.Users...) {
			if strings.Contains(v, `\`) && strings.Contains(v, "`") {
				return // no Caddyfile quoting holds both
			}
		}
		again, err := parseLine(t, r.String())
		if err != nil {
			t.Fatalf("%q reads as %+v, written back as %q, which fails: %v", line, r, r.String(), err)
		}
		if !equalRules(r, again) {
			t.Fatalf("%q reads as %+v, written back as %q, which reads as %+v", line, r, r.String(), again)
		}
	})
}

// equalRules compares rules as ParseRule makes them; String compares the
// flags, and slices.Equal takes an empty list for a missing one.
func equalRules(a, b Rule) bool {
	return a.String() == b.String() && slices.Equal(a.Paths, b.Paths) && slices.Equal(a.Methods, b.Methods) &&
		slices.Equal(a.Groups, b.Groups) && slices.Equal(a.Users, b.Users)
}
