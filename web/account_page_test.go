package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The account page's links, form errors, style and times.

func TestAccountHomeLink(t *testing.T) {
	tests := []struct {
		name, home, siteName string
		link, title          string // the link as rendered ("" for none), and the <title>
	}{
		{"no home", "", "", "", "<title>Your account</title>"},
		{"home", "/", "", `<p class="back"><a href="/"><span aria-hidden="true">←</span> Back to the site</a></p>`, "<title>Your account</title>"},
		{"named site", "/docs/", "Example Docs",
			`<p class="back"><a href="/docs/"><span aria-hidden="true">←</span> Back to Example Docs</a></p>`,
			"<title>Your account · Example Docs</title>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := samplePage()
			p.Home, p.SiteName = tt.home, tt.siteName
			page := renderAccount(t, p)
			if !strings.Contains(page, tt.title) {
				t.Errorf("page has no %s", tt.title)
			}
			if tt.link == "" {
				if strings.Contains(page, "<a ") {
					t.Error("page has a link it was not given")
				}
				return
			}
			if !strings.Contains(page, tt.link) {
				t.Errorf("page lacks %s", tt.link)
			}
			// The way back comes first, before the heading.
			if strings.Index(page, tt.link) > strings.Index(page, "<h1") {
				t.Error("the home link comes after the heading")
			}
		})
	}
}

// Each error is shown by the form it belongs to, marks the fields at fault
// and describes them, and nothing is shown at the top of the page.
func TestAccountErrorsByTheirForms(t *testing.T) {
	section := func(t *testing.T, page, id string) string {
		t.Helper()
		m := regexp.MustCompile(`(?s)<section aria-labelledby="` + id + `">.*?</section>`).FindString(page)
		if m == "" {
			t.Fatalf("no section %s", id)
		}
		return m
	}
	t.Run("revoke", func(t *testing.T) {
		p := samplePage()
		p.Notice, p.SessionsError = "", "That session had already ended"
		page := renderAccount(t, p)
		sessions := section(t, page, "sessions-title")
		alert := `<p id="sessions-error" class="alert" role="alert">That session had already ended</p>`
		if !strings.Contains(sessions, alert) {
			t.Fatalf("the sessions section has no %s:\n%s", alert, sessions)
		}
		if strings.Index(sessions, alert) > strings.Index(sessions, "<ul") {
			t.Error("the error comes after the list it is about")
		}
		if !strings.Contains(sessions, `<ul class="sessions" role="list" aria-describedby="sessions-error">`) {
			t.Error("the list is not described by its error")
		}
		markup := strings.Replace(page, css, "", 1)
		if strings.Count(markup, `role="alert"`) != 1 || strings.Contains(markup, "aria-invalid") {
			t.Error("the error is shown elsewhere too, or marks a field")
		}
	})
	for _, field := range []struct{ name, id, describedBy string }{
		{"current_password", "current-password", "password-error"},
		{"new_password", "new-password", "password-error new-password-hint"},
	} {
		t.Run(field.name, func(t *testing.T) {
			p := samplePage()
			p.Notice, p.PasswordError, p.PasswordErrorField = "", "Current password is wrong", field.name
			page := renderAccount(t, p)
			form := section(t, page, "password-title")
			alert := `<p id="password-error" class="alert" role="alert">Current password is wrong</p>`
			if !strings.Contains(form, alert) || strings.Index(form, alert) > strings.Index(form, "<form") {
				t.Fatalf("the password section has no %s before its form:\n%s", alert, form)
			}
			if strings.Count(page, `role="alert"`) != 1 {
				t.Error("the error is shown elsewhere too")
			}
			for _, id := range []string{"current-password", "new-password"} {
				tag := inputTag(t, form, id)
				atFault := id == field.id
				for _, attr := range []string{` aria-invalid="true"`, ` autofocus`} {
					if strings.Contains(tag, attr) != atFault {
						t.Errorf("%s: %s present=%v, want %v", tag, attr, !atFault, atFault)
					}
				}
				if atFault && !strings.Contains(tag, `aria-describedby="`+field.describedBy+`"`) {
					t.Errorf("%s is not described by %q", tag, field.describedBy)
				}
			}
		})
	}
	t.Run("no errors", func(t *testing.T) {
		markup := strings.Replace(renderAccount(t, samplePage()), css, "", 1)
		for _, s := range []string{`role="alert"`, "aria-invalid", " autofocus", "sessions-error", "password-error"} {
			if strings.Contains(markup, s) {
				t.Errorf("page contains %q", s)
			}
		}
	})
}

func TestAccountStyleHash(t *testing.T) {
	pages := []AccountPage{
		{},
		samplePage(),
		{Username: "bob", Error: "Current password is wrong", Sessions: sampleSessions()[:1]},
	}
	for _, p := range pages {
		page := renderAccount(t, p)
		content := styleContent(t, page)
		if content != css {
			t.Fatal("account page's <style> differs from the shared stylesheet")
		}
		sum := sha256.Sum256([]byte(content))
		if got := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; got != StyleHash() {
			t.Errorf("hash of rendered <style> content = %s, StyleHash() = %s", got, StyleHash())
		}
	}
	for _, s := range []string{"main.wide", "max-width: 40rem", ".session", "[hidden]"} {
		if !strings.Contains(css, s) {
			t.Errorf("css lacks %q", s)
		}
	}
}

func TestAccountZeroTimesHidden(t *testing.T) {
	p := samplePage()
	p.Sessions = []AccountSession{{Handle: "h", Current: true}}
	page := renderAccount(t, p)
	for _, s := range []string{"<time", "Signed in</dt>", "Last active", "Expires", "0001", "<dt>IP</dt>"} {
		if strings.Contains(page, s) {
			t.Errorf("page contains %q for a session without times or IP", s)
		}
	}
	if !strings.Contains(page, `<span id="session-0-device">Unknown device</span>`) {
		t.Error("a session without a device is not an unknown device")
	}
}

func TestWhen(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 11, 27, 14, 3, 59, 0, time.UTC), "27 Nov 2026 14:03 UTC"},
		{time.Date(2026, 1, 5, 0, 7, 0, 0, time.UTC), "5 Jan 2026 00:07 UTC"},
		{time.Date(2026, 11, 27, 0, 30, 0, 0, berlin), "26 Nov 2026 23:30 UTC"},
		{time.Time{}, ""},
	}
	for _, tt := range tests {
		if got := when(tt.in); got != tt.want {
			t.Errorf("when(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := datetime(time.Date(2026, 11, 27, 0, 30, 0, 0, berlin)); got != "2026-11-26T23:30:00Z" {
		t.Errorf("datetime = %q", got)
	}
	if got := datetime(time.Time{}); got != "" {
		t.Errorf("datetime(zero) = %q", got)
	}
}

func TestDefaultAccountTemplateParsedOnce(t *testing.T) {
	a := DefaultAccountTemplate()
	if a == DefaultLoginTemplate() {
		t.Fatal("account template is the login template")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if DefaultAccountTemplate() != a {
				t.Error("DefaultAccountTemplate returned a different template")
			}
			var buf bytes.Buffer
			if err := DefaultAccountTemplate().Execute(&buf, samplePage()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}
