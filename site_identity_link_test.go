package pgsession

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/oidctest"
	"github.com/pgsession/caddy-pgsession/store"
)

// Linking and unlinking a provider from the account page, with its forms:
// the link is made by signing in at the provider while signed in here, and
// an unlink that would leave the user no way to sign in is refused.

// linkFromAccountPage presses the account page's "Link Test" and signs in
// at the provider as subject, returning the site's answer to the callback.
func (b *browser) linkFromAccountPage(s *testSite, subject string) reply {
	b.t.Helper()
	resp := b.submit(s, "/account", url.Values{"action": {"link-identity"}, "provider": {"test"}}, "/account")
	require.Equal(b.t, http.StatusSeeOther, resp.StatusCode, "pressing Link Test: %s", gist(resp.body))
	return b.getPage(oidctest.SignIn(b.t, nil, resp.Header.Get("Location"), subject).String())
}

// accountPage is the browser's account page, after following the
// redirect to it, if resp is one.
func (b *browser) accountPage(s *testSite, resp reply) reply {
	b.t.Helper()
	require.Equal(b.t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	loc := resp.Header.Get("Location")
	require.True(b.t, strings.HasPrefix(loc, "/account"), "back to the account page, not %q", loc)
	page := b.getPage(s.url(loc))
	require.Equal(b.t, http.StatusOK, page.StatusCode, gist(page.body))
	return page
}

func TestLinkAndUnlinkAProviderOnTheAccountPage(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "alice-sub", Email: "alice@example.com", EmailVerified: true})
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	s := startProviderSite(t, siteOptions{db: db.url}, p, "allow_domains example.com")

	// Not linked yet: the provider's button signs nobody in.
	resp := newBrowser(t).signInWith(s, "test", "alice-sub", "/")
	assertFlowPage(t, resp, "test", http.StatusForbidden, "No account for this Test account")

	b := newBrowser(t)
	b.login(s, "alice", "correct horse battery")
	page := b.getPage(s.url("/account"))
	require.Equal(t, http.StatusOK, page.StatusCode)
	linked := linkedAccounts(t, page.body)
	assertPageHas(t, linked, "No linked accounts yet.")
	assertPageHas(t, linked, `<input type="hidden" name="action" value="link-identity">`)
	assertPageHas(t, linked, "Link Test</button>")

	// Link: the form sends the browser to the provider, and the provider
	// back to the account page.
	resp = b.submit(s, "/account", url.Values{"action": {"link-identity"}, "provider": {"test"}}, "/account")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	require.True(t, strings.HasPrefix(resp.Header.Get("Location"), p.Issuer()+"/"), "to the provider, not %q", resp.Header.Get("Location"))
	resp = b.getPage(oidctest.SignIn(t, nil, resp.Header.Get("Location"), "alice-sub").String())
	page = b.accountPage(s, resp)
	assertPageHas(t, page.body, "Account linked")
	linked = linkedAccounts(t, page.body)
	assertPageHas(t, linked, ">Test</span>", "the list names the provider")
	assertPageHas(t, linked, "alice@example.com", "and the email it gave")
	assertPageHas(t, linked, `<input type="hidden" name="action" value="unlink-identity">`, "an Unlink button")
	assertPageLacks(t, linked, "Link Test</button>", "no second link of the same provider is offered")
	assertSignedInAs(t, b, s, "alice", "password")

	// From now on the provider signs alice in, in another browser.
	other := newBrowser(t)
	resp = other.signInWith(s, "test", "alice-sub", "/docs/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, other, s, "alice", "provider")

	// Unlink.
	resp = b.submit(s, "/account", url.Values{"action": {"unlink-identity"}, "provider": {"test"}}, "/account")
	page = b.accountPage(s, resp)
	assertPageHas(t, page.body, "Account unlinked")
	linked = linkedAccounts(t, page.body)
	assertPageHas(t, linked, "No linked accounts yet.")
	assertPageHas(t, linked, "Link Test</button>", "the provider can be linked again")

	// The provider signs alice in no more.
	third := newBrowser(t)
	resp = third.signInWith(s, "test", "alice-sub", "/")
	assertFlowPage(t, resp, "test", http.StatusForbidden, "No account for this Test account")
	assertNotSignedIn(t, third, s)
}

func TestUnlinkingTheOnlyIdentityIsRefused(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "bob-sub", Email: "bob@example.com", EmailVerified: true})
	db := newTestDB(t)
	// bob has no password: the provider is his one way in.
	_, err := db.store.CreateUserFromIdentity(context.Background(), "bob",
		store.Identity{Provider: "test", Subject: "bob-sub", Email: "bob@example.com"}, nil)
	require.NoError(t, err)
	s := startProviderSite(t, siteOptions{db: db.url}, p, "allow_domains example.com")

	b := newBrowser(t)
	resp := b.signInWith(s, "test", "bob-sub", "/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, b, s, "bob", "provider")
	page := b.getPage(s.url("/account"))
	require.Equal(t, http.StatusOK, page.StatusCode)
	linked := linkedAccounts(t, page.body)
	assertPageHas(t, linked, "It is your only way to sign in", "the account page says why")
	assertPageLacks(t, linked, `value="unlink-identity"`, "no Unlink form, only a disabled button")

	// The form posted anyway, as from an older page, is refused.
	resp = b.submit(s, "/account", url.Values{"action": {"unlink-identity"}, "provider": {"test"}}, "/account")
	page = b.accountPage(s, resp)
	assertPageHas(t, linkedAccounts(t, page.body), "That is your only way to sign in")
	assertPageLacks(t, page.body, "Account unlinked")

	// Still linked: the provider signs bob in.
	other := newBrowser(t)
	resp = other.signInWith(s, "test", "bob-sub", "/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, other, s, "bob", "provider")
}

func TestLinkingAnIdentityOfAnotherUserIsRefused(t *testing.T) {
	t.Parallel()
	p := oidctest.StartProvider(t, oidctest.Options{})
	p.AddUser(t, oidctest.User{Subject: "shared-sub", Email: "carol@example.com", EmailVerified: true})
	p.AddUser(t, oidctest.User{Subject: "alice-sub", Email: "alice@example.com", EmailVerified: true})
	p.AddUser(t, oidctest.User{Subject: "alice-second-sub", Email: "alice2@example.com", EmailVerified: true})
	db := newTestDB(t)
	carol := db.addUser(t, "carol", "correct horse battery")
	db.linkIdentity(t, carol, "shared-sub", "carol@example.com")
	alice := db.addUser(t, "alice", "correct horse battery")
	s := startProviderSite(t, siteOptions{db: db.url}, p, "allow_domains example.com")

	// alice, signed in, links carol's account at the provider.
	b := newBrowser(t)
	b.login(s, "alice", "correct horse battery")
	resp := b.linkFromAccountPage(s, "shared-sub")
	assertFlowPage(t, resp, "test", http.StatusConflict, "Already linked to another account")
	assertSignedInAs(t, b, s, "alice", "password")
	ids, err := db.store.Identities(context.Background(), alice.ID)
	require.NoError(t, err)
	assert.Empty(t, ids, "alice has nothing linked")
	// It still signs carol in, not alice.
	other := newBrowser(t)
	resp = other.signInWith(s, "test", "shared-sub", "/")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, gist(resp.body))
	assertSignedInAs(t, other, s, "carol", "provider")

	// A second account of the same provider for alice is refused too.
	resp = b.linkFromAccountPage(s, "alice-sub")
	b.accountPage(s, resp)
	resp = b.linkFromAccountPage(s, "alice-second-sub")
	assertFlowPage(t, resp, "test", http.StatusConflict, "Already linked")
	ids, err = db.store.Identities(context.Background(), alice.ID)
	require.NoError(t, err)
	if assert.Len(t, ids, 1) {
		assert.Equal(t, "alice-sub", ids[0].Subject, "the first link stays")
	}
}

// linkedAccounts is the account page's "Linked accounts" section.
func linkedAccounts(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<section aria-labelledby="identities-title"[^>]*>.*?</section>`).FindString(page)
	require.NotEmpty(t, m, "the account page has no Linked accounts section: %s", gist(page))
	return m
}
