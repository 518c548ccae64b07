package web

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// signInItems returns the <li> of each recent sign-in, in order.
func signInItems(page string) []string {
	return regexp.MustCompile(`(?s)<li class="sign-in[^"]*">.*?</li>`).FindAllString(page, -1)
}

func TestAccountRecentSignIns(t *testing.T) {
	p := samplePage()
	p.ShowSignIns = true
	p.SignIns = []AccountSignIn{
		{At: sampleNow, Device: "Firefox on Linux", UserAgent: uaFirefoxLinux, IP: "203.0.113.7", Outcome: "success"},
		{At: sampleNow.Add(-time.Minute), Device: "curl", UserAgent: "curl/8.5.0", IP: "198.51.100.23", Outcome: "throttled"},
		{At: sampleNow.Add(-2 * time.Minute), Device: "", IP: "", Outcome: "failure"},
	}
	page := renderAccount(t, p)
	if !strings.Contains(page, `<h2 id="sign-ins-title">Recent sign-ins</h2>`) {
		t.Fatal("no Recent sign-ins section")
	}
	items := signInItems(page)
	if len(items) != 3 {
		t.Fatalf("%d sign-ins shown, want 3:\n%s", len(items), page)
	}
	for i, want := range []struct {
		class string
		texts []string
	}{
		{`class="sign-in"`, []string{"Firefox on Linux", "Signed in", "203.0.113.7", `datetime="2026-11-27T14:03:00Z"`, "27 Nov 2026 14:03 UTC"}},
		{`class="sign-in failed"`, []string{"curl", "Blocked: too many failed attempts", "198.51.100.23", `class="badge failed"`}},
		{`class="sign-in failed"`, []string{"Unknown device", "Failed: wrong password", `class="badge failed"`}},
	} {
		if !strings.Contains(items[i], want.class) {
			t.Errorf("sign-in %d lacks %s:\n%s", i, want.class, items[i])
		}
		for _, text := range want.texts {
			if !strings.Contains(items[i], text) {
				t.Errorf("sign-in %d lacks %q:\n%s", i, text, items[i])
			}
		}
	}
	if strings.Contains(items[2], "<dt>IP</dt>") {
		t.Error("an unknown IP is left out")
	}
	if n := len(sessionItems(page)); n != len(p.Sessions) {
		t.Errorf("the sessions list shows %d sessions, want %d: sign-ins are not sessions", n, len(p.Sessions))
	}
	if strings.Index(page, "Recent sign-ins") < strings.Index(page, "Change password") {
		t.Error("the section comes after the password form")
	}
}

func TestAccountRecentSignInsEmptyAndHidden(t *testing.T) {
	p := samplePage()
	if page := renderAccount(t, p); strings.Contains(page, "Recent sign-ins") {
		t.Error("without ShowSignIns the section is hidden")
	}
	p.ShowSignIns = true
	page := renderAccount(t, p)
	if !strings.Contains(page, "Recent sign-ins") || !strings.Contains(page, "No sign-ins recorded yet.") {
		t.Errorf("an empty history says so:\n%s", page)
	}
}

func TestAccountRecentSignInsEscaping(t *testing.T) {
	p := samplePage()
	p.ShowSignIns = true
	evil := `"><script>alert(1)</script>`
	p.SignIns = []AccountSignIn{{At: sampleNow, Device: evil, UserAgent: evil, IP: evil, Outcome: "failure"}}
	page := renderAccount(t, p)
	if strings.Contains(page, "<script>") {
		t.Fatalf("a user agent reached the page unescaped:\n%s", page)
	}
	if !strings.Contains(page, "&lt;script&gt;") {
		t.Error("the escaped text is shown")
	}
}
