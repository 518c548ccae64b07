// Package web holds the built-in login page of caddy-pgsession.
//
// The page is a single self-contained HTML document rendered from an
// embedded html/template: its CSS is inlined in one <style> element, it
// uses no JavaScript, and it loads nothing from any other URL. Because the
// style element's content is fixed, the server can send a strict
// Content-Security-Policy that allows exactly that stylesheet:
//
//	default-src 'none'; style-src <StyleHash()>; form-action 'self'; frame-ancestors 'none'; base-uri 'none'
package web

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// LoginPage is what the login template is executed with.
type LoginPage struct {
	Title    string // page heading, default "Sign in"
	Action   string // form action path, e.g. "/login"
	Redirect string // carried in a hidden input named "redirect"
	Username string // re-filled after a failed login
	Error    string // message shown above the form after a failed login, e.g. "Invalid username or password"
	// RegisterAction, when non-empty, shows a second small form that lets a
	// visitor create an account by POSTing username, password and redirect
	// to this path. Empty hides it.
	RegisterAction string
}

var (
	//go:embed login.html
	loginHTML string

	//go:embed style.css
	rawCSS string
)

// css is the built-in stylesheet exactly as it appears between <style> and
// </style>. Line endings are normalised to "\n" because browsers hash the
// element's text after the HTML parser has normalised newlines, so a CRLF
// checkout must not change the hash.
var css = normalizeNewlines(rawCSS)

var styleHash = func() string {
	sum := sha256.Sum256([]byte(css))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

func normalizeNewlines(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// styles returns the built-in CSS. It is typed template.CSS so that
// html/template emits it unchanged inside a <style> element, which keeps the
// bytes identical to what StyleHash hashes.
func styles() template.CSS { return template.CSS(css) }

func funcs() template.FuncMap {
	return template.FuncMap{"styles": styles}
}

var defaultTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("login.html").Funcs(funcs()).Parse(loginHTML))
})

// DefaultLoginTemplate returns the built-in login page template (parsed once).
//
// The returned template is shared and safe for concurrent Execute calls;
// callers must not modify it (Clone it first if they need to).
func DefaultLoginTemplate() *template.Template {
	return defaultTemplate()
}

// ParseLoginTemplate parses a site's own login page template file; it is
// executed with the same LoginPage data, and may call {{ styles }} to inline
// the built-in CSS. Written as <style>{{ styles }}</style>, that element
// matches StyleHash.
//
// The template is test-executed with sample data, so mistakes that
// html/template would otherwise only report on the first request (such as
// ambiguous escaping contexts or unknown fields) are reported here. Every
// error names the file.
func ParseLoginTemplate(path string) (*template.Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("login template %s: %w", path, err)
	}
	t, err := template.New(filepath.Base(path)).Funcs(funcs()).Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("login template %s: %w", path, err)
	}
	samples := []LoginPage{
		{Title: "Sign in", Action: "/login", Redirect: "/"},
		{
			Title:          "Sign in",
			Action:         "/login",
			Redirect:       "/",
			Username:       "user",
			Error:          "Invalid username or password",
			RegisterAction: "/register",
		},
	}
	for _, p := range samples {
		if err := t.Execute(io.Discard, p); err != nil {
			return nil, fmt.Errorf("login template %s: %w", path, err)
		}
	}
	return t, nil
}

// StyleHash is the CSP source expression ('sha256-...') of the built-in
// inline <style> element, so the server can send a strict
// Content-Security-Policy (style-src 'sha256-…') without 'unsafe-inline'.
func StyleHash() string {
	return styleHash
}
