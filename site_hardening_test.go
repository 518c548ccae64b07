package pgsession

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What an attack on a running server found past the gate: the admin token
// under other spellings of its scheme, paths that Caddy and the upstream
// read differently, and query strings read in part.

// The auth scheme is case-insensitive and its separator a run of spaces
// (RFC 9110 section 11.1): under every spelling a client may send, the
// admin token is taken out before the upstream (public path or protected)
// sees it, and opens the admin routes; a wrong token under any spelling is
// refused there, and the app's own bearer tokens still reach the app.
func TestTheAdminTokenIsReadTheSameWayUnderEverySpelling(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := db.sessionInDB(t, alice)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	const admin = "an admin token that is long enough to pass"
	c := startSite(t, siteOptions{db: db.url, next: up.proxy(), handler: "public /public/*\nadmin_token \"" + admin + "\""})

	spellings := []string{"Bearer ", "bearer ", "BEARER ", "bEaReR ", "Bearer\t", "Bearer  ", "Bearer \t "}
	for _, scheme := range spellings {
		for _, path := range []string{"/app", "/public/x"} {
			resp := sendRaw(t, http.MethodGet, c.url(path), "", "Cookie", cookieHeader(token), "Authorization", scheme+admin)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%q on %s: %s", scheme, path, resp.body)
		}
		resp := sendRaw(t, http.MethodGet, c.url("/api/auth/admin/users"), "", "Authorization", scheme+admin)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%q opens the admin routes: %s", scheme, resp.body)
		resp = sendRaw(t, http.MethodGet, c.url("/api/auth/admin/users"), "", "Authorization", scheme+"a wrong token")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%q with a wrong token: %s", scheme, resp.body)
	}
	seen := up.requests()
	require.Len(t, seen, 2*len(spellings))
	for i, r := range seen {
		assert.Empty(t, r.Header.Values("Authorization"), "request %d (%q)", i, spellings[i/2])
		assert.NotContains(t, fmt.Sprint(r.Header), admin, "request %d", i)
	}

	// Not bearer tokens, or not the admin token: the app's business.
	for _, own := range []string{"bearer the app's own token", "Bearer" + admin, "Basic YWxpY2U6cHc="} {
		resp := sendRaw(t, http.MethodGet, c.url("/app"), "", "Cookie", cookieHeader(token), "Authorization", own)
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		seen := up.requests()
		assert.Equal(t, own, seen[len(seen)-1].Header.Get("Authorization"))
	}
}

// Caddy's path matcher cleans, decodes and lower-cases the path before it
// compares, but the upstream gets the path as sent: a Tomcat, Spring or IIS
// upstream may read each of these as /admin, or as a path other than the
// public one. None is public; each goes through the gate, so without a
// session it never reaches the upstream, and with one it does, as the user.
func TestAmbiguousSpellingsOfAPublicPathGoThroughTheGate(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := db.sessionInDB(t, alice)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Header.Get(HeaderUsername))
	})
	c := startSite(t, siteOptions{db: db.url, next: up.proxy(), handler: "public /assets/* /favicon.ico /Docs/* /kit/*"})

	ambiguous := []string{
		"/assets/..;/admin",
		"/assets/..%5cadmin",
		"/assets/..%5Cadmin",
		`/assets/..\admin`,
		"/assets/%2fadmin",
		"/assets/%2Fadmin",
		"/ASSETS/x",
		"/Assets/app.css",
		"/assets/%2e%2e/admin",
		"/assets/%2E%2E;/admin",
		"/assets/./x.css",
		"/assets/x;jsessionid=1",
		"/assets/x%3b/admin",
		"/assets/%252e%252e/admin",
		"/assets/x%00.css",
		"/FAVICON.ICO",
		"/docs/x",        // the pattern's own case is /Docs
		"/%E2%84%AAit/x", // KELVIN SIGN, which lower-cases to k
	}
	for _, path := range ambiguous {
		assert.Equal(t, http.StatusUnauthorized, rawGet(t, c, path), "%s without a session", path)
	}
	assert.Empty(t, up.requests(), "no ambiguous spelling reached the upstream without a session")
	assert.Equal(t, http.StatusSeeOther, rawGet(t, c, "/assets/..;/admin", "Accept: text/html"),
		"a browser is sent to the login page")

	for _, path := range ambiguous {
		assert.Equal(t, http.StatusOK, rawGet(t, c, path, "Cookie: "+cookieHeader(token)), "%s with a session", path)
	}
	for i, r := range up.requests() {
		assert.Equal(t, "alice", r.Header.Get(HeaderUsername), "request %d (%s) went through the gate", i, r.RequestURI)
	}

	before := len(up.requests())
	for _, path := range []string{"/assets/app.css", "/assets/js/app.js", "/assets/a%20b.css", "/favicon.ico", "/Docs/x", "/kit/x", "/assets/x?a=1;b=2"} {
		assert.Equal(t, http.StatusOK, rawGet(t, c, path), "%s is public", path)
	}
	for _, r := range up.requests()[before:] {
		assert.Empty(t, r.Header.Get(HeaderUsername), "%s was public", r.RequestURI)
	}
}

// ?limit= of the history routes is a whole number from 1 to 500, given
// once, or the answer is 400: a query Go would read in part
// ("limit=1;select" drops the pair and left the default of 50) included.
func TestHistoryLimitIsAWholeNumberOrRefused(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: "admin_token " + testAdminToken})
	b := newBrowser(t)
	for range 3 {
		b.login(c, "alice", "correct horse battery")
	}
	tok := []string{"X-Admin-Token", testAdminToken}
	own, admin := c.url("/api/auth/history"), c.url("/api/auth/admin/users/alice/history")

	for _, query := range []string{"limit=1;select", "limit=1%3Bselect", "limit=+2", "limit=2.0", "limit=", "limit=0",
		"limit=501", "limit=0x10", "limit=1&limit=2", "limit=%201", "limit=1;", "a=1;b=2&limit=2"} {
		resp := b.get(own + "?" + query)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %s", query, resp.body)
		assert.NotEmpty(t, resp.json(t)["error"], "%s", query)
		resp = sendRaw(t, http.MethodGet, admin+"?"+query, "", tok...)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "admin, %s: %s", query, resp.body)
	}
	for query, want := range map[string]int{"": 3, "limit=1": 1, "limit=2": 2, "limit=500": 3, "limit=002": 2, "limit=0000000000000000000001": 1, "other=x&limit=1": 1} {
		resp := b.get(own + "?" + query)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", query, resp.body)
		assert.Len(t, resp.list(t), want, "%s", query)
		resp = sendRaw(t, http.MethodGet, admin+"?"+query, "", tok...)
		require.Equal(t, http.StatusOK, resp.StatusCode, "admin, %s: %s", query, resp.body)
		assert.Len(t, resp.list(t), want, "admin, %s", query)
	}
}

// A name that looks like an existing account's name in another script, or
// with a character that passes for another, gets no account anywhere a
// name is created: the sign-up says only that the name is not available,
// the admin routes and the command line name the account it looks like.
// Names in other scripts that look like no account register as before,
// and the account itself keeps logging in.
func TestNamesThatLookLikeAnAccountAreRefusedEverywhere(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	c := startSite(t, siteOptions{db: db.url, handler: "registration on\nmax_registrations_per_ip 100\nmax_failed_logins_per_ip 100\nadmin_token " + testAdminToken})
	register := func(name string) reply {
		return sendRaw(t, http.MethodPost, c.url("/api/auth/register"),
			jsonText(t, map[string]string{"username": name, "password": "a fine long password"}), "Content-Type", "application/json")
	}
	require.Equal(t, http.StatusCreated, register("alice").StatusCode)

	for _, name := range []string{"\u0430lice", "al\u0131ce", "aIice", "\u0410LICE", "a1ice"} {
		resp := register(name)
		assert.Equal(t, http.StatusConflict, resp.StatusCode, "%q: %s", name, resp.body)
		assert.Equal(t, "That username is not available", resp.json(t)["error"], "%q tells a stranger no more", name)
	}
	resp := sendRaw(t, http.MethodPost, c.url("/api/auth/admin/users"),
		jsonText(t, map[string]any{"username": "\u0430lice", "password": "a fine long password"}),
		"Content-Type", "application/json", "X-Admin-Token", testAdminToken)
	assert.Equal(t, http.StatusConflict, resp.StatusCode, "the admin routes: %s", resp.body)
	assert.Equal(t, `That name looks like the name of the existing user "alice"`, resp.json(t)["error"])

	cli := cliDB(t, db.url, "a fine long password\n", "user", "add", "al\u0131ce", "--password-stdin")
	assert.Error(t, cli.err, "the command line")
	assert.Contains(t, cli.all(), `looks like the name of the existing user "alice"`)

	for _, name := range []string{"Ольга", "李小龙", "alicia"} {
		assert.Equal(t, http.StatusCreated, register(name).StatusCode, "%q", name)
	}
	newBrowser(t).login(c, "alice", "a fine long password")

	// Look-alikes signing up at the same moment: one account each round.
	for round := range 5 {
		n := fmt.Sprint(round)
		names := []string{"mallory" + n, "m\u0430llory" + n, "maIlory" + n, "mall\u043ery" + n,
			"MALLORY" + n, "ma1lory" + n, "Mallory" + n, "m\u0430ll\u043ery" + n}
		statuses := make([]int, len(names))
		var wg sync.WaitGroup
		for i, name := range names {
			wg.Go(func() { statuses[i] = register(name).StatusCode })
		}
		wg.Wait()
		created := 0
		for i, status := range statuses {
			if status == http.StatusCreated {
				created++
			} else {
				assert.Equal(t, http.StatusConflict, status, "round %d, %q", round, names[i])
			}
		}
		assert.Equal(t, 1, created, "round %d: %v", round, statuses)
	}
	assert.Equal(t, 4+5, db.count(t, `SELECT count(*) FROM pgsession.users`))
}
