package pgsession

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
	"github.com/pgsession/caddy-pgsession/store"
)

// Who may come in through a provider: allow_domains and allow_emails admit
// by a verified email, and refuse the rest; with no allow list, only an
// identity linked to a user signs in; auto_create makes a user, without a
// password, of an admitted identity that is linked to none.

func TestProviderAllowListsAdmitAndRefuse(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	for _, u := range []oidctest.User{
		{Subject: "alice-sub", Email: "alice@example.com", PreferredUsername: "alice"},
		{Subject: "sub-sub", Email: "sam@docs.example.com", PreferredUsername: "sam"},
		{Subject: "guest-sub", Email: "Guest@Other.test", PreferredUsername: "guest"},
		{Subject: "carol-sub", Email: "carol@other.test", PreferredUsername: "carol"},
	} {
		u.EmailVerified = true
		p.AddUser(t, u)
	}
	domainDB, emailDB := newTestDB(t), newTestDB(t)
	byDomain := startProviderSite(t, siteOptions{db: domainDB.url}, p, "allow_domains example.com\n\tauto_create on")
	byEmail := startProviderSite(t, siteOptions{db: emailDB.url}, p, "allow_emails guest@other.test\n\tauto_create on")

	for _, c := range []struct {
		site    *testSite
		list    string
		subject string
		admit   bool
		who     string // the user it signs in as, or why it is refused
	}{
		{byDomain, "allow_domains example.com", "alice-sub", true, "alice"},
		{byDomain, "allow_domains example.com", "sub-sub", false, "a subdomain is a domain of its own"},
		{byDomain, "allow_domains example.com", "carol-sub", false, "another domain"},
		{byEmail, "allow_emails guest@other.test", "guest-sub", true, "guest"},
		{byEmail, "allow_emails guest@other.test", "carol-sub", false, "another email at the domain"},
		{byEmail, "allow_emails guest@other.test", "alice-sub", false, "another domain"},
	} {
		b := newBrowser(t)
		resp := b.signInWith(c.site, "test", c.subject, "/docs/")
		if c.admit {
			if assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "%s admits %s: %s", c.list, c.subject, gist(resp.body)) {
				assert.Equal(t, "/docs/", resp.Header.Get("Location"))
				assertSignedInAs(t, b, c.site, c.who, "provider")
			}
			continue
		}
		if assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s refuses %s (%s): %s", c.list, c.subject, c.who, gist(resp.body)) {
			assertFlowPage(t, resp, "test", http.StatusForbidden, "Not allowed")
		}
		assertNotSignedIn(t, b, c.site)
	}
	for _, db := range []*testDB{domainDB, emailDB} {
		names := db.queryText(t, "SELECT coalesce(string_agg(username, ',' ORDER BY username), '') FROM pgsession.users")
		assert.NotContains(t, names, "carol", "auto_create made no user of a refused identity")
		assert.NotContains(t, names, "sam")
	}
}

func TestProviderWithNoAllowListOnlyALinkedUserSignsIn(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	for _, u := range []oidctest.User{
		{Subject: "alice-sub", Email: "alice@example.com", PreferredUsername: "alice"},
		{Subject: "bob-sub", Email: "bob@example.com", PreferredUsername: "bob"},
		{Subject: "mallory-sub", Email: "alice+x@example.com", PreferredUsername: "alice"},
	} {
		u.EmailVerified = true
		p.AddUser(t, u)
	}
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	db.linkIdentity(t, alice, "alice-sub", "alice@example.com")
	bob := db.addUser(t, "bob", "correct horse battery")
	s := startProviderSite(t, siteOptions{db: db.url}, p, "")

	// An identity linked to nobody: the page says what to do.
	b := newBrowser(t)
	resp := b.signInWith(s, "test", "mallory-sub", "/docs/")
	if assert.Equal(t, http.StatusForbidden, resp.StatusCode, gist(resp.body)) {
		assertFlowPage(t, resp, "test", http.StatusForbidden, "No account for this Test account")
		assertPageHas(t, resp.body, "No account of this site is linked to it")
	}
	assertNotSignedIn(t, b, s)

	// The linked one signs in.
	b = newBrowser(t)
	resp = b.signInWith(s, "test", "alice-sub", "/docs/")
	if assert.Equal(t, http.StatusSeeOther, resp.StatusCode,
		"with no allow list, an identity linked to a user should sign in: %s", gist(resp.body)) {
		assert.Equal(t, "/docs/", resp.Header.Get("Location"))
		assertSignedInAs(t, b, s, "alice", "provider")
	}

	// An admin's invitation lets the first sign-in with that verified
	// email link, and then the link holds.
	_, err := db.store.AllowIdentity(context.Background(), store.IdentityInvitation{Provider: "test", Email: "bob@example.com", UserID: bob.ID})
	require.NoError(t, err)
	b = newBrowser(t)
	resp = b.signInWith(s, "test", "bob-sub", "/")
	if assert.Equal(t, http.StatusSeeOther, resp.StatusCode,
		"with no allow list, an identity an admin allowed to link should sign in: %s", gist(resp.body)) {
		assertSignedInAs(t, b, s, "bob", "provider")
	}

	// Linking from the account page works without an allow list too.
	carol := db.addUser(t, "carol", "correct horse battery")
	p.AddUser(t, oidctest.User{Subject: "carol-sub", Email: "carol@example.com", EmailVerified: true})
	b = newBrowser(t)
	b.login(s, "carol", "correct horse battery")
	resp = b.postForm(s.url("/account"), url.Values{"action": {"link-identity"}, "provider": {"test"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	resp = b.getPage(oidctest.SignIn(t, nil, resp.Header.Get("Location"), "carol-sub").String())
	if assert.Equal(t, http.StatusSeeOther, resp.StatusCode,
		"with no allow list, linking from the account page should link: %s", gist(resp.body)) {
		assert.Equal(t, "/account?done=identity-linked", resp.Header.Get("Location"))
	}
	ids, err := db.store.Identities(context.Background(), carol.ID)
	require.NoError(t, err)
	assert.Len(t, ids, 1, "carol's linked identities")
}

func TestProviderAutoCreateMakesAUserWithoutAPassword(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "newbie-sub", Email: "newbie@example.com", EmailVerified: true, PreferredUsername: "newbie"})
	db := newTestDB(t)
	db.addUser(t, "dora", "correct horse battery")
	s := startProviderSite(t, siteOptions{db: db.url}, p, "allow_domains example.com\n\tauto_create on")

	b := newBrowser(t)
	resp := b.signInWith(s, "test", "newbie-sub", "/docs/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assert.Equal(t, "/docs/", resp.Header.Get("Location"))
	assert.Equal(t, "hello newbie", b.getPage(s.url("/docs/")).body)
	assertSignedInAs(t, b, s, "newbie", "provider")
	assert.Equal(t, 1, db.count(t, "SELECT count(*) FROM pgsession.users WHERE username = 'newbie' AND password_hash IS NULL"),
		"the user made has no password")

	// Signing in again finds the same user, by subject.
	again := newBrowser(t)
	resp = again.signInWith(s, "test", "newbie-sub", "/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, again, s, "newbie", "provider")
	assert.Equal(t, 2, db.count(t, "SELECT count(*) FROM pgsession.users"), "no second user")

	// No password signs in as them, and the answer is a wrong password's,
	// word for word.
	wrong := postLoginJSON(t, s, "dora", "not the password")
	require.Equal(t, http.StatusUnauthorized, wrong.StatusCode, wrong.body)
	for _, password := range []string{"", "correct horse battery", "anything at all"} {
		resp := postLoginJSON(t, s, "newbie", password)
		assert.Equal(t, wrong.StatusCode, resp.StatusCode, "password %q for a user without one", password)
		assert.Equal(t, wrong.body, resp.body, "password %q for a user without one", password)
	}
	page := newBrowser(t).postForm(s.url("/login"), url.Values{"username": {"newbie"}, "password": {"anything at all"}, "redirect": {"/"}})
	assert.Equal(t, http.StatusUnauthorized, page.StatusCode)
	assertPageHas(t, page.body, "Invalid username or password")
}
