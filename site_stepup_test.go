package pgsession

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A session signed in with the password alone steps up to a second factor
// and keeps its cookie: the step-up page asks for the code, a wrong code
// counts as a failed one, the right one holds on this server at once and
// on every other server within milliseconds, and a code used to step up
// is spent.
func TestStepUpWithACodeKeepsTheSession(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Header.Get("X-Auth-Method")) })
	a := twoStepSite(t, db, "")
	other := startSite(t, siteOptions{db: db.url, app: "secrets_key " + testSecretsKey, next: up.proxy()})
	b := newBrowser(t)
	b.login(a, "alice", "correct horse")
	secret, recovery := enrolTOTP(t, a, b) // the session it was set up from stays a password session
	token := b.cookie(a)
	methodOnOther := func() string {
		resp := sendRaw(t, http.MethodGet, other.url("/app"), "", "Cookie", cookieHeader(token))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		return resp.body
	}
	require.Equal(t, "password", methodOnOther())
	require.Equal(t, "password", methodOnOther(), "from the other server's memory")

	const target = "/reports/2026?sort=desc"
	page := b.getPage(a.url("/login/step-up?redirect=" + url.QueryEscape(target)))
	require.Equal(t, http.StatusOK, page.StatusCode, page.body)
	assert.Contains(t, page.body, "Signed in as alice: this page needs your second factor.")
	assert.Contains(t, page.body, `action="/login/step-up"`)
	assert.Contains(t, page.body, `name="code"`)
	assert.Contains(t, page.body, `name="recovery_code"`)
	assert.NotContains(t, page.body, "data-passkey-sign-in", "no passkey to offer")

	wrong := b.postForm(a.url("/login/step-up"), url.Values{"code": {"000000"}, "redirect": {target}})
	assert.Equal(t, http.StatusUnauthorized, wrong.StatusCode)
	assert.Contains(t, wrong.body, "Invalid code")
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.login_attempts WHERE kind = 'login'`), "a wrong code counts")
	assert.Equal(t, "password", b.get(a.url("/api/auth/me")).json(t)["auth_method"])

	code := laterCode(t, secret, 1)
	right := b.postForm(a.url("/login/step-up"), url.Values{"code": {code}, "redirect": {target}})
	require.Equal(t, http.StatusSeeOther, right.StatusCode, right.body)
	assert.Equal(t, target, right.Header.Get("Location"))
	assert.Equal(t, token, b.cookie(a), "the same session, the same cookie")
	assert.Equal(t, "password+totp", b.get(a.url("/api/auth/me")).json(t)["auth_method"])
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.login_attempts WHERE kind = 'login'`),
		"a right code forgives the failures, as at sign-in")
	start := time.Now()
	require.Eventually(t, func() bool { return methodOnOther() == "password+totp" }, 5*time.Second, time.Millisecond,
		"the other server kept the session as a password session")
	t.Logf("the other server saw the step-up after %v", time.Since(start).Round(time.Millisecond))

	again := b.getPage(a.url("/login/step-up?redirect=" + url.QueryEscape(target)))
	assert.Equal(t, http.StatusSeeOther, again.StatusCode, "a stepped-up session goes straight on")
	assert.Equal(t, target, again.Header.Get("Location"))

	// Another password session of alice's, stepped up with JSON: the code
	// just used is spent, a recovery code works once.
	alice := db.userNamed(t, "alice") // as her authenticator left her credentials
	second, _ := db.sessionInDB(t, alice)
	script := newBrowser(t)
	script.setCookie(a, second)
	resp := script.postJSON(a.url("/api/auth/step-up"), map[string]string{"code": code})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a code used to step up works once")
	assert.JSONEq(t, `{"error":"Invalid code"}`, resp.body)
	resp = script.postJSON(a.url("/api/auth/step-up"), map[string]string{"recovery_code": recovery[0]})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.JSONEq(t, `{"method":"password+recovery_code"}`, resp.body)
	assert.Equal(t, "password+recovery_code", script.get(a.url("/api/auth/me")).json(t)["auth_method"])
	third, _ := db.sessionInDB(t, alice)
	script.setCookie(a, third)
	resp = script.postJSON(a.url("/api/auth/step-up"), map[string]string{"recovery_code": recovery[0]})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a recovery code works once")
	assert.Equal(t, "password", script.get(a.url("/api/auth/me")).json(t)["auth_method"])

	// The history shows each check of a factor the owner did not see.
	var factors []string
	for _, e := range b.get(a.url("/api/auth/history")).list(t) {
		factors = append(factors, fmt.Sprint(e["outcome"], " ", e["factor"]))
	}
	assert.Subset(t, factors, []string{"failure totp", "success totp", "success recovery_code", "failure recovery_code"})

	resp = newBrowser(t).postJSON(a.url("/api/auth/step-up"), map[string]string{"code": code})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no session, nothing to step up")
}

// A step-up with a passkey checks a passkey of the session's own user: the
// options list that user's passkeys, and another user's passkey is refused.
func TestStepUpWithAPasskey(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice, bob := db.addUser(t, "alice", "correct horse"), db.addUser(t, "bob", "correct horse")
	s := startSite(t, siteOptions{db: db.url})
	alicesKey, bobsKey := addSoftPasskey(t, db, alice), addSoftPasskey(t, db, bob)
	token, _ := db.sessionInDB(t, alice)
	b := newBrowser(t)
	b.setCookie(s, token)

	page := b.getPage(s.url("/login/step-up?redirect=/docs/"))
	require.Equal(t, http.StatusOK, page.StatusCode, page.body)
	assert.Contains(t, page.body, `data-passkey-flow="step-up"`, "the page offers her passkey")
	assert.NotContains(t, page.body, `name="code"`, "and no code, as she has no authenticator app")

	// Bob's passkey answering alice's step-up is refused.
	begin := atLocalhost(t, b, s, http.MethodPost, passkeyAPI+"/step-up/begin", nil)
	allowed := publicKeyOptions(t, begin)["allowCredentials"].([]any)
	require.Len(t, allowed, 1, "her passkeys only")
	body := bobsKey.answer(t, s, begin)
	resp := atLocalhost(t, b, s, http.MethodPost, passkeyAPI+"/step-up/finish", body)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.body)
	assert.Equal(t, "password", b.get(s.url("/api/auth/me")).json(t)["auth_method"])

	begin = atLocalhost(t, b, s, http.MethodPost, passkeyAPI+"/step-up/begin", nil)
	body = alicesKey.answer(t, s, begin)
	body["redirect"] = "/docs/"
	resp = atLocalhost(t, b, s, http.MethodPost, passkeyAPI+"/step-up/finish", body)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.JSONEq(t, `{"method":"passkey","redirect":"/docs/"}`, resp.body)
	assert.Equal(t, token, b.cookie(s), "the same session")
	assert.Equal(t, "passkey", b.get(s.url("/api/auth/me")).json(t)["auth_method"])
	resp = atLocalhost(t, b, s, http.MethodPost, passkeyAPI+"/step-up/finish", body)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a stepped-up session is done: nothing is checked again")

	// A passkey sign-in, with or without the password before it, is a
	// passkey session from the start.
	signer := newBrowser(t)
	resp = atLocalhost(t, signer, s, http.MethodPost, passkeyAPI+"/login/finish",
		alicesKey.answer(t, s, atLocalhost(t, signer, s, http.MethodPost, passkeyAPI+"/login/begin", nil)))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	me := sendRaw(t, http.MethodGet, s.url("/api/auth/me"), "", "Cookie", cookieHeader(namedCookie(t, resp, "session").Value))
	assert.Equal(t, "passkey", me.json(t)["auth_method"])
}

// A rule with second_factor steps a password session up on its path: the
// browser is sent to the step-up page and back, the same session then
// passes there; a user without a factor is sent to set one up; a script
// gets 401 second_factor_required; an API token, which can give no
// factor, gets 403.
func TestARuleWithSecondFactorStepsUpThePath(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse")
	db.addUser(t, "bob", "correct horse")
	db.joinGroups(t, "alice", "admins")
	db.joinGroups(t, "bob", "admins")
	// The site's own pages are under /admin, where the plugin's admin page would be.
	a := twoStepSite(t, db, "admin_path off\n\t\tallow /admin/* group admins second_factor\n\t\tallow /* any_user")
	b := newBrowser(t)
	b.login(a, "alice", "correct horse")
	secret, _ := enrolTOTP(t, a, b)
	token := b.cookie(a)
	assert.Equal(t, http.StatusOK, b.get(a.url("/docs/x")).StatusCode, "other paths need no second factor")

	resp := b.getPage(a.url("/admin/users?page=2"))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, "/login/step-up?redirect="+url.QueryEscape("/admin/users?page=2"), resp.Header.Get("Location"))
	script := sendRaw(t, http.MethodGet, a.url("/admin/users"), "", "Cookie", cookieHeader(token))
	assert.Equal(t, http.StatusUnauthorized, script.StatusCode)
	assert.Contains(t, script.body, "second factor")

	right := b.postForm(a.url("/login/step-up"), url.Values{"code": {laterCode(t, secret, 1)}, "redirect": {"/admin/users?page=2"}})
	require.Equal(t, http.StatusSeeOther, right.StatusCode, right.body)
	assert.Equal(t, "/admin/users?page=2", right.Header.Get("Location"))
	assert.Equal(t, token, b.cookie(a), "the session is not replaced")
	assert.Equal(t, http.StatusOK, b.get(a.url("/admin/users?page=2")).StatusCode, "the same session now passes there")

	bob := newBrowser(t)
	bob.login(a, "bob", "correct horse")
	resp = bob.getPage(a.url("/admin/users"))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/account#two-step", resp.Header.Get("Location"), "a user without a factor is sent to set one up")

	apiToken := db.addAPIToken(t, alice, "ci", nil, false)
	assert.Equal(t, http.StatusForbidden, sendRaw(t, http.MethodGet, a.url("/admin/users"), "", bearer(apiToken)...).StatusCode)
	assert.Equal(t, http.StatusOK, sendRaw(t, http.MethodGet, a.url("/docs/x"), "", bearer(apiToken)...).StatusCode)
}
