package web

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// The account page's "API tokens" section.

func sampleTokens() *AccountTokens {
	return &AccountTokens{List: []AccountToken{
		{Handle: "7a1e-deploy", Name: "deploy", CreatedAt: sampleNow.Add(-48 * time.Hour), ExpiresAt: sampleNow.Add(28 * 24 * time.Hour),
			LastUsedAt: sampleNow.Add(-time.Hour), LastUsedFrom: "203.0.113.9", Paths: []string{"/api/*", "*.json"}},
		{Handle: "9c4b-old", Name: "old", CreatedAt: sampleNow.Add(-40 * 24 * time.Hour), ExpiresAt: sampleNow.Add(-24 * time.Hour), Expired: true},
		{Handle: "e2d0-ops", Name: "ops", CreatedAt: sampleNow.Add(-24 * time.Hour), Admin: true},
	}}
}

func tokensSection(t *testing.T, p AccountPage) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<section aria-labelledby="tokens-title">.*?</section>`).FindString(renderAccount(t, p))
	if m == "" {
		t.Fatal("no API tokens section")
	}
	return m
}

func TestAccountTokensListed(t *testing.T) {
	p := samplePage()
	p.Tokens = sampleTokens()
	s := tokensSection(t, p)
	for _, want := range []string{
		`<h2 id="tokens-title">API tokens</h2>`,
		`<span id="token-0-name">deploy</span></p>`,
		`<dt>Expires</dt> <dd><time datetime="2026-12-25T14:03:00Z">25 Dec 2026 14:03 UTC</time></dd>`,
		`<dt>Last used</dt> <dd><time datetime="2026-11-27T13:03:00Z">27 Nov 2026 13:03 UTC</time> from 203.0.113.9</dd>`,
		`<dt>Paths</dt> <dd><code>/api/*</code> <code>*.json</code></dd>`,
		`<span id="token-1-name">old</span> <span class="badge failed">expired</span>`,
		`<dt>Expired</dt> <dd><time datetime="2026-11-26T14:03:00Z">`,
		`<span id="token-2-name">ops</span> <span class="badge">admin</span>`,
		`<dt>Expires</dt> <dd>never</dd>`,
		`<dt>Last used</dt> <dd>never</dd>`,
		`<dt>Paths</dt> <dd>all</dd>`,
		`<input type="hidden" name="token" value="e2d0-ops">`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the section lacks %s", want)
		}
	}
	if n := len(formsWithAction(s, "token-revoke")); n != 3 {
		t.Errorf("%d revoke forms, want 3", n)
	}
	for _, b := range regexp.MustCompile(`<button [^>]*>Revoke</button>`).FindAllString(s, -1) {
		if got := describedBy(t, s, b); got == "" {
			t.Errorf("a Revoke button names no token: %s", b)
		}
	}
	if strings.Contains(s, "new-token\"") || strings.Contains(s, "token_admin") {
		t.Error("the section shows a new token, or admin rights, it was not given")
	}
	if strings.Contains(renderAccount(t, samplePage()), "tokens-title") {
		t.Error("the section shows without Tokens")
	}
}

func TestAccountTokenCreateForm(t *testing.T) {
	p := samplePage()
	p.Tokens = &AccountTokens{Admin: true}
	page := renderAccount(t, p)
	s := tokensSection(t, p)
	if !strings.Contains(s, `<p class="empty">No API tokens yet.</p>`) {
		t.Error("no word that there are none")
	}
	create := formsWithAction(s, "token-create")
	if len(create) != 1 || !strings.HasPrefix(create[0], `<form method="post" action="/account"`) {
		t.Fatalf("want one create form posting to /account, got %d", len(create))
	}
	for _, id := range []string{"token-name", "token-expires", "token-paths", "token-admin"} {
		if !strings.Contains(create[0], `<label for="`+id+`">`) || strings.Count(page, `id="`+id+`"`) != 1 {
			t.Errorf("%s has no label of its own", id)
		}
	}
	for _, o := range []string{`<option value="">Never</option>`, `<option value="30d">In 30 days</option>`,
		`<option value="90d">In 90 days</option>`, `<option value="365d">In 1 year</option>`} {
		if !strings.Contains(create[0], o) {
			t.Errorf("the expiry lacks %s", o)
		}
	}
	if !regexp.MustCompile(`<h2 id="tokens-title">API tokens</h2>(?s:.*)<h3 id="new-token-title">Create a token</h3>`).MatchString(s) {
		t.Error("the form's heading is not under the section's")
	}

	// An error is shown by the form and marks its field.
	p.Tokens.Error, p.Tokens.ErrorField = "You already have an API token of that name", "token_name"
	s = tokensSection(t, p)
	if !strings.Contains(s, `<p id="tokens-error" class="alert" role="alert">You already have an API token of that name</p>`) {
		t.Error("no error by the form")
	}
	if got := regexp.MustCompile(`<input id="token-name"[^>]*>`).FindString(s); !strings.Contains(got, `autofocus aria-invalid="true" aria-describedby="tokens-error token-name-hint"`) {
		t.Errorf("the name is not marked: %s", got)
	}
	if strings.Count(s, "aria-invalid") != 1 {
		t.Error("another field is marked too")
	}
}

func TestAccountNewTokenShownOnce(t *testing.T) {
	p := samplePage()
	p.Tokens = sampleTokens()
	const token = "pgs_P5msp69BxQcEn8hb18LsNnRC4cs5xJGVrOVha2d5_io"
	p.Tokens.Created = &AccountNewToken{Name: "deploy", Token: token, SiteURL: "https://example.com/"}
	s := tokensSection(t, p)
	for _, want := range []string{
		`<p class="notice" role="status">Token “deploy” created. Copy it now: it will not be shown again.</p>`,
		`<pre><code id="new-token">` + token + `</code></pre>`,
		`<pre><code>curl -H "Authorization: Bearer ` + token + `" https://example.com/</code></pre>`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the section lacks %s", want)
		}
	}
	if strings.Index(s, token) > strings.Index(s, "<ul") {
		t.Error("the new token comes after the list")
	}
}

func TestAccountTokensEscaping(t *testing.T) {
	const evil = `"><script>alert(1)</script>`
	for name, edit := range map[string]func(p *AccountTokens){
		"name":     func(p *AccountTokens) { p.List[0].Name = evil },
		"handle":   func(p *AccountTokens) { p.List[1].Handle = evil },
		"path":     func(p *AccountTokens) { p.List[0].Paths[1] = evil },
		"from":     func(p *AccountTokens) { p.List[0].LastUsedFrom = evil },
		"error":    func(p *AccountTokens) { p.Error = evil },
		"new name": func(p *AccountTokens) { p.Created = &AccountNewToken{Name: evil, Token: "pgs_x", SiteURL: "/"} },
		"site url": func(p *AccountTokens) { p.Created = &AccountNewToken{Name: "x", Token: "pgs_x", SiteURL: evil} },
	} {
		p := samplePage()
		p.Tokens = sampleTokens()
		edit(p.Tokens)
		if page := renderAccount(t, p); strings.Contains(page, "<script") || !strings.Contains(page, "&lt;script&gt;") {
			t.Errorf("%s: not escaped", name)
		}
	}
}
