// Package web holds the built-in pages of caddy-pgsession: the login page,
// the account page, and the message page (an error a browser meets, or the
// question whether to sign out).
//
// Each page is a single self-contained HTML document rendered from an
// embedded html/template: its CSS is inlined in one <style> element, and it
// loads nothing from any other URL. The login and account pages carry one
// inline <script>, the same fixed text on each (passkey.js), which only
// adds passkeys: everything else works without JavaScript. The pages share
// one stylesheet and one script, so the server can send a strict
// Content-Security-Policy that allows exactly those:
//
//	default-src 'none'; style-src <StyleHash()>; script-src <ScriptHash()>; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'
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
	"time"
)

// LoginPage is what the login template is executed with.
type LoginPage struct {
	Title    string // page heading and title, default "Sign in"; e.g. "Sign in to Example Docs"
	SiteName string // the site's name, e.g. "Example Docs"; empty when not configured
	Action   string // form action path, e.g. "/login"
	Redirect string // carried in a hidden input named "redirect"
	Username string // re-filled after a failed login
	Error    string // message shown above the form after a failed login, e.g. "Invalid username or password"
	Notice   string // message shown above the form, e.g. "You have been signed out" (role="status")
	// RegisterAction, when non-empty, shows a second small form that lets a
	// visitor create an account by POSTing username, password and redirect
	// to this path. Empty hides it.
	RegisterAction string
	// RegisterEmail asks the registration form for an email address (verify_email on).
	RegisterEmail bool
	// Remember shows a "Keep me signed in" checkbox in the sign-in form,
	// submitted as remember=on when ticked. False hides it.
	Remember bool
	// Remembered ticks that checkbox, e.g. to keep the visitor's choice
	// after a failed login.
	Remembered bool
	// PasskeyAPI, the plugin's API path (e.g. "/api/auth"), offers "Sign in
	// with a passkey", shown by the page's script once the browser can use
	// passkeys. Empty leaves it out.
	PasskeyAPI string
	// ForgotHref, when non-empty, shows a "Forgot password?" link to this
	// path, e.g. "/login/forgot": the site can send reset links by mail.
	ForgotHref string
	// Providers are the identity providers to sign in with, each a
	// "Sign in with <Label>" link after the password form (identity.go).
	Providers []ProviderButton
}

// AccountPage is what the account template is executed with.
type AccountPage struct {
	// The site: its name, e.g. "Example Docs", ends the <title> and names
	// the link to its home page, which the top of the page shows unless
	// Home is empty.
	SiteName string
	Home     string

	// Errors shown by the part of the page they belong to (role="alert");
	// Error, at the top of the page, is for one that belongs to no form.
	SessionsError string // by the sessions list, e.g. "That session had already ended"
	PasswordError string // by the password form, e.g. "Current password is wrong"
	// PasswordErrorField names the password form's field at fault,
	// "current_password" or "new_password": it is marked aria-invalid,
	// described by the error, and focused.
	PasswordErrorField string

	Title        string // page title, default "Your account"
	Username     string
	IsAdmin      bool
	Action       string // path all the page's forms POST to, e.g. "/account"
	LogoutAction string // path of the sign-out form, e.g. "/logout"
	Sessions     []AccountSession
	Notice       string // a success message after an action, e.g. "Session ended" (role="status")
	Error        string // an error after an action, e.g. "Current password is wrong" (role="alert")
	// ShowSignIns adds a "Recent sign-ins" section listing SignIns, the
	// latest attempts to sign in to the account, newest first.
	ShowSignIns bool
	SignIns     []AccountSignIn

	// TwoStep is the "Two-step sign-in" section; nil hides it (TOTP is off).
	TwoStep *AccountTwoStep

	// PasskeyAPI, the plugin's API path (e.g. "/api/auth"), adds the
	// "Passkeys" section: Passkeys listed, each with a remove form
	// (action=remove-passkey, passkey=<ID>), and a form to add one, which
	// the page's script shows once the browser can make passkeys and which
	// then goes to PasskeyAdded. Empty leaves the section out.
	PasskeyAPI    string
	Passkeys      []AccountPasskey
	PasskeyAdded  string // where to go after adding one, e.g. "/account?done=passkey-added"
	PasskeysError string // by the passkeys list, e.g. "That passkey had already been removed"

	// Tokens is the "API tokens" section (tokens.go); nil leaves it out.
	Tokens *AccountTokens
	// Email is the "Email address" section (email.go); nil leaves it out.
	Email *AccountEmail

	// The "Linked accounts" section, shown when either list has one
	// (identity.go): the identities the user signs in with, each with an
	// unlink form, and the providers to link, each a form with
	// action=link-identity and provider=<Name>.
	Identities      []LinkedIdentity
	LinkProviders   []ProviderButton
	IdentitiesError string // by the list, e.g. "That account had already been unlinked"
	// NoPassword is a user who has none, such as one an identity provider
	// created: the password form sets one, without the current password.
	NoPassword bool

	// AdminPage, for an admin, links to the admin page, e.g. "/admin"; "" hides the link.
	AdminPage string
}

// AccountTwoStep is the account page's "Two-step sign-in" section. Its
// forms POST to AccountPage.Action with action=totp-setup, action=totp-confirm
// (code), and action=totp-disable (current_password).
type AccountTwoStep struct {
	On            bool // an authenticator is on
	CodesLeft     int  // unused recovery codes, when On
	Required      bool // the site requires a second factor: the page says enrolment comes first
	Error         string
	RecoveryCodes []string // shown once, just after the authenticator was turned on
	// Setup, when set, is an authenticator being set up: its QR code and
	// its secret for typing in, and the form for the first code.
	Setup *AccountTOTPSetup
}

// AccountTOTPSetup is an authenticator being set up.
type AccountTOTPSetup struct {
	QRCode template.HTML // an inline <svg> from QRCodeSVG
	Secret string        // base32, for typing into the app
}

// SecretGroups is the secret in groups of four characters, as authenticator
// apps show a key, so a person typing it in can keep their place; the page
// spaces the groups apart without adding characters, so a copied key is
// the key.
func (s AccountTOTPSetup) SecretGroups() []string {
	var groups []string
	for rest := s.Secret; rest != ""; {
		n := min(4, len(rest))
		groups = append(groups, rest[:n])
		rest = rest[n:]
	}
	return groups
}

// AccountPasskey is one of the user's passkeys on the account page.
type AccountPasskey struct {
	ID         string // opaque id, sent back in the remove form
	Name       string // e.g. "Laptop"
	CreatedAt  time.Time
	LastUsedAt time.Time // the zero time: never used
}

// AccountSignIn is one attempt to sign in to the account, on the account page.
type AccountSignIn struct {
	At        time.Time // when; the zero time hides it
	Device    string    // short description, e.g. from DescribeUserAgent: "Firefox on Linux"
	UserAgent string    // the raw user agent, shown as the device's tooltip
	IP        string
	// Outcome is "success" (marked Signed in, with the factor that
	// finished it), "failure" (marked Failed, with the factor that failed),
	// "throttled" (marked Blocked: refused after too many failed attempts)
	// or "second_factor_required" (the password was right, a code was asked).
	Outcome string
	// Factor is what the attempt checked: "password", "totp",
	// "recovery_code", "passkey", "api_token" (an expired token used),
	// "provider" (an identity provider), or "" for none.
	Factor string
}

// AccountSession is one of the user's sessions on the account page.
//
// The page's forms POST to AccountPage.Action with a hidden "action" field:
//
//   - action=revoke, handle=<Handle>: end one other session;
//   - action=revoke-others: end every session but the current one;
//   - action=password, current_password, new_password (and username, for
//     password managers): change the password; a user with NoPassword
//     sends no current_password, and sets one.
type AccountSession struct {
	Handle     string // opaque id, sent back in the revoke form
	Device     string // short description, e.g. from DescribeUserAgent: "Firefox on Linux"
	UserAgent  string // the raw user agent, shown as the device's tooltip
	IP         string
	CreatedAt  time.Time // shown as "signed in"; the zero time hides it
	LastSeenAt time.Time // shown as "last active"; the zero time hides it
	ExpiresAt  time.Time // shown as "expires"; the zero time hides it
	Current    bool      // the session viewing the page: marked, and has no sign-out button
}

var (
	//go:embed login.html
	loginHTML string

	//go:embed message.html
	messageHTML string

	//go:embed account.html
	accountHTML string

	//go:embed secondfactor.html
	secondFactorHTML string

	// headHTML is the <head> both built-in pages share, as {{template "head" title}}.
	//go:embed head.html
	headHTML string

	//go:embed style.css
	rawCSS string

	//go:embed passkey.js
	rawScript string
)

// css is the built-in stylesheet exactly as it appears between <style> and
// </style>. Line endings are normalised to "\n" because browsers hash the
// element's text after the HTML parser has normalised newlines, so a CRLF
// checkout must not change the hash.
var css = normalizeNewlines(rawCSS)

var styleHash = cspHash(css)

// script is the passkey script exactly as it appears between <script> and
// </script>, newlines normalised as for css.
var script = normalizeNewlines(rawScript)

var scriptHash = cspHash(script)

// cspHash is the CSP source expression of an inline element's text.
func cspHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// passkeyScript returns the passkey script, typed template.JS so that
// html/template emits it unchanged inside a <script> element.
func passkeyScript() template.JS { return template.JS(script) }

func normalizeNewlines(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// styles returns the built-in CSS. It is typed template.CSS so that
// html/template emits it unchanged inside a <style> element, which keeps the
// bytes identical to what StyleHash hashes.
func styles() template.CSS { return template.CSS(css) }

// when formats a time for people, in UTC: "27 Nov 2026 14:03 UTC". The
// zero time gives "", so {{with when .T}} leaves out unknown times.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}

// datetime formats a time for a <time datetime="..."> attribute.
func datetime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// titled is a page's <title>: what the page is, then the site's name when
// there is one and the page does not say it already.
func titled(title, siteName string) string {
	if siteName == "" || strings.Contains(title, siteName) {
		return title
	}
	return title + " · " + siteName
}

func funcs() template.FuncMap {
	return template.FuncMap{"styles": styles, "when": when, "datetime": datetime, "titled": titled, "passkeyScript": passkeyScript,
		"headOf": headOf}
}

// pageHead is what the pages' shared <head> shows: the title, and the
// referrer policy, no-referrer for a page whose address carries a token.
type pageHead struct{ Title, Referrer string }

func headOf(title, referrer string) pageHead { return pageHead{title, referrer} }

// page parses one of the built-in pages with the head they share.
func page(name, text string) *template.Template {
	return template.Must(template.Must(template.New(name).Funcs(funcs()).Parse(headHTML)).Parse(text))
}

var defaultTemplate = sync.OnceValue(func() *template.Template { return page("login.html", loginHTML) })

var defaultAccountTemplate = sync.OnceValue(func() *template.Template { return page("account.html", accountHTML) })

var defaultMessageTemplate = sync.OnceValue(func() *template.Template { return page("message.html", messageHTML) })

var secondFactorTemplate = sync.OnceValue(func() *template.Template { return page("secondfactor.html", secondFactorHTML) })

// SecondFactorTemplate returns the page of a sign-in's second step,
// executed with a SecondFactorPage; shared, like the other pages'.
func SecondFactorTemplate() *template.Template { return secondFactorTemplate() }

// DefaultLoginTemplate returns the built-in login page template (parsed once).
//
// The returned template is shared and safe for concurrent Execute calls;
// callers must not modify it (Clone it first if they need to).
func DefaultLoginTemplate() *template.Template {
	return defaultTemplate()
}

// DefaultAccountTemplate returns the built-in account page template (parsed
// once), executed with an AccountPage. Its <style> element matches
// StyleHash, like the login page's.
//
// The returned template is shared and safe for concurrent Execute calls;
// callers must not modify it (Clone it first if they need to).
func DefaultAccountTemplate() *template.Template {
	return defaultAccountTemplate()
}

// DefaultMessageTemplate returns the built-in message page template (parsed
// once), executed with a MessagePage. Its <style> element matches
// StyleHash, like the other pages'.
//
// The returned template is shared and safe for concurrent Execute calls;
// callers must not modify it (Clone it first if they need to).
func DefaultMessageTemplate() *template.Template {
	return defaultMessageTemplate()
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
			Title:          "Sign in to Example",
			SiteName:       "Example",
			Action:         "/login",
			Redirect:       "/",
			Username:       "user",
			Error:          "Invalid username or password",
			Notice:         "You have been signed out",
			RegisterAction: "/register",
			Remember:       true,
			Remembered:     true,
			PasskeyAPI:     "/api/auth",
			ForgotHref:     "/login/forgot",
			Providers: []ProviderButton{
				{Name: "google", Label: "Google", Href: "/login/with/google?redirect=%2F"},
				{Name: "github", Label: "GitHub", Unavailable: true, Reason: "Try again in a few minutes."},
			},
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

// ScriptHash is the CSP source expression ('sha256-...') of the built-in
// inline <script> element of the login and account pages, for script-src.
func ScriptHash() string {
	return scriptHash
}
