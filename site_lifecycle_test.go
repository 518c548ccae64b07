package pgsession

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// Sessions live in PostgreSQL, so they outlast a database outage and are
// shared by every server on the database.

func TestExpiredSessionIsRefused(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	token := b.cookie(c)

	db.exec(t, `UPDATE pgsession.sessions SET expires_at = now() - interval '1 minute'`)
	resp := b.get(c.url("/api/data"))
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.JSONEq(t, `{"error":"Session expired"}`, resp.body)
	assert.Empty(t, b.cookie(c), "the stale cookie is cleared")

	b.setCookie(c, token)
	resp = b.get(c.url("/api/auth/me"))
	assert.JSONEq(t, `{"error":"Session expired"}`, resp.body)
	resp = b.getPage(c.url("/page"))
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "a browser is sent to log in again")
}

func TestTwoServersShareSessions(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	one := startSite(t, siteOptions{db: db.url})
	two := startSite(t, siteOptions{db: db.url})

	// Logged in on one, the same cookie works on two; logging out on two ends it on one.
	b := newBrowser(t)
	b.login(one, "alice", "correct horse battery")
	token := b.cookie(one)
	b.setCookie(two, token)
	assert.Equal(t, http.StatusOK, b.get(two.url("/api/auth/me")).StatusCode)

	resp := b.postJSON(two.url("/api/auth/logout"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b.setCookie(one, token)
	assert.Equal(t, http.StatusUnauthorized, b.get(one.url("/api/auth/me")).StatusCode)

	// And the other way round.
	b2 := newBrowser(t)
	b2.login(two, "alice", "correct horse battery")
	token = b2.cookie(two)
	b2.setCookie(one, token)
	assert.Equal(t, http.StatusOK, b2.get(one.url("/api/auth/me")).StatusCode)
	require.Equal(t, http.StatusOK, b2.postJSON(one.url("/api/auth/logout"), nil).StatusCode)
	b2.setCookie(two, token)
	assert.Equal(t, http.StatusUnauthorized, b2.get(two.url("/api/auth/me")).StatusCode)
}

func TestDatabaseOutageAnswers503AndKeepsTheCookie(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	db := testDBAt(t, srv.NewDatabase(t))
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	token := b.cookie(c)

	srv.Stop(t)
	for _, path := range []string{"/docs/?page=2", "/api/auth/me"} {
		// A script gets JSON, exactly as before.
		resp := b.get(c.url(path))
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, path)
		assert.Equal(t, "5", resp.Header.Get("Retry-After"), path)
		assert.JSONEq(t, `{"error":"Session store unavailable, try again shortly"}`, resp.body, path)
		assert.Empty(t, resp.Header.Values("Set-Cookie"), "the cookie is kept while the database is down")

		// A browser gets a page saying so, with a way to try again.
		resp = b.getPage(c.url(path))
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, path)
		assert.Equal(t, "5", resp.Header.Get("Retry-After"), path)
		assertPage(t, resp, "Temporarily unavailable")
		assert.Contains(t, markup(resp.body), "Try again in 5 seconds.")
		assert.Contains(t, markup(resp.body), `<a href="`+html.EscapeString(path)+`" class="button">Try again</a>`, "the same address")
		assert.Empty(t, resp.Header.Values("Set-Cookie"), "the cookie is kept while the database is down")
	}
	resp := b.postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": "correct horse battery"})
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "a login during the outage is not a wrong password")
	assert.Equal(t, token, b.cookie(c))

	// The login form's 503 is a page too; trying again goes back to the
	// page the form was on, or, when the browser does not say, to the login page.
	form := url.Values{"username": {"alice"}, "password": {"correct horse battery"}, "redirect": {"/docs/"}}.Encode()
	for referer, back := range map[string]string{c.url("/login?redirect=%2Fdocs%2F"): "/login?redirect=%2Fdocs%2F", "": "/login"} {
		resp = sendRaw(t, http.MethodPost, c.url("/login"), form, "Content-Type", "application/x-www-form-urlencoded",
			"Accept", browserAccept, "Referer", referer)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		assert.NotEmpty(t, resp.Header.Get("Retry-After"))
		assertPage(t, resp, "Temporarily unavailable")
		assert.Contains(t, markup(resp.body), `<a href="`+html.EscapeString(back)+`" class="button">Try again</a>`, "Referer %q", referer)
	}

	srv.Start(t)
	require.Eventually(t, func() bool {
		return b.getPage(c.url("/")).StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "with the database back, the same cookie works")
	assert.Equal(t, token, b.cookie(c))
}

func TestCleanupJobDeletesExpiredSessionsAndLogsIt(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	for range 3 {
		_, _, err := db.store.CreateSession(context.Background(), store.SessionParams{User: *alice, Lifetime: time.Hour})
		require.NoError(t, err)
	}
	db.exec(t, `UPDATE pgsession.sessions SET expires_at = now() - interval '1 hour'`)
	live, _, err := db.store.CreateSession(context.Background(), store.SessionParams{User: *alice, Lifetime: time.Hour})
	require.NoError(t, err)

	c := startSite(t, siteOptions{db: db.url, app: "cleanup_interval 1s"})
	require.Eventually(t, func() bool {
		return db.count(t, `SELECT count(*) FROM pgsession.sessions`) == 1
	}, 30*time.Second, 100*time.Millisecond, "the cleanup job removes expired sessions")
	got, err := db.store.GetSession(context.Background(), live)
	require.NoError(t, err)
	assert.NotNil(t, got, "and leaves live ones")
	require.Eventually(t, func() bool {
		for _, e := range c.logEntries(t) {
			if e["msg"] == "deleted expired sessions" && e["deleted"] == 3.0 {
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "the cleanup logs its count:\n%s", c.logs())
}

func TestRequestsWithAValidSessionWriteNothing(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	// The cleanup's first round, at start, deletes from the table too.
	require.Eventually(t, func() bool { return c.logged(t, "deleted expired sessions") },
		10*time.Second, 20*time.Millisecond, "the first cleanup round")

	// A statement-level trigger counts every write to the sessions table.
	db.exec(t, `CREATE TABLE public.session_writes (op text NOT NULL)`)
	db.exec(t, `CREATE FUNCTION public.count_session_write() RETURNS trigger LANGUAGE plpgsql AS
		$$ BEGIN INSERT INTO public.session_writes VALUES (TG_OP); RETURN NULL; END $$`)
	db.exec(t, `CREATE TRIGGER count_session_write AFTER INSERT OR UPDATE OR DELETE ON pgsession.sessions
		FOR EACH STATEMENT EXECUTE FUNCTION public.count_session_write()`)

	for range 100 {
		require.Equal(t, http.StatusOK, b.getPage(c.url("/page")).StatusCode)
	}
	assert.Zero(t, db.count(t, `SELECT count(*) FROM public.session_writes`), "the gate only reads")
}
