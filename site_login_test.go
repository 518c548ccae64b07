package pgsession

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The user's story: a private site asks for a login, lets them in, and lets them out.

func TestVisitorWithoutSessionIsSentToLogin(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)

	resp := b.getPage(c.url("/docs/page.html?lang=en"))
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/login?redirect="+url.QueryEscape("/docs/page.html?lang=en"), resp.Header.Get("Location"))

	resp = b.get(c.url("/api/data"))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.JSONEq(t, `{"error":"Not authenticated"}`, resp.body)

	b.setCookie(c, "not-a-session")
	resp = b.get(c.url("/api/data"))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.JSONEq(t, `{"error":"Session expired"}`, resp.body)
}

func TestLoginPage(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)

	resp := b.getPage(c.url("/login?redirect=%2Fdocs%2F"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	assert.Contains(t, resp.body, `<form`)
	assert.Contains(t, resp.body, `name="password"`)
	assert.Contains(t, resp.body, `name="redirect" value="/docs/"`)
	assert.NotContains(t, resp.body, "Create", "registration is off by default")

	resp = b.get(c.url("/logout"))
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "logout accepts only POST")
	resp = b.get(c.url("/api/auth/login"))
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "login accepts only POST")
}

func TestLoginWithJSONThenMeThenLogout(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)

	resp := b.postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": "correct horse battery"})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Equal(t, string(alice.ID), resp.json(t)["id"])
	assert.Equal(t, "alice", resp.json(t)["username"])
	setCookie := resp.Header.Get("Set-Cookie")
	for _, attr := range []string{"session=", "Path=/", "HttpOnly", "SameSite=Lax"} {
		assert.Contains(t, setCookie, attr)
	}
	assert.NotContains(t, setCookie, "Max-Age", "without remember me the cookie ends with the browser session")
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.sessions
		WHERE expires_at BETWEEN now() + interval '7 days' - interval '1 minute' AND now() + interval '7 days'`),
		"the session lasts the 7-day lifetime")
	assert.NotContains(t, setCookie, "Secure", "plain HTTP gets no Secure cookie")

	resp = b.get(c.url("/api/auth/me"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "alice", resp.json(t)["username"])

	resp = b.getPage(c.url("/private"))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hello alice", resp.body)

	token := b.cookie(c)
	resp = b.postJSON(c.url("/api/auth/logout"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, b.cookie(c), "logout clears the cookie")
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.sessions`), "logout deletes the session row")

	// The old cookie, copied before logout, no longer works.
	b.setCookie(c, token)
	resp = b.get(c.url("/api/auth/me"))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.JSONEq(t, `{"error":"Session expired"}`, resp.body)
}

func TestLoginWithTheFormRedirectsBack(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)

	resp := b.postForm(c.url("/login"), url.Values{"username": {"alice"}, "password": {"wrong password"}, "redirect": {"/docs/"}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.body, "Invalid username or password", "a failed login re-shows the form with a message")
	assert.Contains(t, resp.body, `value="alice"`, "the name is kept")
	assert.Contains(t, resp.body, `name="redirect" value="/docs/"`, "the destination is kept")
	assert.Empty(t, b.cookie(c))

	resp = b.postForm(c.url("/login"), url.Values{"username": {"alice"}, "password": {"correct horse battery"}, "redirect": {"/docs/?page=2"}})
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/docs/?page=2", resp.Header.Get("Location"))
	assert.NotEmpty(t, b.cookie(c))

	resp = b.getPage(c.url("/docs/?page=2"))
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	resp = b.getPage(c.url("/login?redirect=/docs/"))
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "a logged-in visitor skips the login page")
	assert.Equal(t, "/docs/", resp.Header.Get("Location"))

	resp = b.postForm(c.url("/logout"), nil)
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/login?done=signed-out", resp.Header.Get("Location"))
	assert.Empty(t, b.cookie(c))
	resp = b.getPage(c.url("/docs/"))
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
}

func TestWrongPasswordAndUnknownUserLookTheSame(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)

	wrong := b.postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": "wrong password"})
	unknown := b.postJSON(c.url("/api/auth/login"), map[string]string{"username": "mallory", "password": "wrong password"})
	assert.Equal(t, http.StatusUnauthorized, wrong.StatusCode)
	assert.Equal(t, http.StatusUnauthorized, unknown.StatusCode)
	assert.JSONEq(t, `{"error":"Invalid username or password"}`, wrong.body)
	assert.Equal(t, wrong.body, unknown.body)
}

func TestEveryLoginGetsANewSessionID(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)

	b.login(c, "alice", "correct horse battery")
	first := b.cookie(c)
	b.login(c, "alice", "correct horse battery")
	second := b.cookie(c)
	assert.NotEqual(t, first, second)
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.sessions`), "the session the browser carried is ended at login")

	// A token planted in a victim's browser before login is never made a logged-in one.
	victim := newBrowser(t)
	victim.setCookie(c, first)
	victim.login(c, "alice", "correct horse battery")
	assert.NotEqual(t, first, victim.cookie(c))
}

func TestOpenRedirectsLandOnTheSite(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})

	for _, target := range []string{
		"//evil.example", "https://evil.example", `/\evil.example`, "/\t/evil.example",
		"javascript:alert(1)", "evil.example", "///evil.example", `\\evil.example`, "",
	} {
		t.Run(target, func(t *testing.T) {
			b := newBrowser(t)
			resp := b.postForm(c.url("/login"), url.Values{"username": {"alice"}, "password": {"correct horse battery"}, "redirect": {target}})
			require.Equal(t, http.StatusSeeOther, resp.StatusCode)
			assert.Equal(t, "/", resp.Header.Get("Location"))
		})
	}
}

func TestRegistration(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	off := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)
	resp := b.postJSON(off.url("/api/auth/register"), map[string]string{"username": "bob", "password": "long enough password"})
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "registration is off by default")

	on := startSite(t, siteOptions{db: db.url, handler: "registration on"})
	resp = b.postJSON(on.url("/api/auth/register"), map[string]string{"username": "bob", "password": "long enough password"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	assert.Equal(t, "bob", resp.json(t)["username"])
	assert.NotEmpty(t, b.cookie(on))
	assert.Equal(t, http.StatusOK, b.get(on.url("/api/auth/me")).StatusCode)

	resp = newBrowser(t).postJSON(on.url("/api/auth/register"), map[string]string{"username": "BOB", "password": "long enough password"})
	assert.Equal(t, http.StatusConflict, resp.StatusCode)
	resp = newBrowser(t).postJSON(on.url("/api/auth/register"), map[string]string{"username": "carol", "password": "short"})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, resp.body, "shorter than")

	page := newBrowser(t).getPage(on.url("/login"))
	assert.Contains(t, page.body, "/api/auth/register", "the login page offers sign-up when registration is on")
}

func TestBadRequestBodies(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)
	post := func(contentType, body string) reply {
		req, err := http.NewRequest(http.MethodPost, c.url("/api/auth/login"), strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", contentType)
		return b.do(req)
	}
	assert.Equal(t, http.StatusBadRequest, post("application/json", "{").StatusCode)
	assert.Equal(t, http.StatusBadRequest, post("application/json", `{"username":1}`).StatusCode)
	assert.Equal(t, http.StatusBadRequest, post("application/json", `{} {}`).StatusCode)
	assert.Equal(t, http.StatusRequestEntityTooLarge, post("application/json", `{"username":"`+strings.Repeat("a", 100<<10)+`"}`).StatusCode)
	assert.Equal(t, http.StatusUnauthorized, post("application/json", `{"username":"","password":""}`).StatusCode)
}

func TestIdentityHeadersReachTheUpstreamAndCannotBeForged(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "id=%q name=%q remote=%q", r.Header.Get("X-Auth-User-Id"), r.Header.Get("X-Auth-Username"), r.Header.Get("X-Remote-User"))
	})
	c := startSite(t, siteOptions{db: db.url, handler: "public /public/*",
		next: up.proxy("X-Remote-User", "{http.auth.user.username}")})

	b := newBrowser(t)
	resp := b.get(c.url("/public/x"), "X-Auth-Username", "admin", "X-Auth-User-Id", "forged")
	assert.Equal(t, `id="" name="" remote=""`, resp.body, "a client-sent identity header never reaches the upstream")

	b.login(c, "alice", "correct horse battery")
	resp = b.get(c.url("/app"), "X-Auth-Username", "admin", "X-Auth-User-Id", "forged")
	assert.Equal(t, fmt.Sprintf("id=%q name=%q remote=%q", alice.ID, "alice", "alice"), resp.body)
}

func TestServerSentEventsStreamThroughTheGate(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		fmt.Fprint(w, "data: second\n\n")
	})
	t.Cleanup(func() { close(release) })
	c := startSite(t, siteOptions{db: db.url, next: up.proxy()})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")

	req, err := http.NewRequest(http.MethodGet, c.url("/api/events"), nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := b.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// The first event arrives while the upstream still holds the response open: nothing is buffered.
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := resp.Body.Read(buf)
		got <- string(buf[:n])
	}()
	select {
	case first := <-got:
		assert.Equal(t, "data: first\n\n", first)
	case <-time.After(10 * time.Second):
		t.Fatal("the first event did not arrive while the stream was open")
	}
}
