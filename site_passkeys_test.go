package pgsession

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/routes"
	"github.com/pgsession/caddy-pgsession/internal/webtest"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// The passkey routes as far as they can be tested without an
// authenticator: the options a ceremony begins with, its state kept once
// and briefly, answers that do not verify, and the user's list. A passkey
// made and used by a real browser is in site_passkey_browser_test.go.

const passkeyAPI = "/api/auth/passkeys"

// defaultCeremonyCookie is the ceremony cookie's name under the default
// cookie_name (session).
const defaultCeremonyCookie = "session_passkey"

// atLocalhost sends a request to site as a browser at http://localhost:<port>
// would: a domain, which WebAuthn needs, where the site's URL has an IP address.
func atLocalhost(t *testing.T, b *browser, site *testSite, method, path string, body any) reply {
	t.Helper()
	req := webtest.JSONRequest(t, method, site.url(path), body)
	u, err := url.Parse(site.url("/"))
	require.NoError(t, err)
	req.Host = "localhost:" + u.Port()
	// The jar files cookies by the request's host: the session cookie,
	// set at the site's own address, is sent along by hand.
	for _, c := range b.jar.Cookies(u) {
		req.AddCookie(c)
	}
	return b.do(req)
}

// ceremonyCookieOf returns the passkey ceremony cookie resp sets.
func ceremonyCookieOf(t *testing.T, resp reply) *http.Cookie {
	t.Helper()
	return namedCookie(t, resp, defaultCeremonyCookie)
}

func publicKeyOptions(t *testing.T, resp reply) map[string]any {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	pk, ok := resp.json(t)["publicKey"].(map[string]any)
	require.True(t, ok, "options under publicKey: %s", resp.body)
	return pk
}

func TestPasskeyLoginBeginOffersTheSitesPasskeys(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	site := startSite(t, siteOptions{db: db.url})

	resp := atLocalhost(t, newBrowser(t), site, http.MethodPost, passkeyAPI+"/login/begin", nil)
	pk := publicKeyOptions(t, resp)
	challenge, err := base64.RawURLEncoding.DecodeString(pk["challenge"].(string))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(challenge), 16, "a challenge beyond guessing")
	assert.Equal(t, "localhost", pk["rpId"], "the RP ID is the request's host without its port")
	assert.Equal(t, "required", pk["userVerification"], "a passkey alone must stand for both factors")
	assert.Empty(t, pk["allowCredentials"], "no username: the browser offers the site's passkeys")

	c := ceremonyCookieOf(t, resp)
	assert.True(t, c.HttpOnly)
	assert.Equal(t, http.SameSiteStrictMode, c.SameSite)
	assert.Equal(t, passkeyAPI, c.Path, "sent to the passkey routes only")
	assert.Equal(t, 300, c.MaxAge)
	state := openCeremonyCookie(t, site, routes.CeremonyLogin, c.Value)
	assert.Empty(t, state.UserID, "a sign-in's ceremony names no user")
	assert.Equal(t, pk["challenge"], state.Data.Challenge, "the cookie holds the ceremony, sealed")
	assert.NotContains(t, c.Value, pk["challenge"])
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.used_challenges`), "and the database nothing")

	again := publicKeyOptions(t, atLocalhost(t, newBrowser(t), site, http.MethodPost, passkeyAPI+"/login/begin", nil))
	assert.NotEqual(t, pk["challenge"], again["challenge"], "each ceremony has its own challenge")

	byIP := newBrowser(t).postJSON(site.url(passkeyAPI+"/login/begin"), nil)
	assert.Equal(t, http.StatusBadRequest, byIP.StatusCode, "an IP address cannot be an RP ID")
	assert.Contains(t, byIP.body, "domain name")
}

func TestPasskeyRelyingPartyFromTheOptions(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	site := startSite(t, siteOptions{db: db.url, handler: "passkey_rp_id example.com\npasskey_origins https://docs.example.com"})
	// The configured RP ID holds whatever address the request came to.
	pk := publicKeyOptions(t, newBrowser(t).postJSON(site.url(passkeyAPI+"/login/begin"), nil))
	assert.Equal(t, "example.com", pk["rpId"])
}

func TestPasskeyRegisterBeginAsksForADiscoverableVerifiedPasskey(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "alice password")
	site := startSite(t, siteOptions{db: db.url, handler: `site_name "Example Docs"`})

	anonymous := atLocalhost(t, newBrowser(t), site, http.MethodPost, passkeyAPI+"/register/begin", nil)
	assert.Equal(t, http.StatusUnauthorized, anonymous.StatusCode, "adding a passkey needs a session")

	b := newBrowser(t)
	b.login(site, "alice", "alice password")
	begin := atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/register/begin", nil)
	pk := publicKeyOptions(t, begin)
	rp := pk["rp"].(map[string]any)
	assert.Equal(t, "localhost", rp["id"])
	assert.Equal(t, "Example Docs", rp["name"], "the RP's name is site_name")
	user := pk["user"].(map[string]any)
	assert.Equal(t, "alice", user["name"])
	handle, err := base64.RawURLEncoding.DecodeString(user["id"].(string))
	require.NoError(t, err)
	assert.Len(t, handle, 16, "the user handle is random bytes")
	assert.NotContains(t, string(handle), "alice")
	assert.NotContains(t, strings.ToLower(user["id"].(string)), strings.ReplaceAll(string(db.userNamed(t, "alice").ID), "-", ""))
	selection := pk["authenticatorSelection"].(map[string]any)
	assert.Equal(t, "required", selection["residentKey"], "a passkey that signs in without a username")
	assert.Equal(t, "required", selection["userVerification"])
	assert.NotEmpty(t, pk["challenge"])
	assert.Equal(t, db.userNamed(t, "alice").ID, openCeremonyCookie(t, site, routes.CeremonyRegister, ceremonyCookieOf(t, begin).Value).UserID,
		"a registration's ceremony is the user's")
}

// A ceremony is finished once, within its lifetime, and an answer that is
// not a passkey's gets 400, never a 500.
func TestPasskeyCeremonyIsSingleUseAndExpires(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "alice password")
	site := startSite(t, siteOptions{db: db.url})
	garbage := map[string]any{"credential": map[string]any{"id": "AAAA", "type": "public-key", "response": map[string]any{}}}

	b := newBrowser(t)
	assert.Equal(t, http.StatusBadRequest, atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/login/finish", garbage).StatusCode,
		"no ceremony was begun")

	begin := atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/login/begin", nil)
	token := ceremonyCookieOf(t, begin).Value
	finish := atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/login/finish", garbage)
	assert.Equal(t, http.StatusBadRequest, finish.StatusCode, finish.body)
	assert.Contains(t, finish.body, "cannot be read")
	assert.Equal(t, -1, ceremonyCookieOf(t, finish).MaxAge, "the finish clears the ceremony's cookie")
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.used_challenges`), "and records its challenge as used")

	u, err := url.Parse(site.url("/"))
	require.NoError(t, err)
	req := webtest.JSONRequest(t, http.MethodPost, site.url(passkeyAPI+"/login/finish"), garbage, "Cookie", defaultCeremonyCookie+"="+token)
	req.Host = "localhost:" + u.Port()
	resp, body := webtest.Do(t, attackerClient, req)
	replay := reply{resp, body}
	assert.Equal(t, http.StatusBadRequest, replay.StatusCode)
	assert.Contains(t, replay.body, "expired or was used", "a ceremony is finished once")

	expireCeremonyCookie(t, b, site, routes.CeremonyLogin, atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/login/begin", nil))
	late := atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/login/finish", garbage)
	assert.Equal(t, http.StatusBadRequest, late.StatusCode)
	assert.Contains(t, late.body, "expired or was used")

	b.login(site, "alice", "alice password")
	atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/register/begin", nil)
	reg := atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/register/finish", map[string]any{"name": "Laptop", "credential": garbage["credential"]})
	assert.Equal(t, http.StatusBadRequest, reg.StatusCode, reg.body)
	assert.Contains(t, reg.body, "could not be verified")
	for _, body := range []map[string]any{
		{"name": "", "credential": garbage["credential"]},
		{"name": strings.Repeat("x", 65), "credential": garbage["credential"]},
		{"name": "Laptop", "credential": garbage["credential"], "extra": 1},
	} {
		resp := atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/register/finish", body)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%v: %s", body, resp.body)
	}
	assert.Equal(t, []int{}, filterStatus(site.statuses(), http.StatusInternalServerError), "never a 500")
}

func filterStatus(statuses []int, status int) []int {
	out := []int{}
	for _, s := range statuses {
		if s == status {
			out = append(out, s)
		}
	}
	return out
}

// Failed passkey sign-ins count toward the address's limit of failed logins.
func TestPasskeySignInsAreThrottledPerAddress(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	site := startSite(t, siteOptions{db: db.url, handler: "max_failed_logins_per_ip 2"})
	garbage := map[string]any{"credential": map[string]any{"id": "AAAA"}}
	b := newBrowser(t)
	var statuses []int
	for range 3 {
		atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/login/begin", nil)
		statuses = append(statuses, atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/login/finish", garbage).StatusCode)
	}
	assert.Equal(t, []int{http.StatusBadRequest, http.StatusBadRequest, http.StatusTooManyRequests}, statuses)
	resp := postLoginJSON(t, site, "nobody", "some password")
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the address is past its limit for passwords too")
}

func addTestPasskey(t *testing.T, db *testDB, user *store.User, id, name string) string {
	t.Helper()
	_, err := db.store.AddPasskey(context.Background(), store.Passkey{ID: []byte(id), UserID: user.ID, Name: name,
		Credential: []byte(`{}`), PublicKey: []byte("key")})
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

func TestPasskeyListAndRemove(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice, bob := db.addUser(t, "alice", "alice password"), db.addUser(t, "bob", "bob password")
	site := startSite(t, siteOptions{db: db.url})

	assert.Equal(t, http.StatusUnauthorized, newBrowser(t).get(site.url(passkeyAPI)).StatusCode)

	// Signed in before the passkeys exist: with one, a password alone
	// no longer signs in (see TestPasskeyIsASecondFactorAfterThePassword).
	b, other := newBrowser(t), newBrowser(t)
	b.login(site, "alice", "alice password")
	other.login(site, "alice", "alice password")
	laptop := addTestPasskey(t, db, alice, "alice-laptop", "Laptop")
	phone := addTestPasskey(t, db, alice, "alice-phone", "Phone")
	bobs := addTestPasskey(t, db, bob, "bob-key", "Bob's key")
	list := b.get(site.url(passkeyAPI))
	require.Equal(t, http.StatusOK, list.StatusCode, list.body)
	keys := list.list(t)
	require.Len(t, keys, 2, "alice's passkeys only")
	assert.Equal(t, laptop, keys[0]["id"])
	assert.Equal(t, "Laptop", keys[0]["name"])
	assert.Nil(t, keys[0]["last_used_at"])
	assert.NotEmpty(t, keys[0]["created_at"])
	assert.NotContains(t, list.body, "public", "the list names passkeys, nothing of their keys")

	notHers := b.send(http.MethodDelete, site.url(passkeyAPI+"/"+bobs), nil)
	assert.Equal(t, http.StatusNotFound, notHers.StatusCode, "alice cannot remove bob's passkey")
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.passkeys WHERE user_id = $1`, string(bob.ID)))
	assert.Equal(t, http.StatusNotFound, b.send(http.MethodDelete, site.url(passkeyAPI+"/not*base64"), nil).StatusCode)

	removed := b.send(http.MethodDelete, site.url(passkeyAPI+"/"+laptop), nil)
	require.Equal(t, http.StatusOK, removed.StatusCode, removed.body)
	assert.JSONEq(t, `{"ended":1}`, removed.body, "removing a passkey ends the other sessions")
	assert.Equal(t, http.StatusUnauthorized, other.get(site.url("/api/auth/me")).StatusCode)
	assert.Equal(t, http.StatusOK, b.get(site.url("/api/auth/me")).StatusCode, "but not this one")
	assert.Equal(t, http.StatusNotFound, b.send(http.MethodDelete, site.url(passkeyAPI+"/"+laptop), nil).StatusCode)

	page := b.getPage(site.url("/account"))
	assert.Contains(t, page.body, `<span id="passkey-0-name">Phone</span>`)
	assert.Contains(t, page.Header.Get("Content-Security-Policy"), "script-src "+web.ScriptHash()+"; connect-src 'self'")
	form := b.postForm(site.url("/account"), url.Values{"action": {"remove-passkey"}, "passkey": {phone}})
	assert.Equal(t, http.StatusSeeOther, form.StatusCode)
	assert.Equal(t, "/account?done=passkey-removed", form.Header.Get("Location"))
	again := b.postForm(site.url("/account"), url.Values{"action": {"remove-passkey"}, "passkey": {phone}})
	assert.Equal(t, "/account?error=no-passkey", again.Header.Get("Location"))
	page = b.getPage(site.url("/account?error=no-passkey"))
	assert.Contains(t, page.body, "That passkey had already been removed")
	assert.Contains(t, page.body, "No passkeys yet.")
}

// A passkey is a second factor: with one, the password alone starts no
// session and the answer names the passkey as the way on (no code, as no
// authenticator app is on); the form's page offers it; a reset removes it,
// and the password alone signs in again.
func TestPasskeyIsASecondFactorAfterThePassword(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "alice password")
	addTestPasskey(t, db, alice, "alice-phone", "Phone")
	admin := randomHex(t, 20)
	site := startSite(t, siteOptions{db: db.url, handler: `admin_token "` + admin + `"`})

	b := newBrowser(t)
	resp := b.postJSON(site.url("/api/auth/login"), map[string]string{"username": "alice", "password": "alice password"})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.JSONEq(t, `{"second_factor":"required","methods":["passkey"]}`, resp.body)
	assert.Empty(t, b.cookie(site), "no session")
	assert.Equal(t, http.StatusUnauthorized, b.get(site.url("/page")).StatusCode)

	page := newBrowser(t).postForm(site.url("/login"), url.Values{"username": {"alice"}, "password": {"alice password"}})
	require.Equal(t, http.StatusOK, page.StatusCode, page.body)
	assert.Contains(t, page.body, "data-passkey-sign-in", "the page offers the passkey")
	assert.NotContains(t, page.body, `name="code"`, "and asks for no code")
	assert.NotContains(t, page.body, `name="recovery_code"`, "nor a recovery code, as there are none")

	resp = sendRaw(t, http.MethodDelete, site.url("/api/auth/admin/users/alice/second-factors"), "", "X-Admin-Token", admin)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.passkeys`), "a reset removes the passkeys")
	newBrowser(t).login(site, "alice", "alice password")
}
