package pgsession

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// The gate keeps the sessions it checked in memory: a request with a known
// live session needs no query, every server hears at once when a session
// ends however it was ended, and a database blip logs nobody out.

// Once a session has been checked, its requests are answered from memory:
// they go on while the sessions table cannot be read at all. With
// cache_size 0 every request asks the database.
func TestKnownSessionsAreServedFromMemory(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := db.sessionInDB(t, alice)
	cached := startSite(t, siteOptions{db: db.url})
	off := startSite(t, siteOptions{db: db.url, app: "cache_size 0"})
	waitListening(t, cached)
	for _, c := range []*testSite{cached, off} {
		require.Equal(t, http.StatusOK, gateStatus(t, c, token))
	}
	db.exec(t, `ALTER TABLE pgsession.sessions RENAME TO sessions_away`)
	defer db.exec(t, `ALTER TABLE pgsession.sessions_away RENAME TO sessions`)
	for range 20 {
		assert.Equal(t, http.StatusOK, gateStatus(t, cached, token), "served from memory, no query")
	}
	assert.Equal(t, http.StatusServiceUnavailable, gateStatus(t, off, token), "without memory, every request asks the database")
}

// A session ended on one server, by any means, is refused by the other at
// once, although the other answered it from memory a moment before.
func TestRevocationReachesEveryServer(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	const admin = "an admin token that is long enough to pass"
	a := startSite(t, siteOptions{db: db.url, handler: `admin_token "` + admin + `"`})
	b := startSite(t, siteOptions{db: db.url})
	alice := db.addUser(t, "alice", "correct horse battery")

	for _, tc := range []struct {
		name   string
		revoke func(t *testing.T, token, handle string)
	}{
		{"logout", func(t *testing.T, token, _ string) {
			resp := sendRaw(t, http.MethodPost, a.url("/api/auth/logout"), "", "Cookie", cookieHeader(token))
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"the user's own revoke", func(t *testing.T, _, handle string) {
			other, _ := db.sessionInDB(t, alice)
			resp := sendRaw(t, http.MethodDelete, a.url("/api/auth/sessions/"+handle), "", "Cookie", cookieHeader(other))
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"an admin's revoke", func(t *testing.T, _, handle string) {
			resp := sendRaw(t, http.MethodDelete, a.url("/api/auth/admin/sessions/"+handle), "", "Authorization", "Bearer "+admin)
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"the command line", func(t *testing.T, _, handle string) {
			cliOK(t, db.url, "", "sessions", "revoke", "alice", "--id", handle)
		}},
		{"hand-written SQL", func(t *testing.T, token, _ string) {
			db.exec(t, `DELETE FROM pgsession.sessions WHERE handle = (SELECT handle FROM pgsession.sessions WHERE id = encode(sha256($1::bytea), 'hex'))`, token)
		}},
		{"expiry moved earlier in SQL", func(t *testing.T, _, handle string) {
			db.exec(t, `UPDATE pgsession.sessions SET expires_at = now() WHERE handle = $1`, handle)
		}},
		{"a new password", func(t *testing.T, _, _ string) {
			_, err := db.store.ChangePassword(t.Context(), alice.ID, "another fine password", "")
			require.NoError(t, err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, handle := db.sessionInDB(t, alice)
			require.Equal(t, http.StatusOK, gateStatus(t, b, token))
			require.Equal(t, http.StatusOK, gateStatus(t, b, token), "known to b")
			tc.revoke(t, token, handle)
			start := time.Now()
			require.Eventually(t, func() bool { return gateStatus(t, b, token) == http.StatusUnauthorized }, 5*time.Second, time.Millisecond,
				"b kept serving a revoked session")
			t.Logf("%s: b refused after %v", tc.name, time.Since(start).Round(time.Millisecond))
		})
	}

	// A user deleted, or losing admin rights, on a: b's memory of them goes.
	root := db.addAdmin(t, "root", "root's long password")
	rootToken, _ := db.sessionInDB(t, root)
	require.Equal(t, http.StatusOK, sendRaw(t, http.MethodGet, b.url("/page"), "", "Cookie", cookieHeader(rootToken)).StatusCode)
	resp := sendRaw(t, http.MethodPatch, a.url("/api/auth/admin/users/root"), jsonText(t, map[string]bool{"is_admin": false}),
		"Content-Type", "application/json", "Authorization", "Bearer "+admin)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Equal(t, false, sendRaw(t, http.MethodGet, b.url("/api/auth/me"), "", "Cookie", cookieHeader(rootToken)).json(t)["is_admin"])
	require.Equal(t, http.StatusOK, sendRaw(t, http.MethodDelete, a.url("/api/auth/admin/users/root"), "", "Authorization", "Bearer "+admin).StatusCode)
	require.Eventually(t, func() bool { return gateStatus(t, b, rootToken) == http.StatusUnauthorized }, 5*time.Second, time.Millisecond)
}

// A revocation missed while b cannot listen must not be served from
// memory: until b has listened again, and emptied its memory, it checks
// every request in the database.
func TestMemoryIsNotTrustedWhileNotListening(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	// b listens as a role of its own, which the test can lock out.
	role := "listener_" + randomHex(t, 4)
	db.exec(t, `CREATE ROLE `+role+` LOGIN`)
	t.Cleanup(func() { db.exec(t, `DROP ROLE IF EXISTS `+role) })
	listenURL := strings.Replace(db.url, "postgres://postgres@", "postgres://"+role+"@", 1)
	require.NotEqual(t, db.url, listenURL)
	b := startSite(t, siteOptions{db: db.url, app: "listen_database_url " + listenURL})
	waitListening(t, b)
	token, _ := db.sessionInDB(t, alice)
	require.Equal(t, http.StatusOK, gateStatus(t, b, token))
	require.Equal(t, http.StatusOK, gateStatus(t, b, token))

	// Cut b's listening connection and keep it from coming back.
	db.exec(t, `ALTER ROLE `+role+` NOLOGIN`)
	db.exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
	require.Eventually(t, func() bool { return b.logged(t, "lost the connection that listens for session changes") },
		10*time.Second, 10*time.Millisecond)

	// End the session with the triggers off, as if its notification were lost.
	conn, err := db.pool.Acquire(t.Context())
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(t.Context(), `SET session_replication_role = replica`)
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), `DELETE FROM pgsession.sessions`)
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), `RESET session_replication_role`)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, gateStatus(t, b, token), "not listening: the database is asked")

	// Once b listens again, memory (emptied on reconnecting) serves again.
	db.exec(t, `ALTER ROLE `+role+` LOGIN`)
	require.Eventually(t, func() bool { return b.logged(t, "listening for session changes again") },
		10*time.Second, 10*time.Millisecond)
	live, _ := db.sessionInDB(t, alice)
	assert.Equal(t, http.StatusOK, gateStatus(t, b, live))
}

// Long responses end with their session: a stream through a, on its
// session's logout on b, and another when its session expires.
func TestStreamsEndWithTheirSession(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	events := newEventStream(t)
	a := startSite(t, siteOptions{db: db.url, next: events.proxy()})
	b := startSite(t, siteOptions{db: db.url})

	stream := func(token string) (ended <-chan time.Time) { return openStream(t, a.url("/api/events"), token) }

	for _, tc := range []struct {
		name string
		end  func(token, handle string)
	}{
		{"logout on the other server", func(token, _ string) {
			require.Equal(t, http.StatusOK, sendRaw(t, http.MethodPost, b.url("/api/auth/logout"), "", "Cookie", cookieHeader(token)).StatusCode)
		}},
		{"expiry", func(_, handle string) {
			db.exec(t, `UPDATE pgsession.sessions SET expires_at = now() + interval '300 milliseconds' WHERE handle = $1`, handle)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, handle := db.sessionInDB(t, alice)
			ended := stream(token)
			start := time.Now()
			tc.end(token, handle)
			select {
			case at := <-ended:
				t.Logf("%s: the stream ended %v later", tc.name, at.Sub(start).Round(time.Millisecond))
			case <-time.After(10 * time.Second):
				t.Fatal("the stream outlived its session")
			}
		})
	}
}

// A database outage under load: sessions the server saw live within
// offline_grace go on being served, a session revoked before the outage is
// never served, the log says so in a few lines rather than one per request,
// and service is whole again as soon as the database is back.
func TestDatabaseOutageUnderLoad(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	db := testDBAt(t, srv.NewDatabase(t))
	alice := db.addUser(t, "alice", "correct horse battery")
	mallory := db.addUser(t, "mallory", "mallory's long password")
	c := startSite(t, siteOptions{db: db.url})
	waitListening(t, c)

	var live []string
	for range 4 {
		token, _ := db.sessionInDB(t, alice)
		require.Equal(t, http.StatusOK, gateStatus(t, c, token))
		live = append(live, token)
	}
	revoked, _ := db.sessionInDB(t, mallory)
	require.Equal(t, http.StatusOK, gateStatus(t, c, revoked))
	require.Equal(t, http.StatusOK, sendRaw(t, http.MethodPost, c.url("/api/auth/logout"), "", "Cookie", cookieHeader(revoked)).StatusCode)
	require.Equal(t, http.StatusUnauthorized, gateStatus(t, c, revoked))

	var served, failed, revokedServed, revokedAsked atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	// The load goes on while PostgreSQL stops: its listener and the pool's
	// connections end a few milliseconds apart, and look-ups answered in
	// between must not cost the sessions their grace.
	get := func(token string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/page"), nil)
		req.Header.Set("Cookie", cookieHeader(token))
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				switch status := get(live[i%len(live)]); {
				case status == http.StatusOK:
					served.Add(1)
				case ctx.Err() == nil:
					failed.Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			if get(revoked) == http.StatusOK {
				revokedServed.Add(1)
			}
			revokedAsked.Add(1)
		}
	})

	srv.Stop(t)
	// The outage lasts 10 s, and until the site has been under load through
	// it: many requests served from memory, and the revoked session refused
	// again and again, each of which could have been an ERROR line of its own.
	servedBefore, askedBefore := served.Load(), revokedAsked.Load()
	outage := time.Now()
	require.Eventually(t, func() bool {
		return time.Since(outage) >= 10*time.Second &&
			served.Load() > servedBefore+500 && revokedAsked.Load() > askedBefore+100
	}, 60*time.Second, 10*time.Millisecond, "the site was not under load during the outage")
	duringOutage := served.Load()
	srv.Start(t)
	back := time.Now()
	// A login, which no memory can answer, works again.
	require.Eventually(t, func() bool {
		return postLoginJSON(t, c, "alice", "correct horse battery").StatusCode == http.StatusOK
	}, 30*time.Second, 10*time.Millisecond)
	t.Logf("full service %v after the database was back", time.Since(back).Round(time.Millisecond))
	stop()
	wg.Wait()

	t.Logf("%d requests served (%d before the database was back), %d failed; the revoked session asked %d times",
		served.Load(), duringOutage, failed.Load(), revokedAsked.Load())
	assert.Zero(t, failed.Load(), "requests of sessions confirmed within offline_grace failed")
	assert.Zero(t, revokedServed.Load(), "the session revoked before the outage was served")
	assert.Greater(t, revokedAsked.Load(), int64(10))

	var errorLines []string
	for _, e := range c.logEntries(t) {
		if e["level"] == "error" {
			errorLines = append(errorLines, fmt.Sprint(e))
		}
	}
	assert.Less(t, len(errorLines), 50, "ERROR lines:\n%s", strings.Join(errorLines, "\n"))
	assert.True(t, c.logged(t, "session store unreachable"), "the outage is logged")
	// The end is logged once the database has answered for a second without failing.
	assert.Eventually(t, func() bool { return c.logged(t, "session store reachable again") }, 10*time.Second,
		10*time.Millisecond, "so is its end")
}

// A client that hangs up while its session is being looked up is no store
// failure: no 503 is written and nothing is logged as one.
func TestAClientThatGoesAwayIsNotAnOutage(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	c := startSite(t, siteOptions{db: db.url, app: "cache_size 0"})
	token, _ := db.sessionInDB(t, alice)

	// Hold a lock that makes every look-up wait, and let clients give up.
	tx, err := db.pool.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), `LOCK TABLE pgsession.sessions IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/page"), nil)
		req.Header.Set("Cookie", cookieHeader(token))
		_, err := attackerClient.Do(req)
		cancel()
		require.Error(t, err, "the client gave up")
	}
	require.NoError(t, tx.Rollback(t.Context()))
	require.Equal(t, http.StatusOK, gateStatus(t, c, token))
	require.Eventually(t, func() bool { return len(c.statuses()) == 6 }, 10*time.Second, 10*time.Millisecond,
		"the site finished the requests of the clients that went away")
	assert.False(t, c.logged(t, "unreachable"))
	assert.NotContains(t, c.statuses(), http.StatusServiceUnavailable, "the access log shows no 503")
}

// The server that ends a session refuses it at once, without waiting for
// the database's announcement, which here never comes: its triggers are
// off. Every way a user or an admin ends sessions or changes a user
// through the routes counts.
func TestTheServerThatEndsASessionForgetsItAtOnce(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	const admin = "an admin token that is long enough to pass"
	s := startSite(t, siteOptions{db: db.url, handler: `admin_token "` + admin + `"`})
	waitListening(t, s)
	for _, trigger := range []string{"sessions_deleted", "sessions_updated"} {
		db.exec(t, `ALTER TABLE pgsession.sessions DISABLE TRIGGER `+trigger)
	}
	for _, trigger := range []string{"users_deleted", "users_updated"} {
		db.exec(t, `ALTER TABLE pgsession.users DISABLE TRIGGER `+trigger)
	}
	bearer := []string{"Authorization", "Bearer " + admin, "Content-Type", "application/json"}

	for _, tc := range []struct {
		name string
		end  func(t *testing.T, u *store.User, own, handle string)
	}{
		{"the user's own revoke", func(t *testing.T, _ *store.User, own, handle string) {
			resp := sendRaw(t, http.MethodDelete, s.url("/api/auth/sessions/"+handle), "", "Cookie", cookieHeader(own))
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"sign out the other sessions", func(t *testing.T, _ *store.User, own, _ string) {
			resp := sendRaw(t, http.MethodPost, s.url("/api/auth/sessions/revoke-others"), "", "Cookie", cookieHeader(own))
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"a password change", func(t *testing.T, _ *store.User, own, _ string) {
			resp := sendRaw(t, http.MethodPost, s.url("/api/auth/password"),
				jsonText(t, map[string]string{"current_password": "correct horse battery", "new_password": "another fine password"}),
				"Content-Type", "application/json", "Cookie", cookieHeader(own))
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"an admin's revoke", func(t *testing.T, _ *store.User, _, handle string) {
			resp := sendRaw(t, http.MethodDelete, s.url("/api/auth/admin/sessions/"+handle), "", bearer...)
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"an admin ending all the user's sessions", func(t *testing.T, u *store.User, _, _ string) {
			resp := sendRaw(t, http.MethodDelete, s.url("/api/auth/admin/users/"+u.Username+"/sessions"), "", bearer...)
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"an admin setting the password", func(t *testing.T, u *store.User, _, _ string) {
			resp := sendRaw(t, http.MethodPatch, s.url("/api/auth/admin/users/"+u.Username),
				jsonText(t, map[string]string{"password": "set by the admin"}), bearer...)
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"an admin deleting the user", func(t *testing.T, u *store.User, _, _ string) {
			resp := sendRaw(t, http.MethodDelete, s.url("/api/auth/admin/users/"+u.Username), "", bearer...)
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := db.addUser(t, "user"+randomHex(t, 4), "correct horse battery")
			own, _ := db.sessionInDB(t, u)
			other, handle := db.sessionInDB(t, u)
			require.Equal(t, http.StatusOK, gateStatus(t, s, other))
			require.Equal(t, http.StatusOK, gateStatus(t, s, other), "known to the server")
			tc.end(t, u, own, handle)
			assert.Equal(t, http.StatusUnauthorized, gateStatus(t, s, other), "refused by the server that ended it, at once")
		})
	}
}
