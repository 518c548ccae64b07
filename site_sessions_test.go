package pgsession

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Sessions expire the way a security team would configure them, and users
// and admins can see and end them.

// A session in use outlives its idle timeout, and left alone it ends long
// before its lifetime. Time moves in the database rather than on the clock:
// there the session is made older than its idle timeout, used, then left
// alone.
func TestIdleSessionExpires(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: "idle_timeout 30m"})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")

	// Used regularly, the session lives past its idle timeout: logged in an
	// hour ago and last used 20 minutes ago, it is used again...
	db.exec(t, `UPDATE pgsession.sessions SET created_at = now() - interval '1 hour',
		last_seen_at = now() - interval '20 minutes', idle_expires_at = now() + interval '10 minutes'`)
	require.Equal(t, http.StatusOK, b.get(c.url("/api/auth/me")).StatusCode, "a session in use stays alive")
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.sessions
		WHERE last_seen_at > now() - interval '1 minute' AND idle_expires_at > now() + interval '29 minutes'`),
		"the use moved its idle end 30 minutes on")

	// ...and left alone, it ends although its 7-day lifetime has hardly begun.
	db.exec(t, `UPDATE pgsession.sessions SET last_seen_at = now() - interval '31 minutes',
		idle_expires_at = now() - interval '1 minute'`)
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.sessions WHERE expires_at > now() + interval '6 days'`))
	resp := b.get(c.url("/api/auth/me"))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.JSONEq(t, `{"error":"Session expired"}`, resp.body)
}

func TestIdleTimeoutSetInTheDatabase(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: "idle_timeout 30m"})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	assert.Equal(t, http.StatusOK, b.get(c.url("/api/auth/me")).StatusCode)

	db.exec(t, `UPDATE pgsession.sessions SET last_seen_at = now() - interval '31 minutes',
		idle_expires_at = now() - interval '1 minute'`)
	resp := b.get(c.url("/api/auth/me"))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.JSONEq(t, `{"error":"Session expired"}`, resp.body)
}

func TestRenewalWritesAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: "idle_timeout 1h\n\t\trenewal_interval 1m"})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	// The session was last written a while ago, so the next request renews it.
	db.exec(t, `UPDATE pgsession.sessions SET last_seen_at = now() - interval '5 minutes'`)

	// A row-level trigger counts every UPDATE of a session row.
	db.exec(t, `CREATE TABLE public.session_updates (id text NOT NULL)`)
	db.exec(t, `CREATE FUNCTION public.count_session_update() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN INSERT INTO public.session_updates VALUES (NEW.id); RETURN NULL; END $$`)
	db.exec(t, `CREATE TRIGGER count_session_update AFTER UPDATE ON pgsession.sessions
		FOR EACH ROW EXECUTE FUNCTION public.count_session_update()`)

	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 25 {
				if b.get(c.url("/page")).StatusCode != http.StatusOK {
					t.Error("a request with a live session was refused")
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM public.session_updates`),
		"a hundred requests within one renewal interval write the row once")
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.sessions
		WHERE last_seen_at > now() - interval '1 minute' AND idle_expires_at > now() + interval '59 minutes'`),
		"the write moved the last use and the idle expiry")
}

func TestRememberMe(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})

	resp := newBrowser(t).postJSON(c.url("/api/auth/login"), map[string]any{"username": "alice", "password": "correct horse battery"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, resp.Header.Get("Set-Cookie"), "Max-Age", "without remember me the cookie ends with the browser session")
	assert.NotContains(t, resp.Header.Get("Set-Cookie"), "Expires")

	resp = newBrowser(t).postJSON(c.url("/api/auth/login"), map[string]any{"username": "alice", "password": "correct horse battery", "remember": true})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Set-Cookie"), "Max-Age=2592000", "remember me keeps the cookie for 30 days")

	resp = newBrowser(t).postForm(c.url("/login"), url.Values{"username": {"alice"}, "password": {"correct horse battery"}, "remember": {"on"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Set-Cookie"), "Max-Age=2592000", "the form's checkbox does the same")

	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.sessions WHERE expires_at < now() + interval '8 days'`))
	assert.Equal(t, 2, db.count(t, `SELECT count(*) FROM pgsession.sessions WHERE expires_at > now() + interval '29 days'`))
	assert.Contains(t, newBrowser(t).getPage(c.url("/login")).body, `name="remember"`, "the login page offers it")

	off := startSite(t, siteOptions{db: db.url, handler: "remember_lifetime 0"})
	resp = newBrowser(t).postJSON(off.url("/api/auth/login"), map[string]any{"username": "alice", "password": "correct horse battery", "remember": true})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, resp.Header.Get("Set-Cookie"), "Max-Age", "remember_lifetime 0 turns remember me off")
	assert.NotContains(t, newBrowser(t).getPage(off.url("/login")).body, `name="remember"`)
}

func TestMaxSessionsPerUserEndsTheLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, handler: "max_sessions_per_user 2"})
	phone, laptop, tablet := newBrowser(t), newBrowser(t), newBrowser(t)
	phone.login(c, "alice", "correct horse battery")
	laptop.login(c, "alice", "correct horse battery")
	// The phone was used more recently than the laptop.
	db.exec(t, `UPDATE pgsession.sessions SET last_seen_at = now() - interval '1 hour' WHERE id = encode(sha256(convert_to($1, 'UTF8')), 'hex')`, laptop.cookie(c))
	tablet.login(c, "alice", "correct horse battery")

	assert.Equal(t, http.StatusOK, phone.get(c.url("/api/auth/me")).StatusCode)
	assert.Equal(t, http.StatusUnauthorized, laptop.get(c.url("/api/auth/me")).StatusCode, "the least recently used session ended")
	assert.Equal(t, http.StatusOK, tablet.get(c.url("/api/auth/me")).StatusCode)
}

func TestUserListsAndEndsTheirSessions(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	one := startSite(t, siteOptions{db: db.url})
	two := startSite(t, siteOptions{db: db.url})
	laptop, phone := newBrowser(t), newBrowser(t)
	laptop.login(one, "alice", "correct horse battery")
	req, _ := http.NewRequest(http.MethodPost, one.url("/api/auth/login"), strings.NewReader(`{"username":"alice","password":"correct horse battery"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1")
	require.Equal(t, http.StatusOK, phone.do(req).StatusCode)

	resp := laptop.get(one.url("/api/auth/sessions"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sessions := resp.list(t)
	require.Len(t, sessions, 2)
	var phoneID string
	for _, s := range sessions {
		for _, k := range []string{"id", "user_agent", "ip", "created_at", "last_seen_at", "expires_at", "current"} {
			assert.Contains(t, s, k)
		}
		assert.Equal(t, "127.0.0.1", s["ip"])
		assert.NotEqual(t, laptop.cookie(one), s["id"])
		if s["current"] == false {
			phoneID = s["id"].(string)
			assert.Contains(t, s["user_agent"], "iPhone")
		}
	}
	require.NotEmpty(t, phoneID)
	assert.NotContains(t, resp.body, phone.cookie(one), "no token in the list")

	// Ended from the laptop on server one, the phone's cookie fails on server two.
	phone.setCookie(two, phone.cookie(one))
	require.Equal(t, http.StatusOK, phone.get(two.url("/api/auth/me")).StatusCode)
	resp = laptop.send(http.MethodDelete, one.url("/api/auth/sessions/"+phoneID), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Equal(t, http.StatusUnauthorized, phone.get(two.url("/api/auth/me")).StatusCode)
	assert.Equal(t, http.StatusNotFound, laptop.send(http.MethodDelete, one.url("/api/auth/sessions/"+phoneID), nil).StatusCode)

	// Revoke the others: the current one stays.
	other := newBrowser(t)
	other.login(one, "alice", "correct horse battery")
	resp = laptop.send(http.MethodPost, one.url("/api/auth/sessions/revoke-others"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 1, resp.json(t)["ended"])
	assert.Equal(t, http.StatusUnauthorized, other.get(one.url("/api/auth/me")).StatusCode)
	assert.Equal(t, http.StatusOK, laptop.get(one.url("/api/auth/me")).StatusCode)

	assert.Equal(t, http.StatusUnauthorized, newBrowser(t).get(one.url("/api/auth/sessions")).StatusCode)
}

func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	laptop, phone := newBrowser(t), newBrowser(t)
	laptop.login(c, "alice", "correct horse battery")
	phone.login(c, "alice", "correct horse battery")

	resp := laptop.send(http.MethodPost, c.url("/api/auth/password"), map[string]string{"current_password": "wrong", "new_password": "a new password"})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp = laptop.send(http.MethodPost, c.url("/api/auth/password"), map[string]string{"current_password": "correct horse battery", "new_password": "short"})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, http.StatusOK, phone.get(c.url("/api/auth/me")).StatusCode, "failed changes end nothing")

	resp = laptop.send(http.MethodPost, c.url("/api/auth/password"), map[string]string{"current_password": "correct horse battery", "new_password": "a new password"})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.EqualValues(t, 1, resp.json(t)["ended"])
	assert.Equal(t, http.StatusUnauthorized, phone.get(c.url("/api/auth/me")).StatusCode)
	assert.Equal(t, http.StatusOK, laptop.get(c.url("/api/auth/me")).StatusCode, "the session that changed it stays")

	resp = newBrowser(t).postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": "a new password"})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestAccountPageWorksWithoutJavaScript(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	laptop, phone := newBrowser(t), newBrowser(t)
	laptop.login(c, "alice", "correct horse battery")
	phone.login(c, "alice", "correct horse battery")

	resp := newBrowser(t).getPage(c.url("/account"))
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "the account page needs a login")

	resp = laptop.getPage(c.url("/account"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.body, "alice")
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	sessions := laptop.get(c.url("/api/auth/sessions")).list(t)
	var phoneID string
	for _, s := range sessions {
		if s["current"] == false {
			phoneID = s["id"].(string)
		}
	}
	assert.Contains(t, resp.body, phoneID, "the page names the other session for its revoke button")

	resp = laptop.postForm(c.url("/account"), url.Values{"action": {"revoke"}, "handle": {phoneID}})
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/account?done=revoked", resp.Header.Get("Location"))
	assert.Equal(t, http.StatusUnauthorized, phone.get(c.url("/api/auth/me")).StatusCode)
	assert.Contains(t, laptop.getPage(c.url("/account?done=revoked")).body, "Session signed out")

	resp = laptop.postForm(c.url("/account"), url.Values{"action": {"password"}, "current_password": {"correct horse battery"}, "new_password": {"another password"}})
	assert.Equal(t, "/account?done=password", resp.Header.Get("Location"))
	resp = laptop.postForm(c.url("/account"), url.Values{"action": {"password"}, "current_password": {"wrong"}, "new_password": {"another password"}})
	assert.Equal(t, "/account?error=wrong-password", resp.Header.Get("Location"))
}

func TestAdminRoutes(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	db.addAdmin(t, "root", "root password here")
	one := startSite(t, siteOptions{db: db.url, handler: "admin_token " + testAdminToken})
	two := startSite(t, siteOptions{db: db.url})
	api := one.url("/api/auth/admin")
	tok := []string{"X-Admin-Token", testAdminToken}

	anon := newBrowser(t)
	assert.Equal(t, http.StatusUnauthorized, anon.get(api+"/users").StatusCode)
	assert.Equal(t, http.StatusUnauthorized, anon.get(api+"/users", "X-Admin-Token", "wrong-token-wrong-token-wrong-token").StatusCode)
	assert.Equal(t, http.StatusUnauthorized, anon.get(api+"/users?admin_token="+testAdminToken).StatusCode, "the token counts only as a header")
	alice := newBrowser(t)
	alice.login(one, "alice", "correct horse battery")
	assert.Equal(t, http.StatusForbidden, alice.get(api+"/users").StatusCode, "a non-admin session gets 403")
	assert.Equal(t, http.StatusForbidden, alice.send(http.MethodDelete, api+"/users/root", nil).StatusCode)

	resp := anon.get(api+"/users", tok...)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Len(t, resp.list(t), 2)
	assert.NotContains(t, resp.body, "argon2", "no password hashes")

	resp = anon.send(http.MethodPost, api+"/users", map[string]any{"username": "carol", "password": "carol's password", "is_admin": false}, tok...)
	require.Equal(t, http.StatusCreated, resp.StatusCode, resp.body)
	assert.Equal(t, http.StatusConflict, anon.send(http.MethodPost, api+"/users", map[string]any{"username": "Carol", "password": "carol's password"}, tok...).StatusCode)
	assert.Equal(t, http.StatusOK, newBrowser(t).postJSON(one.url("/api/auth/login"), map[string]string{"username": "carol", "password": "carol's password"}).StatusCode)

	// An admin's session works as well as the token, on a server without one.
	root := newBrowser(t)
	root.login(two, "root", "root password here")
	resp = root.get(two.url("/api/auth/admin/users/alice/sessions"))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	sessions := resp.list(t)
	require.Len(t, sessions, 1)

	// Ending alice's session on server two ends it on server one.
	resp = root.send(http.MethodDelete, two.url("/api/auth/admin/sessions/"+sessions[0]["id"].(string)), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, http.StatusUnauthorized, alice.get(one.url("/api/auth/me")).StatusCode)

	alice.login(one, "alice", "correct horse battery")
	resp = anon.send(http.MethodDelete, api+"/users/alice/sessions", nil, tok...)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.EqualValues(t, 1, resp.json(t)["ended"])
	assert.Equal(t, http.StatusUnauthorized, alice.get(one.url("/api/auth/me")).StatusCode)

	assert.Equal(t, http.StatusOK, anon.send(http.MethodDelete, api+"/users/carol", nil, tok...).StatusCode)
	assert.Equal(t, http.StatusNotFound, anon.send(http.MethodDelete, api+"/users/carol", nil, tok...).StatusCode)
	assert.Equal(t, http.StatusNotFound, anon.get(api+"/users/nobody/sessions", tok...).StatusCode)
}
