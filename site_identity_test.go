package pgsession

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
	"github.com/pgsession/caddy-pgsession/store"
)

// Signing in with an identity provider, in process, against a real OpenID
// provider process (internal/oidctest): the whole way from the login
// page's button through the provider's login form and back.

func TestSignInWithAnOpenIDProvider(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "alice-at-provider", Email: "alice@example.com", EmailVerified: true,
		PreferredUsername: "alice"})
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	s := startProviderSite(t, siteOptions{db: db.url}, p, "allow_domains example.com")

	page := newBrowser(t).getPage(s.url("/login"))
	assert.Contains(t, page.body, `href="/login/with/test?redirect=%2F"`, "the login page's button")

	b := newBrowser(t)
	resp := b.signInWith(s, "test", "alice-at-provider", "/docs/")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "no account is linked to it yet")
	assert.Contains(t, resp.body, "No account of this site is linked to it")

	// An admin allows the first sign-in with the verified email to link.
	_, err := db.store.AllowIdentity(context.Background(), store.IdentityInvitation{Provider: "test",
		Email: "alice@example.com", UserID: alice.ID})
	require.NoError(t, err)
	resp = b.signInWith(s, "test", "alice-at-provider", "/docs/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, "/docs/", resp.Header.Get("Location"))
	assert.Equal(t, "hello alice", b.getPage(s.url("/docs/")).body)
	me := b.get(s.url("/api/auth/me")).json(t)
	assert.Equal(t, "provider", me["auth_method"])

	// The link holds by subject: another browser signs in without any
	// invitation left.
	other := newBrowser(t)
	resp = other.signInWith(s, "test", "alice-at-provider", "/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, "hello alice", other.getPage(s.url("/")).body)
}

func TestAProviderCallbackWorksOnceInTheBrowserThatBeganIt(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "bob-sub", Email: "bob@example.com", EmailVerified: true, PreferredUsername: "bob"})
	db := newTestDB(t)
	s := startProviderSite(t, siteOptions{db: db.url}, p, "allow_domains example.com\n\tauto_create on")

	b := newBrowser(t)
	// Two tabs begin a sign-in at once; both finish.
	first := b.getPage(s.url("/login/with/test?redirect=%2Fone"))
	second := b.getPage(s.url("/login/with/test?redirect=%2Ftwo"))
	cb1 := oidctest.SignIn(t, nil, first.Header.Get("Location"), "bob-sub")
	cb2 := oidctest.SignIn(t, nil, second.Header.Get("Location"), "bob-sub")
	resp := b.getPage(cb2.String())
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, "/two", resp.Header.Get("Location"))
	resp = b.getPage(cb1.String())
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, "/one", resp.Header.Get("Location"))

	// Replayed, or carried to another browser: a page that offers to start again.
	resp = b.getPage(cb1.String())
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, resp.body, "expired or was already used")
	assert.Contains(t, resp.body, `href="/login/with/test?redirect=`)
	third := b.getPage(s.url("/login/with/test"))
	cb3 := oidctest.SignIn(t, nil, third.Header.Get("Location"), "bob-sub")
	resp = newBrowser(t).getPage(cb3.String())
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "another browser's callback finds no flow")

	// Denied at the provider.
	fourth := b.getPage(s.url("/login/with/test"))
	resp = b.getPage(oidctest.Deny(t, nil, fourth.Header.Get("Location")).String())
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.body, "did not allow")
	assert.True(t, strings.Contains(db.queryText(t, "SELECT string_agg(username, ',') FROM pgsession.users"), "bob"),
		"auto_create made bob")
}
