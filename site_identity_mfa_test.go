package pgsession

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
)

// A second factor after a provider: a user who set up an authenticator is
// asked for its code after the provider too, unless trust_provider_mfa is
// on and the provider's token shows a second factor of its own (amr, acr).

// enrolTOTPFor signs in as name with the password and turns on an
// authenticator for them, returning its secret.
func enrolTOTPFor(t *testing.T, db *testDB, s *testSite, name string) string {
	t.Helper()
	db.addUser(t, name, "correct horse battery")
	b := newBrowser(t)
	b.login(s, name, "correct horse battery")
	secret, _ := enrolTOTP(t, s, b)
	return secret
}

// assertCodePage asserts that resp asks for the second factor's code, and
// that no session has begun yet.
func assertCodePage(t *testing.T, b *browser, s *testSite, resp reply, redirect string) {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the code page: %s", gist(resp.body))
	for _, want := range []string{`action="/login/second-factor"`, `autocomplete="one-time-code"`,
		`name="redirect" value="` + redirect + `"`} {
		assertPageHas(t, resp.body, want)
	}
	assertNotSignedIn(t, b, s)
}

func TestAProviderSignInAsksForTheUsersSecondFactor(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	// The provider says it asked for a second factor; without
	// trust_provider_mfa that counts for nothing.
	p.AddUser(t, oidctest.User{Subject: "alice-sub", Email: "alice@example.com", EmailVerified: true, AMR: []string{"mfa"}})
	db := newTestDB(t)
	s := startProviderSite(t, siteOptions{db: db.url, app: "secrets_key " + testSecretsKey}, p, "allow_domains example.com")
	secret := enrolTOTPFor(t, db, s, "alice")
	db.linkIdentity(t, db.userNamed(t, "alice"), "alice-sub", "alice@example.com")

	b := newBrowser(t)
	resp := b.signInWith(s, "test", "alice-sub", "/docs/")
	assertCodePage(t, b, s, resp, "/docs/")
	assert.Equal(t, http.StatusUnauthorized, b.get(s.url("/docs/")).StatusCode, "the provider alone passes no gate")

	resp = b.postForm(s.url("/login/second-factor"), url.Values{"code": {"000000"}, "redirect": {"/docs/"}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a wrong code: %s", gist(resp.body))
	assertNotSignedIn(t, b, s)
	resp = b.postForm(s.url("/login/second-factor"), url.Values{"code": {laterCode(t, secret, 1)}, "redirect": {"/docs/"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the right code: %s", gist(resp.body))
	assert.Equal(t, "/docs/", resp.Header.Get("Location"))
	assert.Equal(t, "hello alice", b.getPage(s.url("/docs/")).body)
	assertSignedInAs(t, b, s, "alice", "provider+totp")
}

func TestTrustedProviderMFASkipsTheCode(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "dave-sub", Email: "dave@example.com", EmailVerified: true, AMR: []string{"mfa"}})
	p.AddUser(t, oidctest.User{Subject: "erin-sub", Email: "erin@example.com", EmailVerified: true, AMR: []string{"pwd"}})
	p.AddUser(t, oidctest.User{Subject: "fay-sub", Email: "fay@example.com", EmailVerified: true, AMR: []string{"pwd", "otp"}})
	db := newTestDB(t)
	s := startProviderSite(t, siteOptions{db: db.url, app: "secrets_key " + testSecretsKey}, p,
		"allow_domains example.com\n\ttrust_provider_mfa on")
	secrets := map[string]string{}
	for _, name := range []string{"dave", "erin", "fay"} {
		secrets[name] = enrolTOTPFor(t, db, s, name)
		db.linkIdentity(t, db.userNamed(t, name), name+"-sub", name+"@example.com")
	}

	// amr ["mfa"]: the provider's second factor counts, no code is asked.
	b := newBrowser(t)
	resp := b.signInWith(s, "test", "dave-sub", "/docs/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "dave, whose provider says mfa: %s", gist(resp.body))
	assert.Equal(t, "/docs/", resp.Header.Get("Location"))
	assert.Equal(t, "hello dave", b.getPage(s.url("/docs/")).body)
	assertSignedInAs(t, b, s, "dave", "provider+mfa")

	// A password and a one-time code at the provider: two kinds of factor.
	b = newBrowser(t)
	resp = b.signInWith(s, "test", "fay-sub", "/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "fay, whose provider says pwd and otp: %s", gist(resp.body))
	assertSignedInAs(t, b, s, "fay", "provider+mfa")

	// A password alone at the provider: the code is asked.
	b = newBrowser(t)
	resp = b.signInWith(s, "test", "erin-sub", "/docs/")
	assertCodePage(t, b, s, resp, "/docs/")
	resp = b.postForm(s.url("/login/second-factor"), url.Values{"code": {laterCode(t, secrets["erin"], 1)}, "redirect": {"/docs/"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, b, s, "erin", "provider+totp")
}

// A rule with second_factor takes a provider's session whose second factor
// was a code here or, trusted, the provider's own; a provider's session
// without one steps up on the step-up page, as a password's does.
func TestAProviderSessionMeetsSecondFactorRules(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "dave-sub", Email: "dave@example.com", EmailVerified: true, AMR: []string{"mfa"}})
	p.AddUser(t, oidctest.User{Subject: "erin-sub", Email: "erin@example.com", EmailVerified: true, AMR: []string{"pwd"}})
	p.AddUser(t, oidctest.User{Subject: "gina-sub", Email: "gina@example.com", EmailVerified: true, AMR: []string{"pwd"}})
	db := newTestDB(t)
	s := startProviderSite(t, siteOptions{db: db.url, app: "secrets_key " + testSecretsKey,
		handler: "allow /admin/* any_user second_factor\n\t\tallow /* any_user"}, p, "allow_domains example.com\n\ttrust_provider_mfa on")
	secrets := map[string]string{}
	for _, name := range []string{"dave", "erin"} {
		secrets[name] = enrolTOTPFor(t, db, s, name)
		db.linkIdentity(t, db.userNamed(t, name), name+"-sub", name+"@example.com")
	}
	gina := db.addUser(t, "gina", "correct horse battery")
	db.linkIdentity(t, gina, "gina-sub", "gina@example.com")
	stepUp := "/login/step-up?redirect=" + url.QueryEscape("/admin/x")

	dave := newBrowser(t)
	resp := dave.signInWith(s, "test", "dave-sub", "/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, dave, s, "dave", "provider+mfa")
	erin := newBrowser(t)
	assertCodePage(t, erin, s, erin.signInWith(s, "test", "erin-sub", "/"), "/")
	resp = erin.postForm(s.url("/login/second-factor"), url.Values{"code": {laterCode(t, secrets["erin"], 1)}, "redirect": {"/"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, erin, s, "erin", "provider+totp")
	for _, c := range []struct {
		name string
		b    *browser
	}{{"dave", dave}, {"erin", erin}} {
		resp = c.b.getPage(s.url("/admin/x"))
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s's session passes the second_factor rule (%s)", c.name, resp.Header.Get("Location"))
		resp = c.b.getPage(s.url(stepUp))
		assert.Equal(t, http.StatusSeeOther, resp.StatusCode,
			"the step-up page sends %s's session, which has a second factor, straight on: %s", c.name, gist(resp.body))
		assert.Equal(t, "/admin/x", resp.Header.Get("Location"))
	}

	// gina signs in with the provider alone, then sets up an authenticator:
	// her session has no second factor until she steps up.
	b := newBrowser(t)
	resp = b.signInWith(s, "test", "gina-sub", "/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, b, s, "gina", "provider")
	secret, _ := enrolTOTP(t, s, b)
	resp = b.getPage(s.url("/admin/x"))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assert.Equal(t, stepUp, resp.Header.Get("Location"))
	resp = b.postForm(s.url("/login/step-up"), url.Values{"code": {laterCode(t, secret, 1)}, "redirect": {"/admin/x"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assert.Equal(t, "/admin/x", resp.Header.Get("Location"))
	assertSignedInAs(t, b, s, "gina", "provider+totp")
	assert.Equal(t, "hello gina", b.getPage(s.url("/admin/x")).body)
}
