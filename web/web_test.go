package web

import (
	"bytes"
	"html/template"
	"regexp"
	"strings"
	"testing"
)

func render(t *testing.T, tmpl *template.Template, p LoginPage) string {
	t.Helper()
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, p); err != nil {
		t.Fatalf("execute: %v", err)
	}
	return buf.String()
}

// styleContent returns the text between <style> and </style>, and fails
// unless there is exactly one such element.
func styleContent(t *testing.T, page string) string {
	t.Helper()
	if n := strings.Count(page, "<style"); n != 1 {
		t.Fatalf("want exactly one <style element, got %d", n)
	}
	_, rest, ok := strings.Cut(page, "<style>")
	if !ok {
		t.Fatal("no <style> element (with no attributes)")
	}
	content, _, ok := strings.Cut(rest, "</style>")
	if !ok {
		t.Fatal("unterminated <style> element")
	}
	return content
}

// assertPageHas fails unless page is a whole document that has each of
// want, and whose markup (the page without its stylesheet) has none of
// notWant.
func assertPageHas(t *testing.T, page string, want, notWant []string) {
	t.Helper()
	if !strings.HasPrefix(page, "<!doctype html>") {
		t.Errorf("page does not start with the doctype: %q", page[:min(len(page), 40)])
	}
	for _, s := range want {
		if !strings.Contains(page, s) {
			t.Errorf("page does not contain %q", s)
		}
	}
	markup := strings.Replace(page, styleContent(t, page), "", 1)
	for _, s := range notWant {
		if strings.Contains(markup, s) {
			t.Errorf("page contains %q", s)
		}
	}
}

// inputTag returns the <input ...> tag with the given id.
func inputTag(t *testing.T, page, id string) string {
	t.Helper()
	re := regexp.MustCompile(`<input[^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>`)
	tag := re.FindString(page)
	if tag == "" {
		t.Fatalf("no <input id=%q> in page", id)
	}
	return tag
}

// hiddenRedirects returns the value attributes of all hidden redirect inputs.
func hiddenRedirects(page string) []string {
	re := regexp.MustCompile(`<input type="hidden" name="redirect" value="([^"]*)">`)
	var vals []string
	for _, m := range re.FindAllStringSubmatch(page, -1) {
		vals = append(vals, m[1])
	}
	return vals
}

func TestDefaultLoginTemplateRender(t *testing.T) {
	tests := []struct {
		name    string
		page    LoginPage
		want    []string
		notWant []string
	}{
		{
			name: "plain",
			page: LoginPage{Action: "/login", Redirect: "/docs/"},
			want: []string{
				`<html lang="en">`,
				`<meta name="viewport" content="width=device-width, initial-scale=1">`,
				`<meta name="robots" content="noindex">`,
				`<title>Sign in</title>`,
				`<h1 id="login-title">Sign in</h1>`,
				`<main>`,
				`<form method="post" action="/login"`,
				`<label for="username">Username</label>`,
				`<label for="password">Password</label>`,
				`name="username"`,
				`name="password" type="password"`,
				`autocomplete="current-password"`,
				`<button type="submit">Sign in</button>`,
			},
			notWant: []string{`role="alert"`, `aria-describedby`, `aria-invalid`, `<details`, `new-password`},
		},
		{
			name: "custom title",
			page: LoginPage{Title: "Family photos", Action: "/login"},
			want: []string{
				`<title>Family photos</title>`,
				`<h1 id="login-title">Family photos</h1>`,
			},
			notWant: []string{`Sign in</h1>`},
		},
		{
			name: "failed login",
			page: LoginPage{
				Action:   "/login",
				Redirect: "/",
				Username: "alice",
				Error:    "Invalid username or password",
			},
			want: []string{
				`<p id="login-error" class="alert" role="alert">Invalid username or password</p>`,
				`value="alice"`,
			},
			notWant: []string{`<details`},
		},
		{
			name: "registration",
			page: LoginPage{Action: "/login", Redirect: "/app", RegisterAction: "/register"},
			want: []string{
				`<details class="register">`,
				`<form method="post" action="/register"`,
				`<label for="register-username">`,
				`<label for="register-password">`,
				`autocomplete="new-password"`,
				`Create account</button>`,
			},
			notWant: []string{`role="alert"`},
		},
	}
	tmpl := DefaultLoginTemplate()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := render(t, tmpl, tt.page)
			assertPageHas(t, page, tt.want, tt.notWant)

			user := inputTag(t, page, "username")
			for _, attr := range []string{
				`name="username"`, `autocomplete="username"`, ` required`,
				`autocapitalize="none"`, `spellcheck="false"`,
			} {
				if !strings.Contains(user, attr) {
					t.Errorf("username input %s lacks %s", user, attr)
				}
			}
			pass := inputTag(t, page, "password")
			for _, attr := range []string{`type="password"`, `autocomplete="current-password"`, ` required`} {
				if !strings.Contains(pass, attr) {
					t.Errorf("password input %s lacks %s", pass, attr)
				}
			}
			// Focus starts on the name, or on the password after a failed
			// login with the name filled in: that is what to type again.
			focused := user
			if tt.page.Error != "" && tt.page.Username != "" {
				focused = pass
			}
			if n := strings.Count(page, " autofocus"); n != 1 || !strings.Contains(focused, " autofocus") {
				t.Errorf("%d autofocus attributes, want one on %s", n, focused)
			}
			for _, tag := range []string{user, pass} {
				has := strings.Contains(tag, `aria-describedby="login-error"`)
				if has != (tt.page.Error != "") {
					t.Errorf("input %s: aria-describedby present=%v, want %v", tag, has, tt.page.Error != "")
				}
				if strings.Contains(tag, "placeholder") {
					t.Errorf("input %s uses a placeholder", tag)
				}
			}

			// Every hidden redirect field carries the value.
			redirects := hiddenRedirects(page)
			wantForms := 1
			if tt.page.RegisterAction != "" {
				wantForms = 2
			}
			if len(redirects) != wantForms {
				t.Fatalf("got %d hidden redirect inputs, want %d", len(redirects), wantForms)
			}
			for _, r := range redirects {
				if r != template.HTMLEscapeString(tt.page.Redirect) {
					t.Errorf("redirect value %q, want %q", r, tt.page.Redirect)
				}
			}
		})
	}
}

func TestRememberCheckbox(t *testing.T) {
	checkbox := regexp.MustCompile(`<input type="checkbox"[^>]*>`)
	tests := []struct {
		name        string
		page        LoginPage
		wantBox     bool
		wantChecked bool
	}{
		{"off", LoginPage{Action: "/login"}, false, false},
		{"off even when remembered", LoginPage{Action: "/login", Remembered: true}, false, false},
		{"on", LoginPage{Action: "/login", Remember: true}, true, false},
		{"on after failed login", LoginPage{Action: "/login", Remember: true, Remembered: true, Username: "alice", Error: "Invalid username or password"}, true, true},
		{"on with registration", LoginPage{Action: "/login", Remember: true, RegisterAction: "/register"}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := render(t, DefaultLoginTemplate(), tt.page)
			boxes := checkbox.FindAllString(page, -1)
			if !tt.wantBox {
				if len(boxes) != 0 || strings.Contains(page, "Keep me signed in") || strings.Contains(page, `name="remember"`) {
					t.Fatalf("page has a remember checkbox: %q", boxes)
				}
				return
			}
			if len(boxes) != 1 {
				t.Fatalf("got %d checkboxes, want 1", len(boxes))
			}
			box := boxes[0]
			if !strings.HasPrefix(box, `<input type="checkbox" name="remember" value="on" id="remember"`) {
				t.Errorf("checkbox = %s", box)
			}
			if got := strings.Contains(box, " checked"); got != tt.wantChecked {
				t.Errorf("checkbox %s: checked=%v, want %v", box, got, tt.wantChecked)
			}
			if !strings.Contains(page, `<label for="remember">Keep me signed in</label>`) {
				t.Error("checkbox has no label")
			}
			if strings.Count(page, `id="remember"`) != 1 {
				t.Error("id remember is not unique")
			}
			// It belongs to the sign-in form: after the password, before
			// the sign-in button, and before any registration form.
			signIn := page[strings.Index(page, `id="password"`):strings.Index(page, `<button type="submit">Sign in</button>`)]
			if !strings.Contains(signIn, box) {
				t.Error("checkbox is not between the password field and the sign-in button")
			}
		})
	}
}

func TestSignedOutNotice(t *testing.T) {
	page := render(t, DefaultLoginTemplate(), LoginPage{Action: "/login", Notice: "You have been signed out"})
	if !strings.Contains(page, `<p class="notice" role="status">You have been signed out</p>`) {
		t.Fatal("the notice is not a role=status paragraph")
	}
	if strings.Index(page, `role="status"`) > strings.Index(page, "<form") {
		t.Error("the notice comes after the form")
	}
	if page := render(t, DefaultLoginTemplate(), LoginPage{Action: "/login"}); strings.Contains(page, `role="status"`) {
		t.Error("an empty notice is rendered")
	}
}

func TestErrorIsAlert(t *testing.T) {
	page := render(t, DefaultLoginTemplate(), LoginPage{Action: "/login", Error: "Nope"})
	re := regexp.MustCompile(`<p id="login-error"[^>]*role="alert"[^>]*>Nope</p>`)
	if !re.MatchString(page) {
		t.Fatalf("error is not in a role=alert element with id login-error:\n%s", page)
	}
	if strings.Count(page, `id="login-error"`) != 1 {
		t.Error("id login-error is not unique")
	}
	// The alert comes before the form, so it is read first.
	if strings.Index(page, `role="alert"`) > strings.Index(page, "<form") {
		t.Error("error is rendered after the form")
	}
}

func TestLabelsBound(t *testing.T) {
	page := render(t, DefaultLoginTemplate(), LoginPage{Action: "/login", RegisterAction: "/register", Remember: true})
	labels := regexp.MustCompile(`<label for="([^"]+)">`).FindAllStringSubmatch(page, -1)
	if len(labels) != 5 {
		t.Fatalf("got %d labels, want 5", len(labels))
	}
	for _, m := range labels {
		if n := strings.Count(page, `id="`+m[1]+`"`); n != 1 {
			t.Errorf("label for=%q matches %d elements, want 1", m[1], n)
		}
	}
	// Every visible input has a label.
	for _, m := range regexp.MustCompile(`<input [^>]*>`).FindAllString(page, -1) {
		if strings.Contains(m, `type="hidden"`) {
			continue
		}
		id := regexp.MustCompile(`\bid="([^"]+)"`).FindStringSubmatch(m)
		if id == nil || !strings.Contains(page, `<label for="`+id[1]+`">`) {
			t.Errorf("input without a label: %s", m)
		}
	}
}

func TestEscaping(t *testing.T) {
	const evil = `"><script>alert(1)</script>`
	tests := []struct {
		name string
		page LoginPage
	}{
		{"redirect", LoginPage{Action: "/login", Redirect: evil}},
		{"username", LoginPage{Action: "/login", Username: evil, Error: "x"}},
		{"error", LoginPage{Action: "/login", Error: evil}},
		{"title", LoginPage{Action: "/login", Title: evil}},
		{"action", LoginPage{Action: evil}},
		{"register action", LoginPage{Action: "/login", RegisterAction: evil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := render(t, DefaultLoginTemplate(), tt.page)
			if strings.Contains(page, "<script") {
				t.Fatalf("unescaped <script in page:\n%s", page)
			}
			if strings.Contains(page, `"><`+"script") || strings.Contains(page, `alert(1)</`) {
				t.Fatalf("value broke out of its context:\n%s", page)
			}
			if !strings.Contains(page, "&lt;script&gt;") && !strings.Contains(page, "%3cscript%3e") {
				t.Errorf("escaped value not found in page:\n%s", page)
			}
		})
	}
	t.Run("javascript action", func(t *testing.T) {
		page := render(t, DefaultLoginTemplate(), LoginPage{Action: "javascript:alert(1)"})
		if strings.Contains(page, "javascript:") {
			t.Fatalf("javascript: URL in form action:\n%s", page)
		}
	})
	t.Run("redirect value round trip", func(t *testing.T) {
		page := render(t, DefaultLoginTemplate(), LoginPage{Action: "/login", Redirect: evil})
		r := hiddenRedirects(page)
		if len(r) != 1 || r[0] != "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" {
			t.Fatalf("redirect = %q", r)
		}
	})
}
