package web

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// The account page's linked accounts, and a user without a password.

func identitiesPage() AccountPage {
	p := samplePage()
	p.Notice = ""
	p.Identities = []LinkedIdentity{
		{Provider: "google", Label: "Google", Email: "alice@example.com", Subject: "1081", LinkedAt: sampleNow.Add(-48 * time.Hour), LastUsedAt: sampleNow, CanUnlink: true},
		{Provider: "github", Label: "GitHub", LinkedAt: sampleNow, Why: "It is your only way to sign in: set a password first"},
		{Provider: "keycloak", Label: "Company SSO", Email: "alice@corp.example"},
	}
	p.LinkProviders = []ProviderButton{
		{Name: "gitlab", Label: "GitLab"},
		{Name: "entra", Label: "Microsoft", Unavailable: true, Reason: "Try again in a few minutes."},
	}
	return p
}

// section returns the account page's section labelled by the heading id.
func accountSection(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<section aria-labelledby="` + id + `"[^>]*>.*?</section>`).FindString(page)
	if m == "" {
		t.Fatalf("no section %s", id)
	}
	return m
}

func TestAccountLinkedAccounts(t *testing.T) {
	page := renderAccount(t, identitiesPage())
	s := accountSection(t, page, "identities-title")
	for _, want := range []string{
		`<h2 id="identities-title">Linked accounts</h2>`,
		`<ul class="sessions identities" role="list">`,
		`<span id="identity-0-name">Google</span>`,
		`<dt>Email</dt> <dd id="identity-0-email">alice@example.com</dd>`,
		`<dt>Linked</dt> <dd><time datetime="2026-11-25T14:03:00Z">25 Nov 2026 14:03 UTC</time></dd>`,
		`<dt>Last used</dt> <dd><time datetime="2026-11-27T14:03:00Z">27 Nov 2026 14:03 UTC</time></dd>`,
		`<h3 id="link-title">Link an account</h3>`,
		`<ul class="link-providers" role="list" aria-labelledby="link-title">`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the section lacks %s", want)
		}
	}
	// With the other ways to sign in: after the password and the
	// passkeys, before the API tokens.
	all := identitiesPage()
	all.PasskeyAPI, all.Tokens = "/api/auth", &AccountTokens{}
	full := renderAccount(t, all)
	password, passkeys, linked, tokens := strings.Index(full, `id="password-title"`), strings.Index(full, `id="passkeys-title"`),
		strings.Index(full, `id="identities-title"`), strings.Index(full, `id="tokens-title"`)
	if !(password < passkeys && passkeys < linked && linked < tokens) {
		t.Error("the linked accounts are not between the passkeys and the API tokens")
	}

	unlink := formsWithAction(s, "unlink-identity")
	if len(unlink) != 1 {
		t.Fatalf("%d unlink forms, want 1 (for the one that can be unlinked)", len(unlink))
	}
	for _, want := range []string{
		`<form method="post" action="/account" class="revoke">`,
		`<input type="hidden" name="provider" value="google">`,
		`<input type="hidden" name="subject" value="1081">`,
		`>Unlink</button>`,
	} {
		if !strings.Contains(unlink[0], want) {
			t.Errorf("the unlink form lacks %s:\n%s", want, unlink[0])
		}
	}
	button := regexp.MustCompile(`<button[^>]*>`).FindString(unlink[0])
	if got := describedBy(t, page, button); got != "Google alice@example.com" {
		t.Errorf("the Unlink button is described as %q", got)
	}

	// The others are disabled buttons outside any form, described by why.
	items := regexp.MustCompile(`(?s)<li class="session identity">.*?</li>`).FindAllString(s, -1)
	if len(items) != 3 {
		t.Fatalf("%d identities, want 3", len(items))
	}
	for i, want := range map[int]string{
		1: "GitHub It is your only way to sign in: set a password first",
		2: "Company SSO alice@corp.example It is your only way to sign in",
	} {
		if strings.Contains(items[i], "<form") || strings.Contains(items[i], `name="provider"`) {
			t.Errorf("identity %d can be unlinked:\n%s", i, items[i])
		}
		b := regexp.MustCompile(`<button[^>]*>Unlink</button>`).FindString(items[i])
		if !strings.Contains(b, `type="button"`) || !strings.Contains(b, " disabled") {
			t.Errorf("identity %d: %q is not a disabled Unlink button", i, b)
		}
		if got := describedBy(t, page, b); got != want {
			t.Errorf("identity %d: the button is described as %q, want %q", i, got, want)
		}
	}
	if strings.Contains(items[1], "<dt>Email</dt>") || strings.Contains(items[1], "Last used") || strings.Contains(items[2], "<time") {
		t.Error("an identity shows a fact it was not given")
	}

	link := formsWithAction(s, "link-identity")
	if len(link) != 1 {
		t.Fatalf("%d link forms, want 1 (the provider that is down has none)", len(link))
	}
	for _, want := range []string{
		`<form method="post" action="/account">`,
		`<input type="hidden" name="provider" value="gitlab">`,
		`<button type="submit" class="secondary inline" data-provider="gitlab">Link GitLab</button>`,
	} {
		if !strings.Contains(link[0], want) {
			t.Errorf("the link form lacks %s:\n%s", want, link[0])
		}
	}
	down := regexp.MustCompile(`<button[^>]*data-provider="entra"[^>]*>Link Microsoft</button>`).FindString(s)
	if !strings.Contains(down, ` disabled`) || !strings.Contains(down, `type="button"`) {
		t.Fatalf("the provider that is down is not a disabled button: %q", down)
	}
	if got := describedBy(t, page, down); got != "Microsoft is unavailable right now. Try again in a few minutes." {
		t.Errorf("the disabled Link button is described as %q", got)
	}
	if !strings.Contains(s, `<p id="link-1-status" class="hint" role="status">`) || strings.Contains(s, `value="entra"`) {
		t.Error("the provider that is down has no status, or a form")
	}

	// Headings in order, every form to the account page, ids unique.
	var levels string
	for _, l := range regexp.MustCompile(`<h([1-6])\b`).FindAllStringSubmatch(page, -1) {
		levels += l[1]
	}
	if levels != "12223" {
		t.Errorf("heading levels %s, want 12223", levels)
	}
	for _, f := range forms(page) {
		if !strings.HasPrefix(f, `<form method="post" action="/account"`) && !strings.HasPrefix(f, `<form method="post" action="/logout"`) {
			t.Errorf("form does not POST to /account or /logout: %.80s", f)
		}
	}
	seen := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bid="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if seen[m[1]] {
			t.Errorf("duplicate id %q", m[1])
		}
		seen[m[1]] = true
	}
	if strings.Contains(page, `role="alert"`) {
		t.Error("the page shows an error it was not given")
	}
	if styleContent(t, page) != css {
		t.Error("the page's <style> differs from the shared stylesheet, so StyleHash does not match it")
	}
	assertSelfContained(t, page)
}

func TestAccountLinkedAccountsShownWhenAny(t *testing.T) {
	p := samplePage()
	if strings.Contains(renderAccount(t, p), "identities-title") {
		t.Error("a page without providers has a linked accounts section")
	}

	p.LinkProviders = []ProviderButton{{Name: "google", Label: "Google"}}
	s := accountSection(t, renderAccount(t, p), "identities-title")
	if !strings.Contains(s, `<p class="empty">No linked accounts yet.</p>`) || strings.Contains(s, "<ul class=\"sessions") {
		t.Error("no identities, and no word about it")
	}

	p.LinkProviders, p.Identities = nil, []LinkedIdentity{{Provider: "google", Label: "Google", CanUnlink: true}}
	s = accountSection(t, renderAccount(t, p), "identities-title")
	if strings.Contains(s, "link-title") || len(formsWithAction(s, "unlink-identity")) != 1 {
		t.Error("an identity with nothing left to link shows a link list, or no unlink form")
	}
	if strings.Contains(s, `name="subject"`) {
		t.Error("an identity without a subject sends an empty one")
	}
}

func TestAccountIdentitiesError(t *testing.T) {
	p := identitiesPage()
	p.IdentitiesError = "That account had already been unlinked"
	page := renderAccount(t, p)
	s := accountSection(t, page, "identities-title")
	alert := `<p id="identities-error" class="alert" role="alert">That account had already been unlinked</p>`
	if !strings.Contains(s, alert) || strings.Index(s, alert) > strings.Index(s, "<ul") {
		t.Fatalf("the section has no %s before its list:\n%s", alert, s)
	}
	if !strings.Contains(s, `<ul class="sessions identities" role="list" aria-describedby="identities-error">`) {
		t.Error("the list is not described by its error")
	}
	if strings.Count(strings.Replace(page, css, "", 1), `role="alert"`) != 1 {
		t.Error("the error is shown elsewhere too")
	}
}

func TestAccountNoPassword(t *testing.T) {
	p := identitiesPage()
	p.NoPassword = true
	page := renderAccount(t, p)
	s := accountSection(t, page, "password-title")
	for _, want := range []string{
		`<h2 id="password-title">Set a password</h2>`,
		`You have no password yet.`,
		`<input type="text" name="username" value="alice" autocomplete="username" hidden>`,
		`<button type="submit" class="inline">Set password</button>`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the password section lacks %s", want)
		}
	}
	f := formsWithAction(s, "password")
	if len(f) != 1 {
		t.Fatalf("%d password forms, want 1", len(f))
	}
	if strings.Contains(f[0], "current_password") || strings.Contains(f[0], "current-password") {
		t.Error("a user without a password is asked for it")
	}
	nw := inputTag(t, f[0], "new-password")
	for _, attr := range []string{`name="new_password"`, `autocomplete="new-password"`, `minlength="8"`, ` required`} {
		if !strings.Contains(nw, attr) {
			t.Errorf("new password input %s lacks %s", nw, attr)
		}
	}

	// Its error is shown and marks the new password, as for a change.
	p.PasswordError, p.PasswordErrorField = "The new password must be 8 to 1024 characters long", "new_password"
	nw = inputTag(t, renderAccount(t, p), "new-password")
	if !strings.Contains(nw, ` autofocus aria-invalid="true" aria-describedby="password-error new-password-hint"`) {
		t.Errorf("the new password is not marked at fault: %s", nw)
	}

	// Someone with a password changes it, as ever.
	p = identitiesPage()
	s = accountSection(t, renderAccount(t, p), "password-title")
	if !strings.Contains(s, `<h2 id="password-title">Change password</h2>`) || !strings.Contains(s, `name="current_password"`) || strings.Contains(s, "no password") {
		t.Error("a user with a password does not get the change form")
	}
}

func TestAccountIdentityEscaping(t *testing.T) {
	const evil = `"><script>alert(1)</script>`
	for name, edit := range map[string]func(p *AccountPage){
		"label":           func(p *AccountPage) { p.Identities[0].Label = evil },
		"email":           func(p *AccountPage) { p.Identities[0].Email = evil },
		"provider":        func(p *AccountPage) { p.Identities[0].Provider = evil },
		"subject":         func(p *AccountPage) { p.Identities[0].Subject = evil },
		"why":             func(p *AccountPage) { p.Identities[1].Why = evil },
		"error":           func(p *AccountPage) { p.IdentitiesError = evil },
		"link label":      func(p *AccountPage) { p.LinkProviders[0].Label = evil },
		"link name":       func(p *AccountPage) { p.LinkProviders[0].Name = evil },
		"down link label": func(p *AccountPage) { p.LinkProviders[1].Label = evil },
		"down reason":     func(p *AccountPage) { p.LinkProviders[1].Reason = evil },
	} {
		t.Run(name, func(t *testing.T) {
			p := identitiesPage()
			edit(&p)
			page := renderAccount(t, p)
			if strings.Contains(page, "<script") || strings.Contains(page, `alert(1)</`) {
				t.Fatalf("value broke out of its context:\n%s", page)
			}
			if !strings.Contains(page, "&lt;script&gt;") {
				t.Error("escaped value not found in page")
			}
		})
	}
	p := identitiesPage()
	p.LinkProviders[0].Name = `a"b&c`
	if !strings.Contains(renderAccount(t, p), `<input type="hidden" name="provider" value="a&#34;b&amp;c">`) {
		t.Error("the provider's name is not escaped as an attribute value")
	}
}
