package pgsession

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
)

// Bad input from an identity provider, or none at all: an ID token that
// must not be believed, an email the provider does not vouch for, a person
// who said no, and a provider that is down, at the button, at the callback
// or when the site starts. Each ends on a page that says what happened and
// offers to start again, never a session, never a 500.

func TestProviderIDTokenThatDoesNotHoldSignsNobodyIn(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "alice-sub", Email: "alice@example.com", EmailVerified: true, PreferredUsername: "alice"})
	db := newTestDB(t)
	s := startProviderSite(t, siteOptions{db: db.url}, p, "allow_domains example.com\n\tauto_create on")

	for _, c := range []struct {
		name  string
		knobs oidctest.Knobs
	}{
		{"for another audience", oidctest.Knobs{Audience: "another-client"}},
		{"expired", oidctest.Knobs{Expired: true}},
		{"with another nonce", oidctest.Knobs{Nonce: "not-the-nonce-of-this-sign-in"}},
		{"from another issuer", oidctest.Knobs{Issuer: "http://127.0.0.1:9/another-issuer"}},
		{"signed with another key", oidctest.Knobs{SignWithOtherKey: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p.Next(t, c.knobs)
			b := newBrowser(t)
			resp := b.signInWith(s, "test", "alice-sub", "/docs/")
			assertFlowPage(t, resp, "test", http.StatusUnauthorized, "Not signed in")
			assertPageHas(t, resp.body, "The answer from Test could not be verified.")
			assert.Equal(t, "/login/with/test?redirect=/docs/", strings.ReplaceAll(startAgainLink(resp, "test"), "%2F", "/"),
				"starting again comes back to the page asked for")
			assertNotSignedIn(t, b, s)
		})
	}
	assert.Zero(t, db.count(t, "SELECT count(*) FROM pgsession.sessions"), "no bad token started a session")
	assert.Zero(t, db.count(t, "SELECT count(*) FROM pgsession.users"), "no bad token made a user with auto_create")

	// The knobs are used up, each by its one sign-in: the next token is good.
	b := newBrowser(t)
	resp := b.signInWith(s, "test", "alice-sub", "/docs/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, b, s, "alice", "provider")
}

func TestAnUnverifiedEmailOrARefusalAtTheProviderSignsNobodyIn(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "eve-sub", Email: "eve@example.com", PreferredUsername: "eve"})
	p.AddUser(t, oidctest.User{Subject: "alice-sub", Email: "alice@example.com", EmailVerified: true, PreferredUsername: "alice"})
	db := newTestDB(t)
	s := startProviderSite(t, siteOptions{db: db.url}, p, "allow_domains example.com\n\tauto_create on")

	// An email at an allowed domain that the provider does not say it
	// verified decides nothing.
	b := newBrowser(t)
	resp := b.signInWith(s, "test", "eve-sub", "/docs/")
	assertFlowPage(t, resp, "test", http.StatusForbidden, "Email address not verified")
	assertPageHas(t, resp.body, "Verify your email address at Test first")
	assertNotSignedIn(t, b, s)
	assert.Zero(t, db.count(t, "SELECT count(*) FROM pgsession.users"), "auto_create made no user of an unverified email")

	// The person presses Deny at the provider: error=access_denied.
	resp = b.getPage(oidctest.Deny(t, nil, b.begin(s, "test", "/docs/")).String())
	assertFlowPage(t, resp, "test", http.StatusUnauthorized, "Not signed in")
	assertPageHas(t, resp.body, "You did not allow Test to sign you in here")
	assertNotSignedIn(t, b, s)

	// The page's link starts again, and this time they allow it.
	resp = b.getPage(s.url(startAgainLink(resp, "test")))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	resp = b.getPage(oidctest.SignIn(t, nil, resp.Header.Get("Location"), "alice-sub").String())
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assert.Equal(t, "/docs/", resp.Header.Get("Location"))
	assertSignedInAs(t, b, s, "alice", "provider")
}

func TestAProviderThatIsDownLeavesThePasswordFormWorking(t *testing.T) {
	t.Parallel()
	p, _, s := linkedAlice(t, "allow_domains example.com")

	t.Run("down when the button is pressed", func(t *testing.T) {
		p.Stop()
		defer p.Start()
		b := newBrowser(t)
		resp := b.getPage(s.url("/login/with/test?redirect=%2Fdocs%2F"))
		if assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode,
			"pressing the button of a provider that is down should give the login page saying so, not a redirect to the provider (%s)",
			resp.Header.Get("Location")) {
			assertPageHas(t, resp.body, "Test is unavailable")
			assertPageHas(t, resp.body, `name="password"`, "the password form is on the page")
		}
		passwordSignIn(t, b, s, "alice", "correct horse battery", "/docs/")
	})

	t.Run("down at the callback", func(t *testing.T) {
		waitButton(t, s)
		b := newBrowser(t)
		callback := oidctest.SignIn(t, nil, b.begin(s, "test", "/docs/"), "alice-sub")
		p.Stop()
		resp := b.getPage(callback.String())
		assertFlowPage(t, resp, "test", http.StatusServiceUnavailable, "Test is unavailable")
		assertPageHas(t, resp.body, "Test could not be reached to finish signing in.")
		assertNotSignedIn(t, b, s)

		// The login page says so, and its password form works.
		page := b.getPage(s.url("/login?redirect=%2Fdocs%2F"))
		require.Equal(t, http.StatusOK, page.StatusCode)
		assertPageHas(t, page.body, "Test is unavailable right now.")
		assertPageLacks(t, page.body, `href="/login/with/test`, "no button to press while it is down")
		passwordSignIn(t, b, s, "alice", "correct horse battery", "/docs/")

		// Back up, the button works again without a reload.
		p.Start()
		waitButton(t, s)
		other := newBrowser(t)
		resp = other.signInWith(s, "test", "alice-sub", "/docs/")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
		assertSignedInAs(t, other, s, "alice", "provider")
	})
}

func TestAProviderDownWhenTheSiteStartsIsTriedAgain(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "alice-sub", Email: "alice@example.com", EmailVerified: true, PreferredUsername: "alice"})
	p.Stop()
	db := newTestDB(t)
	db.addUser(t, "bob", "correct horse battery")
	// The site starts while discovery fails.
	s := startSite(t, siteOptions{db: db.url, app: oidcBlock(p, "allow_domains example.com\n\tauto_create on")})

	b := newBrowser(t)
	page := b.getPage(s.url("/login"))
	require.Equal(t, http.StatusOK, page.StatusCode, gist(page.body))
	assertPageHas(t, page.body, "Test is unavailable right now.")
	assert.Regexp(t, `<button type="button" class="secondary" data-provider="test" disabled`, page.body, "the button is shown disabled")
	resp := b.getPage(s.url("/login/with/test"))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assertPageHas(t, resp.body, "Test is unavailable")
	passwordSignIn(t, newBrowser(t), s, "bob", "correct horse battery", "/docs/")

	// The provider comes up: the site finds it by itself, and the same
	// login page, fetched again, has a button to press.
	p.Start()
	p.AllowRedirectURI(t, s.url("/login/callback/test"))
	waitButton(t, s)
	resp = b.signInWith(s, "test", "alice-sub", "/docs/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, b, s, "alice", "provider")
}

func TestAProviderRotatesItsKeysBetweenTwoSignIns(t *testing.T) {
	t.Parallel()
	p, _, s := linkedAlice(t, "allow_domains example.com")

	for i, rotate := range []func(testing.TB) string{nil, p.RotateKeys, p.RotateKeysKeepingOld, p.RotateKeys} {
		before := p.Requests(t)["jwks"]
		if rotate != nil {
			rotate(t)
		}
		b := newBrowser(t)
		resp := b.signInWith(s, "test", "alice-sub", "/")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, "sign-in %d, after %d rotations: %s", i+1, i, gist(resp.body))
		assertSignedInAs(t, b, s, "alice", "provider")
		if rotate != nil {
			assert.Greater(t, p.Requests(t)["jwks"], before, "the site fetched the new keys after rotation %d", i)
		}
	}
}

// waitButton waits until the login page's button of provider test is a
// link to press, fetching the page again as a person would.
func waitButton(t *testing.T, s *testSite) {
	t.Helper()
	b := newBrowser(t)
	require.Eventually(t, func() bool {
		page := b.getPage(s.url("/login"))
		return page.StatusCode == http.StatusOK && strings.Contains(page.body, `href="/login/with/test?redirect=`)
	}, 60*time.Second, 50*time.Millisecond, "the login page's button of the provider never became usable")
}
