package pgsession

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
)

// Where oauth2-proxy's flow breaks most often: a callback that reaches
// another server, several tabs signing in at once, a slow user, the back
// button, a stale state. Each flow is a row of PostgreSQL, so any server
// sharing the database finishes it, once.

func TestAProviderSignInBegunOnOneServerFinishesOnAnother(t *testing.T) {
	t.Parallel()
	p, db, first := linkedAlice(t, "allow_domains example.com")
	// The same provider config, but for its label, which says what the
	// default says: in one process, providers of the same config are one
	// object (shared across reloads), and two servers share nothing.
	second := startProviderSite(t, siteOptions{db: db.url}, p, "allow_domains example.com\n\tlabel Test")
	require.NotSame(t, first.app.Providers()[0], second.app.Providers()[0], "each server has a provider of its own")

	b := newBrowser(t)
	callback := oidctest.SignIn(t, nil, b.begin(first, "test", "/docs/"), "alice-sub")
	require.Equal(t, hostPort(t, first), callback.Host, "the provider sends the browser back to the address it began at")

	// A load balancer sends the callback to the second server, under the
	// first's address: the redirect URI is the same.
	resp := b.dialingAt(first, second).getPage(callback.String())
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the second server finishing the sign-in: %s", gist(resp.body))
	assert.Equal(t, "/docs/", resp.Header.Get("Location"))
	assert.True(t, second.servedPath("/login/callback/test?"), "the second server answered the callback")
	assert.False(t, first.servedPath("/login/callback/test?"), "the first server never saw the callback")

	// Signed in on both, one session.
	assert.Equal(t, "hello alice", b.getPage(first.url("/docs/")).body)
	assert.Equal(t, "hello alice", b.getPage(second.url("/docs/")).body)
	assertSignedInAs(t, b, first, "alice", "provider")
	assert.Equal(t, 1, db.count(t, "SELECT count(*) FROM pgsession.sessions"))
	assert.Zero(t, db.count(t, "SELECT count(*) FROM pgsession.identity_flows"), "the flow is used up")

	// The same callback again, on the first server this time, is used up too.
	resp = newBrowser(t).getPage(callback.String())
	assertFlowPage(t, resp, "test", http.StatusBadRequest, "This sign-in has expired or was already used")
}

func TestTwoTabsSignInWithAProviderAtOnce(t *testing.T) {
	t.Parallel()
	_, db, s := linkedAlice(t, "allow_domains example.com")

	// Both tabs press the button before either signs in at the provider;
	// they finish in the order they began.
	b := newBrowser(t)
	one := b.begin(s, "test", "/one")
	two := b.begin(s, "test", "/two")
	first := oidctest.SignIn(t, nil, one, "alice-sub")
	second := oidctest.SignIn(t, nil, two, "alice-sub")
	resp := b.getPage(first.String())
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the first tab: %s", gist(resp.body))
	assert.Equal(t, "/one", resp.Header.Get("Location"))
	assert.Equal(t, "hello alice", b.getPage(s.url("/one")).body)
	resp = b.getPage(second.String())
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the second tab, after the first began a session: %s", gist(resp.body))
	assert.Equal(t, "/two", resp.Header.Get("Location"))
	assert.Equal(t, "hello alice", b.getPage(s.url("/two")).body)
	assertSignedInAs(t, b, s, "alice", "provider")
	assert.Equal(t, 1, db.count(t, "SELECT count(*) FROM pgsession.sessions"), "one browser, one session")
}

func TestASlowSignInAtAProviderExpires(t *testing.T) {
	t.Parallel()
	_, db, s := linkedAlice(t, "allow_domains example.com")

	b := newBrowser(t)
	callback := oidctest.SignIn(t, nil, b.begin(s, "test", "/docs/"), "alice-sub")
	// The person took longer than a flow lives.
	require.EqualValues(t, 1, db.exec(t, "UPDATE pgsession.identity_flows SET expires_at = now() - interval '1 second'"))
	resp := b.getPage(callback.String())
	assertFlowPage(t, resp, "test", http.StatusBadRequest, "This sign-in has expired or was already used")
	assertPageHas(t, resp.body, "in the browser that began it")
	assertNotSignedIn(t, b, s)

	// Its link starts again, and this time they are quick.
	again := startAgainLink(resp, "test")
	require.NotEmpty(t, again)
	resp = b.getPage(s.url(again))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, "the page's link starts a new sign-in: %s", gist(resp.body))
	resp = b.getPage(oidctest.SignIn(t, nil, resp.Header.Get("Location"), "alice-sub").String())
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, b, s, "alice", "provider")

	// A state nobody began gets the same page.
	resp = newBrowser(t).getPage(s.url("/login/callback/test?state=" + randomHex(t, 16) + "&code=made-up"))
	assertFlowPage(t, resp, "test", http.StatusBadRequest, "This sign-in has expired or was already used")
}

func TestBackAfterSigningInWithAProvider(t *testing.T) {
	t.Parallel()
	_, _, s := linkedAlice(t, "allow_domains example.com")

	b := newBrowser(t)
	callback := oidctest.SignIn(t, nil, b.begin(s, "test", "/docs/"), "alice-sub")
	resp := b.getPage(callback.String())
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	cookie := b.cookie(s)
	require.NotEmpty(t, cookie)

	// Back, to the callback's address: a page, not a 500 or a loop, and
	// the session stays.
	resp = b.getPage(callback.String())
	assertFlowPage(t, resp, "test", http.StatusBadRequest, "This sign-in has expired or was already used")
	for _, c := range resp.Cookies() {
		assert.NotEqual(t, "session", c.Name, "the page leaves the session cookie alone: %s", c)
	}
	assert.Equal(t, cookie, b.cookie(s), "the same session")
	assertSignedInAs(t, b, s, "alice", "provider")
	assert.Equal(t, "hello alice", b.getPage(s.url("/docs/")).body)
}
