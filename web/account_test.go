package web

import (
	"bytes"
	"html/template"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	sampleNow = time.Date(2026, 11, 27, 14, 3, 0, 0, time.UTC)

	uaFirefoxLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
	uaSafariIPhone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
	uaEdgeWindows  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
)

func sampleSessions() []AccountSession {
	return []AccountSession{
		{
			Handle: "0b8f6c1e-current", Device: "Firefox on Linux", UserAgent: uaFirefoxLinux, IP: "203.0.113.7",
			CreatedAt: sampleNow.Add(-72 * time.Hour), LastSeenAt: sampleNow, ExpiresAt: sampleNow.Add(27 * 24 * time.Hour),
			Current: true,
		},
		{
			Handle: "5d2a9e40-phone", Device: "Safari on iPhone", UserAgent: uaSafariIPhone, IP: "198.51.100.23",
			CreatedAt: sampleNow.Add(-9 * 24 * time.Hour), LastSeenAt: sampleNow.Add(-26 * time.Hour), ExpiresAt: sampleNow.Add(21 * 24 * time.Hour),
		},
		{
			Handle: "e71c3b52-office", Device: "Edge on Windows", UserAgent: uaEdgeWindows, IP: "2001:db8::7334",
			CreatedAt: sampleNow.Add(-20 * 24 * time.Hour), LastSeenAt: sampleNow.Add(-5 * 24 * time.Hour), ExpiresAt: sampleNow.Add(10 * 24 * time.Hour),
		},
	}
}

func samplePage() AccountPage {
	return AccountPage{
		Username:     "alice",
		IsAdmin:      true,
		Action:       "/account",
		LogoutAction: "/logout",
		Sessions:     sampleSessions(),
		Notice:       "Session ended",
	}
}

func renderAccount(t *testing.T, p AccountPage) string {
	t.Helper()
	var buf bytes.Buffer
	if err := DefaultAccountTemplate().Execute(&buf, p); err != nil {
		t.Fatalf("execute: %v", err)
	}
	return buf.String()
}

// sessionItems returns the <li> of each session, in order.
func sessionItems(page string) []string {
	return regexp.MustCompile(`(?s)<li class="session[^"]*">.*?</li>`).FindAllString(page, -1)
}

// describedBy returns the text of the elements the aria-describedby of tag
// names, joined by spaces, as a screen reader reads the description.
func describedBy(t *testing.T, page, tag string) string {
	t.Helper()
	m := regexp.MustCompile(`aria-describedby="([^"]*)"`).FindStringSubmatch(tag)
	if m == nil {
		t.Fatalf("%s has no aria-describedby", tag)
	}
	var texts []string
	for _, id := range strings.Fields(m[1]) {
		el := regexp.MustCompile(`<([a-z]+)[^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)</`).FindStringSubmatch(page)
		if el == nil {
			t.Fatalf("aria-describedby of %s names %q, which is no element with text", tag, id)
		}
		texts = append(texts, el[2])
	}
	return strings.Join(texts, " ")
}

// forms returns every <form ...>...</form> in the page.
func forms(page string) []string {
	return regexp.MustCompile(`(?s)<form [^>]*>.*?</form>`).FindAllString(page, -1)
}

// formsWithAction returns the forms whose hidden action field is value.
func formsWithAction(page, value string) []string {
	var out []string
	for _, f := range forms(page) {
		if strings.Contains(f, `<input type="hidden" name="action" value="`+value+`">`) {
			out = append(out, f)
		}
	}
	return out
}

func TestAccountTemplateRender(t *testing.T) {
	page := renderAccount(t, samplePage())
	for _, s := range []string{
		`<!doctype html>`,
		`<html lang="en">`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<meta name="robots" content="noindex">`,
		`<title>Your account</title>`,
		`<main class="wide">`,
		`<h1>alice <span class="badge">admin</span></h1>`,
		`<p class="notice" role="status">Session ended</p>`,
		`<h2 id="sessions-title">Sessions</h2>`,
		`<h2 id="password-title">Change password</h2>`,
		`<section aria-labelledby="sessions-title">`,
		`<section aria-labelledby="password-title">`,
		`<span id="session-1-device" title="` + template.HTMLEscapeString(uaSafariIPhone) + `">Safari on iPhone</span>`,
		`<dt>IP</dt> <dd id="session-1-ip">198.51.100.23</dd>`,
		`<dt>Signed in</dt> <dd><time datetime="2026-11-18T14:03:00Z">18 Nov 2026 14:03 UTC</time></dd>`,
		`<dt>Last active</dt> <dd><time datetime="2026-11-26T12:03:00Z">26 Nov 2026 12:03 UTC</time></dd>`,
		`<dt>Expires</dt> <dd><time datetime="2026-12-18T14:03:00Z">18 Dec 2026 14:03 UTC</time></dd>`,
		`signs you out of all other sessions`,
		`Signed in as <strong>alice</strong>`,
	} {
		if !strings.Contains(page, s) {
			t.Errorf("page does not contain %q", s)
		}
	}
	if !strings.HasPrefix(page, "<!doctype html>") {
		t.Errorf("page does not start with the doctype: %q", page[:min(len(page), 40)])
	}
	if strings.Contains(page, `role="alert"`) {
		t.Error("page shows an error it was not given")
	}

	// Headings in order: one h1, then h2s, nothing skipped.
	levels := regexp.MustCompile(`<h([1-6])\b`).FindAllStringSubmatch(page, -1)
	var got []string
	for _, l := range levels {
		got = append(got, l[1])
	}
	if strings.Join(got, "") != "122" {
		t.Errorf("heading levels %v, want [1 2 2]", got)
	}
	if i, j := strings.Index(page, "Session ended"), strings.Index(page, "<section"); i > j {
		t.Error("notice comes after the sections")
	}

	// Every form posts, to the account path, except sign-out.
	all := forms(page)
	if len(all) != 5 { // 2 revoke, revoke-others, password, sign out
		t.Fatalf("got %d forms, want 5", len(all))
	}
	for _, f := range all {
		if !strings.HasPrefix(f, `<form method="post" action="/account"`) && !strings.HasPrefix(f, `<form method="post" action="/logout"`) {
			t.Errorf("form does not POST to /account or /logout: %.80s", f)
		}
	}
}

func TestAccountTitleAndBadge(t *testing.T) {
	p := samplePage()
	p.Title = "Family photos: account"
	p.IsAdmin = false
	page := renderAccount(t, p)
	for _, s := range []string{`<title>Family photos: account</title>`, `<p class="eyebrow">Family photos: account</p>`, `<h1>alice</h1>`} {
		if !strings.Contains(page, s) {
			t.Errorf("page does not contain %q", s)
		}
	}
	if strings.Contains(page, ">admin<") {
		t.Error("admin badge shown for a user who is not an admin")
	}
}

func TestAccountSessions(t *testing.T) {
	p := samplePage()
	page := renderAccount(t, p)
	items := sessionItems(page)
	if len(items) != len(p.Sessions) {
		t.Fatalf("got %d session items, want %d", len(items), len(p.Sessions))
	}
	for i, s := range p.Sessions {
		item := items[i]
		if !strings.Contains(item, ">"+s.Device+"</span>") {
			t.Errorf("session %d does not show its device %q", i, s.Device)
		}
		if !strings.Contains(item, `<dd id="session-`+strconv.Itoa(i)+`-ip">`+s.IP+"</dd>") {
			t.Errorf("session %d does not show its IP", i)
		}
		if s.Current {
			if !strings.HasPrefix(item, `<li class="session current">`) {
				t.Errorf("current session is not marked: %.60s", item)
			}
			if !strings.Contains(item, `<span class="badge this">This device</span>`) {
				t.Error("current session is not labelled This device")
			}
			if strings.Contains(item, "<form") || strings.Contains(item, "<button") || strings.Contains(item, s.Handle) {
				t.Errorf("current session has a sign-out form:\n%s", item)
			}
			continue
		}
		if strings.Contains(item, "This device") || strings.Contains(item, "current") {
			t.Errorf("session %d is marked as the current one", i)
		}
		f := forms(item)
		if len(f) != 1 {
			t.Fatalf("session %d has %d forms, want 1", i, len(f))
		}
		for _, s := range []string{
			`<form method="post" action="/account"`,
			`<input type="hidden" name="action" value="revoke">`,
			`<input type="hidden" name="handle" value="` + s.Handle + `">`,
			`>Sign out this device</button>`,
		} {
			if !strings.Contains(f[0], s) {
				t.Errorf("session %d form lacks %q:\n%s", i, s, f[0])
			}
		}
		// The button's visible label is its name (no aria-label hides it),
		// and screen readers tell the buttons apart by what describes
		// each: its session's device and address.
		button := regexp.MustCompile(`<button[^>]*>`).FindString(f[0])
		if strings.Contains(button, "aria-label") {
			t.Errorf("session %d button has an aria-label: %s", i, button)
		}
		if got := describedBy(t, page, button); got != s.Device+" "+s.IP {
			t.Errorf("session %d button is described as %q, want %q", i, got, s.Device+" "+s.IP)
		}
	}
	if n := len(formsWithAction(page, "revoke")); n != 2 {
		t.Errorf("got %d revoke forms, want 2", n)
	}
	// The current session's handle appears nowhere: it is never sent back.
	if strings.Contains(page, p.Sessions[0].Handle) {
		t.Error("page contains the current session's handle")
	}
}

func TestAccountRevokeOthers(t *testing.T) {
	all := sampleSessions()
	current, others := all[:1], all[1:]
	tests := []struct {
		name     string
		sessions []AccountSession
		want     bool
	}{
		{"current and others", all, true},
		{"only the current one", current, false},
		{"only others", others, true},
		{"none", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := samplePage()
			p.Sessions = tt.sessions
			page := renderAccount(t, p)
			f := formsWithAction(page, "revoke-others")
			if got := len(f) == 1; got != tt.want || len(f) > 1 {
				t.Fatalf("got %d revoke-others forms, want present=%v", len(f), tt.want)
			}
			if tt.want {
				if !strings.Contains(f[0], `<form method="post" action="/account"`) ||
					!strings.Contains(f[0], `>Sign out all other sessions</button>`) {
					t.Errorf("revoke-others form:\n%s", f[0])
				}
				// It follows the list.
				if strings.Index(page, `value="revoke-others"`) < strings.LastIndex(page, `<li class="session`) {
					t.Error("revoke-others form comes before the sessions")
				}
			}
			if len(tt.sessions) == 0 && !strings.Contains(page, "No active sessions.") {
				t.Error("no sessions, and no word about it")
			}
			if len(tt.sessions) == 0 && strings.Contains(page, "<ul") {
				t.Error("empty session list rendered")
			}
		})
	}
}

func TestAccountPasswordForm(t *testing.T) {
	page := renderAccount(t, samplePage())
	f := formsWithAction(page, "password")
	if len(f) != 1 {
		t.Fatalf("got %d password forms, want 1", len(f))
	}
	form := f[0]
	if !strings.HasPrefix(form, `<form method="post" action="/account"`) {
		t.Errorf("password form: %.80s", form)
	}
	cur := inputTag(t, form, "current-password")
	for _, attr := range []string{`name="current_password"`, `type="password"`, `autocomplete="current-password"`, ` required`} {
		if !strings.Contains(cur, attr) {
			t.Errorf("current password input %s lacks %s", cur, attr)
		}
	}
	nw := inputTag(t, form, "new-password")
	for _, attr := range []string{`name="new_password"`, `type="password"`, `autocomplete="new-password"`, `minlength="8"`, ` required`, `aria-describedby="new-password-hint"`} {
		if !strings.Contains(nw, attr) {
			t.Errorf("new password input %s lacks %s", nw, attr)
		}
	}
	if !strings.Contains(form, `<p id="new-password-hint" class="hint">At least 8 characters.</p>`) {
		t.Error("no hint for the new password")
	}
	// A hidden username lets password managers update the right entry.
	if !strings.Contains(form, `<input type="text" name="username" value="alice" autocomplete="username" hidden>`) {
		t.Error("no hidden username for password managers")
	}
	if !strings.Contains(form, `<button type="submit" class="inline">Change password</button>`) {
		t.Error("no Change password button")
	}

	out := forms(page)
	last := out[len(out)-1]
	if !strings.HasPrefix(last, `<form method="post" action="/logout">`) || !strings.Contains(last, `>Sign out</button>`) {
		t.Errorf("last form is not the sign-out form:\n%s", last)
	}
	if strings.Contains(last, `name="action"`) {
		t.Error("sign-out form carries an account action")
	}
}

func TestAccountMessages(t *testing.T) {
	p := samplePage()
	p.Notice = ""
	p.Error = "Current password is wrong"
	page := renderAccount(t, p)
	if !strings.Contains(page, `<p class="alert" role="alert">Current password is wrong</p>`) {
		t.Error("error is not an alert")
	}
	if strings.Contains(page, `role="status"`) {
		t.Error("empty notice rendered")
	}
	if strings.Index(page, `role="alert"`) > strings.Index(page, "<section") {
		t.Error("error comes after the sections")
	}
}

func TestAccountLabelsBound(t *testing.T) {
	page := renderAccount(t, samplePage())
	labels := regexp.MustCompile(`<label for="([^"]+)">`).FindAllStringSubmatch(page, -1)
	if len(labels) != 2 {
		t.Fatalf("got %d labels, want 2", len(labels))
	}
	for _, m := range labels {
		if n := strings.Count(page, `id="`+m[1]+`"`); n != 1 {
			t.Errorf("label for=%q matches %d elements, want 1", m[1], n)
		}
	}
	for _, m := range regexp.MustCompile(`<input [^>]*>`).FindAllString(page, -1) {
		if strings.Contains(m, `type="hidden"`) || strings.HasSuffix(m, " hidden>") {
			continue
		}
		id := regexp.MustCompile(`\bid="([^"]+)"`).FindStringSubmatch(m)
		if id == nil || !strings.Contains(page, `<label for="`+id[1]+`">`) {
			t.Errorf("input without a label: %s", m)
		}
	}
	// Every button has a name people can see.
	for _, b := range regexp.MustCompile(`<button[^>]*>([^<]*)</button>`).FindAllStringSubmatch(page, -1) {
		if strings.TrimSpace(b[1]) == "" {
			t.Errorf("button without text: %s", b[0])
		}
	}
	// ids are unique.
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bid="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if seen[m[1]] {
			t.Errorf("duplicate id %q", m[1])
		}
		seen[m[1]] = true
	}
}

func TestAccountEscaping(t *testing.T) {
	const evil = `"><script>alert(1)</script>`
	tests := []struct {
		name string
		edit func(p *AccountPage)
	}{
		{"username", func(p *AccountPage) { p.Username = evil }},
		{"title", func(p *AccountPage) { p.Title = evil }},
		{"notice", func(p *AccountPage) { p.Notice = evil }},
		{"error", func(p *AccountPage) { p.Error = evil }},
		{"action", func(p *AccountPage) { p.Action = evil }},
		{"logout action", func(p *AccountPage) { p.LogoutAction = evil }},
		{"device", func(p *AccountPage) { p.Sessions[1].Device = evil }},
		{"current device", func(p *AccountPage) { p.Sessions[0].Device = evil }},
		{"user agent", func(p *AccountPage) { p.Sessions[1].UserAgent = evil }},
		{"ip", func(p *AccountPage) { p.Sessions[2].IP = evil }},
		{"handle", func(p *AccountPage) { p.Sessions[2].Handle = evil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := samplePage()
			tt.edit(&p)
			page := renderAccount(t, p)
			if strings.Contains(page, "<script") {
				t.Fatalf("unescaped <script in page:\n%s", page)
			}
			if strings.Contains(page, `"><`+"script") || strings.Contains(page, `alert(1)</`) {
				t.Fatalf("value broke out of its context:\n%s", page)
			}
			if !strings.Contains(page, "&lt;script&gt;") && !strings.Contains(page, "%3cscript%3e") {
				t.Errorf("escaped value not found in page")
			}
		})
	}
	t.Run("javascript actions", func(t *testing.T) {
		p := samplePage()
		p.Action, p.LogoutAction = "javascript:alert(1)", "javascript:alert(2)"
		if page := renderAccount(t, p); strings.Contains(page, "javascript:") {
			t.Fatalf("javascript: URL in a form action:\n%s", page)
		}
	})
	t.Run("handle round trip", func(t *testing.T) {
		p := samplePage()
		p.Sessions[1].Handle = `a"b&c<d`
		page := renderAccount(t, p)
		if !strings.Contains(page, `<input type="hidden" name="handle" value="a&#34;b&amp;c&lt;d">`) {
			t.Fatal("handle not escaped as an attribute value")
		}
	})
}

func TestAccountSelfContained(t *testing.T) {
	p := samplePage()
	p.Error, p.Home = "e", "/docs/"
	assertSelfContained(t, renderAccount(t, p))
}
