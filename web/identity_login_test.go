package web

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Identity providers on the login page, and the page a callback ends on.

func sampleProviders() []ProviderButton {
	return []ProviderButton{
		{Name: "google", Label: "Google", Href: "/login/with/google?redirect=%2Fdocs%2F"},
		{Name: "gitlab", Label: "GitLab", Href: "/login/with/gitlab?redirect=%2Fdocs%2F", Unavailable: true, Reason: "Try again in a few minutes."},
		{Name: "github", Label: "GitHub", Href: "/login/with/github?redirect=%2Fdocs%2F&prompt=1"},
	}
}

func providerLoginPage() LoginPage {
	return LoginPage{Action: "/login", Redirect: "/docs/", Remember: true, RegisterAction: "/register", Providers: sampleProviders()}
}

func TestLoginProviderButtons(t *testing.T) {
	page := render(t, DefaultLoginTemplate(), providerLoginPage())
	assertPageHas(t, page, []string{
		`<p class="divider"><span>or</span></p>`,
		`<ul class="providers" role="list" aria-label="Other ways to sign in">`,
		`<a class="button secondary" href="/login/with/google?redirect=%2Fdocs%2F" data-provider="google">Sign in with Google</a>`,
		`<a class="button secondary" href="/login/with/github?redirect=%2Fdocs%2F&amp;prompt=1" data-provider="github">Sign in with GitHub</a>`,
	}, []string{`role="alert"`, `aria-invalid`, "/login/with/gitlab"})

	// The one that is down is a disabled button, not a link, and says so.
	down := regexp.MustCompile(`<button[^>]*data-provider="gitlab"[^>]*>[^<]*</button>`).FindString(page)
	if down == "" {
		t.Fatal("no button for the provider that is down")
	}
	for _, s := range []string{`type="button"`, ` disabled`, `>Sign in with GitLab</button>`} {
		if !strings.Contains(down, s) {
			t.Errorf("%s lacks %s", down, s)
		}
	}
	if got := describedBy(t, page, down); got != "GitLab is unavailable right now. Try again in a few minutes." {
		t.Errorf("the disabled button is described as %q", got)
	}
	if !strings.Contains(page, `<p id="provider-1-status" class="hint" role="status">`) || strings.Count(page, `role="status"`) != 1 {
		t.Error("the provider's status is not the page's one role=status paragraph")
	}

	// After the password form, before the registration; the form itself
	// is as usable as without providers: nothing in it is disabled, and
	// focus starts in it.
	signIn := page[strings.Index(page, `<form method="post" action="/login"`):strings.Index(page, `<button type="submit">Sign in</button>`)]
	if strings.Contains(signIn, "disabled") || strings.Contains(signIn, "provider") {
		t.Errorf("the sign-in form is touched by the providers:\n%s", signIn)
	}
	if n := strings.Count(page, " autofocus"); n != 1 || !strings.Contains(inputTag(t, page, "username"), " autofocus") {
		t.Error("focus does not start on the username")
	}
	end, list, register := strings.Index(page, `Sign in</button>`), strings.Index(page, `class="providers"`), strings.Index(page, `<details`)
	if !(end < list && list < register) {
		t.Errorf("the providers are not between the sign-in form and the registration (%d, %d, %d)", end, list, register)
	}
	// In the order given, which is also the order of focus.
	g, l, h := strings.Index(page, `data-provider="google"`), strings.Index(page, `data-provider="gitlab"`), strings.Index(page, `data-provider="github"`)
	if !(g < l && l < h) {
		t.Error("the providers are not in the order given")
	}
}

func TestLoginWithoutProviders(t *testing.T) {
	page := render(t, DefaultLoginTemplate(), LoginPage{Action: "/login"})
	for _, s := range []string{"providers", "divider", "data-provider", "Sign in with"} {
		if strings.Contains(strings.Replace(page, css, "", 1), s) {
			t.Errorf("a page without providers contains %q", s)
		}
	}
}

// With passkeys too, one divider leads to both, shown without
// JavaScript, and the passkey button comes after the providers.
func TestLoginProvidersAndPasskey(t *testing.T) {
	p := providerLoginPage()
	p.PasskeyAPI = "/api/auth"
	page := render(t, DefaultLoginTemplate(), p)
	if n := strings.Count(page, `class="divider"`); n != 1 {
		t.Fatalf("%d dividers, want 1", n)
	}
	divider, list, passkey := strings.Index(page, `class="divider"`), strings.Index(page, `class="providers"`), strings.Index(page, `data-passkey-sign-in`)
	if !(divider < list && list < passkey) {
		t.Error("the divider, the providers and the passkey button are out of order")
	}
	hidden := page[strings.Index(page, `<div data-passkey hidden>`):passkey]
	if strings.Contains(hidden, "divider") {
		t.Error("the divider is hidden with the passkey button")
	}
	// Without providers the passkey's own divider is back.
	p.Providers = nil
	page = render(t, DefaultLoginTemplate(), p)
	if !strings.Contains(page, "<div data-passkey hidden>\n<p class=\"divider\"><span>or</span></p>") {
		t.Error("the passkey button lost its divider")
	}
}

func TestLoginProviderEscaping(t *testing.T) {
	const evil = `"><script>alert(1)</script>`
	for name, edit := range map[string]func(b *ProviderButton){
		"label":              func(b *ProviderButton) { b.Label = evil },
		"unavailable label":  func(b *ProviderButton) { b.Label, b.Unavailable = evil, true },
		"name":               func(b *ProviderButton) { b.Name = evil },
		"unavailable name":   func(b *ProviderButton) { b.Name, b.Unavailable = evil, true },
		"href":               func(b *ProviderButton) { b.Href = evil },
		"reason":             func(b *ProviderButton) { b.Reason, b.Unavailable = evil, true },
		"javascript: href":   func(b *ProviderButton) { b.Href = "javascript:alert(1)" },
		"javascript: mixed":  func(b *ProviderButton) { b.Href = " JavaScript:alert(1)" },
		"data: href":         func(b *ProviderButton) { b.Href = "data:text/html,<script>alert(1)</script>" },
		"other site's href":  func(b *ProviderButton) { b.Href = "//evil.example/" },
		"label with markup":  func(b *ProviderButton) { b.Label = `<b>Google</b> & co` },
		"reason with markup": func(b *ProviderButton) { b.Reason, b.Unavailable = `<a href="/x">x</a>`, true },
	} {
		t.Run(name, func(t *testing.T) {
			b := ProviderButton{Name: "google", Label: "Google", Href: "/login/with/google"}
			edit(&b)
			page := render(t, DefaultLoginTemplate(), LoginPage{Action: "/login", Providers: []ProviderButton{b}})
			lower := strings.ToLower(page)
			if strings.Contains(lower, "<script") || strings.Contains(page, `alert(1)</`) || strings.Contains(lower, "javascript:") ||
				strings.Contains(page, "<b>") || strings.Contains(page, `<a href="/x">`) {
				t.Fatalf("value broke out of its context:\n%s", page)
			}
			// The href is the caller's to make a path on this site: the
			// template only keeps it from running or breaking out.
			if b.Href == "/login/with/google" {
				assertSelfContained(t, page)
			}
		})
	}
	page := render(t, DefaultLoginTemplate(), LoginPage{Action: "/login", Providers: []ProviderButton{{Name: "g", Label: `A & "B"`, Href: "/x"}}})
	if !strings.Contains(page, `>Sign in with A &amp; &#34;B&#34;</a>`) {
		t.Error("the label is not shown escaped")
	}
}

// The stylesheet and the absence of any script hold with providers: the
// page's CSP hashes still match.
func TestLoginProvidersSelfContained(t *testing.T) {
	page := render(t, DefaultLoginTemplate(), providerLoginPage())
	assertSelfContained(t, page)
	if styleContent(t, page) != css {
		t.Fatal("the page's <style> differs from the shared stylesheet, so StyleHash does not match it")
	}
	if scripts := scriptElements(page); len(scripts) != 0 {
		t.Errorf("providers alone bring a script: %q", scripts)
	}
	p := providerLoginPage()
	p.PasskeyAPI = "/api/auth"
	if scripts := scriptElements(render(t, DefaultLoginTemplate(), p)); len(scripts) != 1 || cspHash(scripts[0]) != ScriptHash() {
		t.Error("with passkeys too, the page's one script does not match ScriptHash")
	}
	for _, s := range []string{"a.button.secondary", "button:disabled", ".providers"} {
		if !strings.Contains(css, s) {
			t.Errorf("css lacks %q", s)
		}
	}
}

// A site's own login template may show the providers: it is checked with
// them, as the built-in one shows them.
func TestParseLoginTemplateWithProviders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mine.html")
	body := `<!doctype html><title>x</title><form method="post" action="{{.Action}}"></form>` +
		`{{range .Providers}}{{if .Unavailable}}<p>{{.Label}}: {{.Reason}}</p>{{else}}<a href="{{.Href}}" data-provider="{{.Name}}">{{.Label}}</a>{{end}}{{end}}`
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err := ParseLoginTemplate(path)
	if err != nil {
		t.Fatal(err)
	}
	page := render(t, tmpl, LoginPage{Action: "/login", Providers: sampleProviders()[:1]})
	if !strings.Contains(page, `<a href="/login/with/google?redirect=%2Fdocs%2F" data-provider="google">Google</a>`) {
		t.Errorf("the site's template did not show the provider:\n%s", page)
	}
}

// A stale or replayed callback ends on the message page, which offers to
// start again with a link that keeps its query string.
func TestMessageStartAgain(t *testing.T) {
	page := renderMessage(t, MessagePage{
		Heading: "That sign-in has expired", SiteName: "Docs", Status: 400,
		Message: "The sign-in with Google took too long, or was already finished in another tab.",
		Links:   []Link{{Href: "/login/with/google?redirect=%2Fdocs%2F&again=1", Text: "Start again"}, {Href: "/login", Text: "Back to sign-in"}},
	})
	assertSelfContained(t, page)
	assertPageHas(t, page, []string{
		`<a href="/login/with/google?redirect=%2Fdocs%2F&amp;again=1" class="button">Start again</a>`,
		`<a href="/login">Back to sign-in</a>`,
	}, []string{`<form`})
}
