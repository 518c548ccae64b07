package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// The login page's template: self-contained, its style hashed, your own parsed and checked.

func TestSelfContained(t *testing.T) {
	assertSelfContained(t, render(t, DefaultLoginTemplate(), LoginPage{
		Action: "/login", Redirect: "/x", Username: "u", Error: "e", Notice: "n", RegisterAction: "/register",
		Remember: true, Remembered: true,
	}))
}

func TestStyleHash(t *testing.T) {
	h := StyleHash()
	if !regexp.MustCompile(`^'sha256-[A-Za-z0-9+/]{43}='$`).MatchString(h) {
		t.Fatalf("StyleHash() = %q, not a CSP sha256 source expression", h)
	}
	pages := []LoginPage{
		{},
		{Action: "/login", Error: "Invalid username or password", Username: "bob", RegisterAction: "/r"},
		{Action: "/login", Remember: true, Remembered: true},
	}
	for _, p := range pages {
		page := render(t, DefaultLoginTemplate(), p)
		content := styleContent(t, page)
		sum := sha256.Sum256([]byte(content))
		got := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if got != h {
			t.Errorf("hash of rendered <style> content = %s, StyleHash() = %s", got, h)
		}
	}
}

// html/template must emit the CSS byte for byte.
func TestStylesUnaltered(t *testing.T) {
	raw, err := os.ReadFile("style.css")
	if err != nil {
		t.Fatal(err)
	}
	want := normalizeNewlines(string(raw))
	if string(styles()) != want {
		t.Fatal("styles() differs from style.css")
	}
	if strings.Contains(want, "\r") {
		t.Error("css contains a carriage return")
	}
	if strings.Contains(strings.ToLower(want), "</style") {
		t.Error("css contains </style")
	}
	page := render(t, DefaultLoginTemplate(), LoginPage{Action: "/login"})
	if got := styleContent(t, page); got != want {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("html/template altered the CSS at byte %d: got %q, want %q",
			i, got[i:min(len(got), i+40)], want[i:min(len(want), i+40)])
	}
	for _, s := range []string{"color-scheme: light dark", "prefers-color-scheme: dark", "max-width: 24rem", "system-ui", ":focus-visible"} {
		if !strings.Contains(want, s) {
			t.Errorf("css lacks %q", s)
		}
	}
}

func TestNormalizeNewlines(t *testing.T) {
	if got := normalizeNewlines("a\r\nb\rc\n"); got != "a\nb\nc\n" {
		t.Fatalf("normalizeNewlines = %q", got)
	}
}

func TestDefaultLoginTemplateParsedOnce(t *testing.T) {
	a := DefaultLoginTemplate()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if DefaultLoginTemplate() != a {
				t.Error("DefaultLoginTemplate returned a different template")
			}
			var buf bytes.Buffer
			if err := DefaultLoginTemplate().Execute(&buf, LoginPage{Action: "/login"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func TestParseLoginTemplate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("ok", func(t *testing.T) {
		p := write("mine.html", `<!doctype html><html lang="en"><title>{{or .Title "Sign in"}}</title><style>{{ styles }}</style>`+
			`{{with .Error}}<p role="alert">{{.}}</p>{{end}}`+
			`<form method="post" action="{{.Action}}"><input type="hidden" name="redirect" value="{{.Redirect}}">`+
			`<input name="username" value="{{.Username}}"></form>`)
		tmpl, err := ParseLoginTemplate(p)
		if err != nil {
			t.Fatal(err)
		}
		page := render(t, tmpl, LoginPage{Action: "/in", Redirect: "/back", Username: `"><script>`, Error: "Bad"})
		for _, s := range []string{`action="/in"`, `value="/back"`, `<p role="alert">Bad</p>`, `value="&#34;&gt;&lt;script&gt;"`} {
			if !strings.Contains(page, s) {
				t.Errorf("page lacks %q:\n%s", s, page)
			}
		}
		if styleContent(t, page) != css {
			t.Error("{{ styles }} did not inline the built-in CSS unchanged")
		}
	})

	broken := []struct {
		name, body string
	}{
		{"syntax", "<p>{{ if .Error }}unclosed</p>"},
		{"unknown func", "<p>{{ nosuchfunc }}</p>"},
		{"unknown field", "<p>{{ .NoSuchField }}</p>"},
		{"ambiguous context", `{{if .Error}}<a href="{{else}}<b>{{end}}x`},
	}
	for _, tt := range broken {
		t.Run(tt.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(tt.name, " ", "-")+".html", tt.body)
			tmpl, err := ParseLoginTemplate(p)
			if err == nil {
				t.Fatalf("no error for broken template; got %v", tmpl)
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file %s", err, p)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		p := filepath.Join(dir, "nope.html")
		_, err := ParseLoginTemplate(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("err = %v, want an error naming %s", err, p)
		}
	})
}
