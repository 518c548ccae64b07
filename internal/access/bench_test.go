package access

import (
	"fmt"
	"net/http/httptest"
	"testing"
)

// BenchmarkDecide20Rules decides a request by a user in three groups on a
// policy of 20 rules of every kind, where the rule that matches is the 19th:
// the gate's cost per request for a long rule list. The path is lowercase
// and clean, as most are; mixed_case adds the one allocation of lowering it.
func BenchmarkDecide20Rules(b *testing.B) {
	var lines []string
	for i := range 6 {
		lines = append(lines,
			fmt.Sprintf("allow /area%d/* group team%d second_factor", i, i),
			fmt.Sprintf("deny /drafts%d/* *.tmp%d", i, i),
			fmt.Sprintf("allow /api%d/* method POST PUT user u%d admin", i, i))
	}
	lines = append(lines, "allow /projects/* group alpha beta staff", "allow /* any_user")
	p := compileLines(b, lines...)
	who := Subject{Username: "alice", Groups: "devs,ops,staff"}
	for _, tc := range []struct{ name, target string }{
		{"lowercase", "/projects/alpha/readme.md"},
		{"mixed_case", "/projects/Alpha/README.md"},
	} {
		r := httptest.NewRequest("GET", tc.target, nil)
		if d := p.Decide(r, who); d.Rule != 18 || !d.Allowed {
			b.Fatalf("%s: %+v", tc.target, d)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Decide(r, who)
			}
		})
	}
}
