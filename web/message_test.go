package web

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

func renderMessage(t *testing.T, p MessagePage) string {
	t.Helper()
	var buf bytes.Buffer
	if err := DefaultMessageTemplate().Execute(&buf, p); err != nil {
		t.Fatalf("execute: %v", err)
	}
	return buf.String()
}

func TestMessageTemplateRender(t *testing.T) {
	tests := []struct {
		name    string
		page    MessagePage
		want    []string
		notWant []string
	}{
		{
			name: "refusal",
			page: MessagePage{
				Heading: "Too many attempts", SiteName: "Example Docs", Status: 429,
				Message: "Too many failed logins, try again later.", Detail: "Try again in 4 minutes.",
				Links: []Link{{Href: "/login", Text: "Go back"}, {Href: "/", Text: "Go to Example Docs"}},
			},
			want: []string{
				`<title>Too many attempts · Example Docs</title>`,
				`<p class="eyebrow">Error 429</p>`,
				`<h1>Too many attempts</h1>`,
				`<p class="lead">Too many failed logins, try again later.</p>`,
				`<p class="lead">Try again in 4 minutes.</p>`,
				`<a href="/login" class="button">Go back</a>`,
				`<a href="/">Go to Example Docs</a>`,
			},
			notWant: []string{`<form`, `<button`},
		},
		{
			name: "question",
			page: MessagePage{
				Heading: "Sign out?", Message: "You are signed in as alice.",
				Action: "/logout", Button: "Sign out", Links: []Link{{Href: "/", Text: "Stay signed in"}},
			},
			want: []string{
				`<title>Sign out?</title>`,
				`<h1>Sign out?</h1>`,
				`<form method="post" action="/logout">`,
				`<button type="submit">Sign out</button>`,
				`<a href="/">Stay signed in</a>`,
			},
			notWant: []string{`Error `, `class="button"`, `role="alert"`},
		},
		{
			name:    "heading only",
			page:    MessagePage{Heading: "Not found"},
			want:    []string{`<h1>Not found</h1>`},
			notWant: []string{`<p class="lead">`, `<p class="links">`, `<form`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := renderMessage(t, tt.page)
			assertPageHas(t, page, tt.want, tt.notWant)
			if n := strings.Count(page, "<h1"); n != 1 {
				t.Errorf("%d h1 elements, want 1", n)
			}
		})
	}
}

func TestMessageEscaping(t *testing.T) {
	const evil = `"><script>alert(1)</script>`
	for name, edit := range map[string]func(p *MessagePage){
		"heading":   func(p *MessagePage) { p.Heading = evil },
		"site name": func(p *MessagePage) { p.SiteName = evil },
		"message":   func(p *MessagePage) { p.Message = evil },
		"detail":    func(p *MessagePage) { p.Detail = evil },
		"action":    func(p *MessagePage) { p.Action = evil },
		"button":    func(p *MessagePage) { p.Button = evil },
		"link href": func(p *MessagePage) { p.Links[0].Href = evil },
		"link text": func(p *MessagePage) { p.Links[0].Text = evil },
	} {
		t.Run(name, func(t *testing.T) {
			p := MessagePage{Heading: "h", Action: "/logout", Button: "b", Links: []Link{{Href: "/", Text: "t"}}}
			edit(&p)
			page := renderMessage(t, p)
			if strings.Contains(page, "<script") || strings.Contains(page, `alert(1)</`) {
				t.Fatalf("value broke out of its context:\n%s", page)
			}
		})
	}
	page := renderMessage(t, MessagePage{Heading: "h", Action: "javascript:alert(1)", Links: []Link{{Href: "javascript:alert(2)", Text: "t"}}})
	if strings.Contains(page, "javascript:") {
		t.Fatalf("javascript: URL in the page:\n%s", page)
	}
}

func TestMessageSelfContained(t *testing.T) {
	page := renderMessage(t, MessagePage{
		Heading: "Sign out?", SiteName: "Docs", Status: 503, Message: "m", Detail: "d", Action: "/logout", Button: "Sign out",
		Links: []Link{{Href: "/", Text: "Home"}, {Href: "/login?redirect=%2Fdocs%2F", Text: "Sign in"}},
	})
	assertSelfContained(t, page)
	if content := styleContent(t, page); content != css {
		t.Error("the message page's <style> differs from the shared stylesheet, so StyleHash does not match it")
	}
}

// assertSelfContained fails for anything in page that would load, run or
// point elsewhere: a page of the plugin only links to paths on its site.
func assertSelfContained(t *testing.T, page string) {
	t.Helper()
	lower := strings.ToLower(page)
	for _, s := range []string{"<script", "<link", "<img", "<iframe", "<object", "<embed", "<base", "@import", "url(", "javascript:", "style=", "http://", "https://"} {
		if strings.Contains(lower, s) {
			t.Errorf("page contains %q", s)
		}
	}
	if m := regexp.MustCompile(`\son[a-z]+\s*=`).FindString(lower); m != "" {
		t.Errorf("page has an event handler attribute %q", m)
	}
	re := regexp.MustCompile(`\b(src|href|srcset|action|formaction|poster|data|xlink:href)\s*=\s*"([^"]*)"`)
	for _, m := range re.FindAllStringSubmatch(lower, -1) {
		v := strings.TrimSpace(m[2])
		if m[1] != "action" && m[1] != "href" {
			t.Errorf("page loads %s=%q", m[1], v)
			continue
		}
		if !strings.HasPrefix(v, "/") || strings.HasPrefix(v, "//") || strings.Contains(v, `\`) {
			t.Errorf("%s=%q is not a path on this site", m[1], v)
		}
	}
}
