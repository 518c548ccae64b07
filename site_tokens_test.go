package pgsession

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/chromium"
	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// A user's API tokens, made, listed and revoked by the JSON routes and on
// the account page: each token is shown once, in the answer that made it,
// and never again, nor in the log.

// tokenFields are the fields of a token in the list and in the answer that
// creates it.
var tokenFields = []string{"id", "name", "created_at", "expires_at", "last_used_at", "last_used_from", "paths", "admin"}

// tokenStored reports whether the database holds the token, by its hash.
func tokenStored(t *testing.T, db *testDB, token string) bool {
	t.Helper()
	return db.count(t, `SELECT count(*) FROM pgsession.api_tokens WHERE id = encode(sha256(convert_to($1, 'UTF8')), 'hex')`, token) == 1
}

// assertNeverLogged fails when the site's log holds any of the tokens.
func assertNeverLogged(t *testing.T, c *testSite, tokens ...string) {
	t.Helper()
	log := c.logs()
	require.NotEmpty(t, log)
	for _, token := range tokens {
		assert.NotContains(t, log, token, "a token in the log")
		assert.NotContains(t, log, strings.TrimPrefix(token, "pgs_"), "a token's secret part in the log")
	}
}

func TestAPITokensByJSON(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	db.addUser(t, "bob", "another fine password")
	c := startSite(t, siteOptions{db: db.url})
	alice, bob := newBrowser(t), newBrowser(t)
	alice.login(c, "alice", "correct horse battery")
	bob.login(c, "bob", "another fine password")
	create := func(b *browser, body map[string]any) reply {
		t.Helper()
		return b.postJSON(c.url("/api/auth/tokens"), body)
	}

	resp := create(alice, map[string]any{"name": "deploy", "expires_in": "30d", "paths": []string{"/api/*", "*.json"}})
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"), "the answer holding the token is never cached")
	made := resp.json(t)
	token, _ := made["token"].(string)
	require.Regexp(t, `^pgs_[A-Za-z0-9_-]{43}$`, token)
	assert.True(t, tokenStored(t, db, token), "the database holds the token's hash")
	for _, k := range tokenFields {
		assert.Contains(t, made, k)
	}
	assert.Equal(t, "deploy", made["name"])
	assert.Equal(t, []any{"/api/*", "*.json"}, made["paths"])
	assert.Equal(t, false, made["admin"])
	assert.Nil(t, made["last_used_at"], "never used yet")
	expires, err := time.Parse(time.RFC3339Nano, made["expires_at"].(string))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(30*24*time.Hour), expires, time.Minute)

	resp = create(alice, map[string]any{"name": "backup"})
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	forever := resp.json(t)
	assert.Nil(t, forever["expires_at"], "without expires_in a token never expires")
	assert.Equal(t, []any{}, forever["paths"], "without paths a token is not limited")

	// Listed without the token, newest first.
	resp = alice.get(c.url("/api/auth/tokens"))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	list := resp.list(t)
	require.Len(t, list, 2)
	assert.Equal(t, []any{"backup", "deploy"}, []any{list[0]["name"], list[1]["name"]})
	for _, item := range list {
		assert.ElementsMatch(t, tokenFields, keys(item), "the fields of a listed token, and no other")
	}
	assert.NotContains(t, resp.body, "pgs_", "no token in the list")
	assert.NotContains(t, resp.body, db.queryText(t, `SELECT id FROM pgsession.api_tokens WHERE name = 'deploy'`), "no hash in the list")
	assert.Equal(t, "[]", strings.TrimSpace(bob.get(c.url("/api/auth/tokens")).body), "bob sees none of alice's")

	// What the person got wrong, in words they can act on.
	for _, tc := range []struct {
		body   map[string]any
		status int
		error  string
	}{
		{map[string]any{"name": ""}, http.StatusBadRequest, "A token's name is empty"},
		{map[string]any{"name": " padded"}, http.StatusBadRequest, "A token's name must not start or end with a space"},
		{map[string]any{"name": "x", "paths": []string{"api/*"}}, http.StatusBadRequest, "A token's path must start with / or *"},
		{map[string]any{"name": "x", "expires_in": "soon"}, http.StatusBadRequest, "A token's lifetime must be a positive duration such as 30d, 12h or 90m"},
		{map[string]any{"name": "x", "expires": "30d"}, http.StatusBadRequest, `Unknown field "expires"`},
		{map[string]any{"name": "deploy"}, http.StatusConflict, "You already have an API token of that name"},
		{map[string]any{"name": "x", "admin": true}, http.StatusForbidden, "Only an admin can create a token with admin rights"},
	} {
		resp := create(alice, tc.body)
		assert.Equal(t, tc.status, resp.StatusCode, "%v: %s", tc.body, resp.body)
		assert.Equal(t, tc.error, resp.json(t)["error"], "%v", tc.body)
	}
	assert.Len(t, alice.get(c.url("/api/auth/tokens")).list(t), 2, "no refused token was made")
	resp = create(bob, map[string]any{"name": "deploy"})
	assert.Equal(t, http.StatusCreated, resp.StatusCode, "names are unique per user: %s", resp.body)
	bobsToken := resp.json(t)["token"].(string)

	// Revoked by its owner only.
	id := made["id"].(string)
	resp = bob.send(http.MethodDelete, c.url("/api/auth/tokens/"+id), nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode, "another user's token: %s", resp.body)
	assert.Equal(t, "No such API token", resp.json(t)["error"])
	assert.True(t, tokenStored(t, db, token), "bob could not revoke alice's token")
	resp = alice.send(http.MethodDelete, c.url("/api/auth/tokens/"+strings.ToUpper(id)), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "a handle in any case: %s", resp.body)
	assert.Equal(t, true, resp.json(t)["ok"])
	assert.False(t, tokenStored(t, db, token))
	assert.Equal(t, http.StatusNotFound, alice.send(http.MethodDelete, c.url("/api/auth/tokens/"+id), nil).StatusCode, "revoked already")
	assert.Equal(t, http.StatusNotFound, alice.send(http.MethodDelete, c.url("/api/auth/tokens/not-a-handle"), nil).StatusCode)
	assert.Len(t, alice.get(c.url("/api/auth/tokens")).list(t), 1)

	// Without a session, nothing.
	assert.Equal(t, http.StatusUnauthorized, newBrowser(t).get(c.url("/api/auth/tokens")).StatusCode)
	assert.Equal(t, http.StatusUnauthorized, newBrowser(t).postJSON(c.url("/api/auth/tokens"), map[string]any{"name": "x"}).StatusCode)

	// The log names the user and the token, never the token itself.
	assert.True(t, c.logged(t, "API token created"))
	assert.True(t, c.logged(t, "API token revoked"))
	var revoked map[string]any
	for _, e := range c.logEntries(t) {
		if e["msg"] == "API token revoked" {
			revoked = e
		}
	}
	assert.Equal(t, "alice", revoked["username"])
	assert.Equal(t, "deploy", revoked["token_name"])
	assertNeverLogged(t, c, token, forever["token"].(string), bobsToken)
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Only an admin's token can have admin rights.
func TestAPITokenWithAdminRightsNeedsAnAdmin(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addAdmin(t, "root", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	root := newBrowser(t)
	root.login(c, "root", "correct horse battery")
	resp := root.postJSON(c.url("/api/auth/tokens"), map[string]any{"name": "ops", "admin": true})
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	assert.Equal(t, true, resp.json(t)["admin"])
	assert.Equal(t, true, root.get(c.url("/api/auth/tokens")).list(t)[0]["admin"])

	// The page offers the choice to an admin, and the form makes one.
	page := section(t, root.getPage(c.url("/account")).body, "tokens-title")
	assert.Contains(t, page, `<input type="checkbox" name="token_admin" value="on" id="token-admin">`)
	resp = root.submit(c, "/account", url.Values{"action": {"token-create"}, "token_name": {"ops2"}, "token_admin": {"on"}}, "/account")
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Contains(t, section(t, resp.body, "tokens-title"), `<span id="token-0-name">ops2</span> <span class="badge">admin</span>`)
}

func TestAPITokensOnTheAccountPage(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	tokens := func(page reply) string { t.Helper(); return section(t, page.body, "tokens-title") }

	before := tokens(b.getPage(c.url("/account")))
	assert.Contains(t, before, `<h2 id="tokens-title">API tokens</h2>`)
	assert.Contains(t, before, "No API tokens yet.")
	assert.NotContains(t, before, "token_admin", "no admin rights to offer alice")
	for _, id := range []string{"token-name", "token-expires", "token-paths"} {
		assert.Contains(t, before, `<label for="`+id+`">`)
		assert.Contains(t, tag(t, before, id), `id="`+id+`"`)
	}

	// Made with the form, the token is on the page that answers, once.
	resp := b.submit(c, "/account", url.Values{"action": {"token-create"}, "token_name": {"backup script"},
		"token_expires": {"90d"}, "token_paths": {"/api/*\r\n/hooks/* "}}, "/account")
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assertPage(t, resp, "alice")
	made := tokens(resp)
	m := regexp.MustCompile(`<pre><code id="new-token">(pgs_[A-Za-z0-9_-]{43})</code></pre>`).FindStringSubmatch(made)
	require.NotNil(t, m, "no new token on the page:\n%s", made)
	token := m[1]
	assert.True(t, tokenStored(t, db, token))
	assert.Contains(t, made, "Copy it now: it will not be shown again.")
	assert.Contains(t, made, `<pre><code>curl -H "Authorization: Bearer `+token+`" `+c.url("/")+`</code></pre>`)
	assert.Contains(t, made, `<span id="token-0-name">backup script</span>`)
	assert.Contains(t, made, `<dd><code>/api/*</code> <code>/hooks/*</code></dd>`)
	assert.Contains(t, made, `<dt>Last used</dt> <dd>never</dd>`)
	assert.Regexp(t, `<dt>Expires</dt> <dd><time datetime="`+time.Now().UTC().Add(90*24*time.Hour).Format("2006-01-02")+`T`, made)

	// A reload shows the token no more, only its name.
	again := b.getPage(c.url("/account"))
	assert.NotContains(t, again.body, token)
	assert.NotContains(t, again.body, "pgs_")
	assert.Contains(t, tokens(again), `<span id="token-0-name">backup script</span>`)
	list := b.get(c.url("/api/auth/tokens")).list(t)
	require.Len(t, list, 1)
	assert.Equal(t, []any{"/api/*", "/hooks/*"}, list[0]["paths"])

	// Mistakes go back to the page, shown by the form, the field marked.
	for _, tc := range []struct {
		form     url.Values
		location string
		message  string
		field    string
	}{
		{url.Values{"token_name": {"backup script"}}, "/account?error=token-name-taken", "You already have an API token of that name", "token-name"},
		{url.Values{"token_name": {""}}, "/account?error=token-name", "A token&#39;s name must be 1 to 64 printable characters, without spaces at either end", "token-name"},
		{url.Values{"token_name": {"x"}, "token_paths": {"api"}}, "/account?error=token-paths", "Each path must start with / or * and be at most 256 bytes, and a token takes at most 32", "token-paths"},
		{url.Values{"token_name": {"x"}, "token_expires": {"someday"}}, "/account?error=token-expiry", "Choose when the token expires from the list", ""},
		{url.Values{"token_name": {"x"}, "token_admin": {"on"}}, "/account?error=token-admin", "Only an admin can create a token with admin rights", ""},
	} {
		tc.form.Set("action", "token-create")
		resp := b.submit(c, "/account", tc.form, "/account")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
		assert.Equal(t, tc.location, resp.Header.Get("Location"))
		page := tokens(b.getPage(c.url(tc.location)))
		assert.Contains(t, page, `<p id="tokens-error" class="alert" role="alert">`+tc.message+`</p>`)
		if tc.field != "" {
			assert.Contains(t, tag(t, page, tc.field), `aria-invalid="true"`, tc.location)
		} else {
			assert.NotContains(t, page, "aria-invalid", tc.location)
		}
	}
	assert.Len(t, b.get(c.url("/api/auth/tokens")).list(t), 1, "no refused token was made")

	// A form from another site makes no token (the router's cross-origin check).
	resp = b.do(webtest.Request(t, http.MethodPost, c.url("/account"),
		strings.NewReader(url.Values{"action": {"token-create"}, "token_name": {"planted"}}.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.body)
	assert.Len(t, b.get(c.url("/api/auth/tokens")).list(t), 1, "a cross-site form made no token")

	// Revoked with its button.
	handle := list[0]["id"].(string)
	assert.Contains(t, tokens(again), `<input type="hidden" name="token" value="`+handle+`">`)
	revoke := url.Values{"action": {"token-revoke"}, "token": {handle}}
	resp = b.submit(c, "/account", revoke, "/account")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, "/account?done=token-revoked", resp.Header.Get("Location"))
	after := b.getPage(c.url("/account?done=token-revoked"))
	assert.Contains(t, after.body, `<p class="notice" role="status">API token revoked</p>`)
	assert.Contains(t, tokens(after), "No API tokens yet.")
	assert.False(t, tokenStored(t, db, token))
	resp = b.submit(c, "/account", revoke, "/account")
	assert.Equal(t, "/account?error=no-token", resp.Header.Get("Location"), "revoked already")
	assert.Contains(t, tokens(b.getPage(c.url("/account?error=no-token"))), "That API token had already been revoked")

	assertNeverLogged(t, c, token)
}

// In a real browser, under the page's CSP: a token made with the form is
// shown once, and its Revoke button ends it (TestBrowser runs this).
func browserAPITokenOnTheAccountPage(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	tab := browser.NewTab(t)
	signInAsAlice(tab, site)
	tab.Do("create a token on the account page",
		chromedp.Navigate(site.url("/account")),
		chromedp.SendKeys(chromedp.CSS(`input[name="token_name"]`), "backup script"),
		chromedp.SetValue(chromedp.CSS(`select[name="token_expires"]`), "30d"),
		chromedp.SendKeys(chromedp.CSS(`textarea[name="token_paths"]`), "/api/*\n/hooks/*"),
		chromedp.Click(chromedp.CSS(`form:has(input[name="action"][value="token-create"]) button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#new-token`)),
	)
	assert.Regexp(t, `^pgs_[A-Za-z0-9_-]{43}$`, text(tab, `#new-token`))
	assert.Contains(t, text(tab, noticeMessage), "will not be shown again")

	revoke := `form:has(input[name="action"][value="token-revoke"]) button[type="submit"]`
	tab.Do("reload the page, then revoke the token",
		chromedp.Navigate(site.url("/account")),
		chromedp.WaitVisible(chromedp.CSS(revoke)),
	)
	assert.False(t, present(tab, `#new-token`), "the token is shown no more")
	tab.Do("revoke it", chromedp.Click(chromedp.CSS(revoke)), chromedp.WaitVisible(chromedp.CSS(noticeMessage)))
	assert.Contains(t, text(tab, noticeMessage), "API token revoked")
	assert.False(t, present(tab, revoke), "the token is no longer listed")
}
