package integration

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
)

// The gate keeps the sessions it checked in memory: a request with a known
// live session needs no query, every server hears at once when a session
// ends however it was ended, and a database blip logs nobody out.

// waitListening waits until c has caught up with the database's
// announcements, from when on it answers known sessions from memory.
func waitListening(t *testing.T, c *caddyServer) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(c.logs(), "listening for session changes") },
		30*time.Second, 10*time.Millisecond, "c never caught up with the database's announcements")
}

// gate asks for a page behind the gate with the session of token.
func gate(t *testing.T, c *caddyServer, token string) int {
	t.Helper()
	return sendRaw(t, http.MethodGet, c.url("/page"), "", "Cookie", sessionCookie(token)).StatusCode
}

// Once a session has been checked, its requests are answered from memory:
// they go on while the sessions table cannot be read at all. With
// cache_size 0 every request asks the database.
func TestKnownSessionsAreServedFromMemory(t *testing.T) {
	db := newDatabase(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	token, _ := sessionInDB(t, db, alice)
	cached := startCaddy(t, site{DatabaseURL: db.url})
	off := startCaddy(t, site{DatabaseURL: db.url, AppOptions: "cache_size 0"})
	waitListening(t, cached)
	for _, c := range []*caddyServer{cached, off} {
		require.Equal(t, http.StatusOK, gate(t, c, token))
	}
	db.exec(t, `ALTER TABLE pgsession.sessions RENAME TO sessions_away`)
	defer db.exec(t, `ALTER TABLE pgsession.sessions_away RENAME TO sessions`)
	for range 20 {
		assert.Equal(t, http.StatusOK, gate(t, cached, token), "served from memory, no query")
	}
	assert.Equal(t, http.StatusServiceUnavailable, gate(t, off, token), "without memory, every request asks the database")
}

// A session ended on one server, by any means, is refused by the other at
// once, although the other answered it from memory a moment before.
func TestRevocationReachesEveryServer(t *testing.T) {
	db := newDatabase(t)
	const admin = "an admin token that is long enough to pass"
	a := startCaddy(t, site{DatabaseURL: db.url, HandlerOptions: `admin_token "` + admin + `"`})
	b := startCaddy(t, site{DatabaseURL: db.url})
	alice := db.addUser(t, "alice", "correct horse battery")

	for _, tc := range []struct {
		name   string
		revoke func(t *testing.T, token, handle string)
	}{
		{"logout", func(t *testing.T, token, _ string) {
			resp := sendRaw(t, http.MethodPost, a.url("/api/auth/logout"), "", "Cookie", sessionCookie(token))
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"the user's own revoke", func(t *testing.T, _, handle string) {
			other, _ := sessionInDB(t, db, alice)
			resp := sendRaw(t, http.MethodDelete, a.url("/api/auth/sessions/"+handle), "", "Cookie", sessionCookie(other))
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"an admin's revoke", func(t *testing.T, _, handle string) {
			resp := sendRaw(t, http.MethodDelete, a.url("/api/auth/admin/sessions/"+handle), "", "Authorization", "Bearer "+admin)
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"the command line", func(t *testing.T, _, handle string) {
			out, err := exec.Command(caddyBinary, "pg-session", "sessions", "revoke", "alice", "--id", handle, "--database-url", db.url).CombinedOutput()
			require.NoError(t, err, "%s", out)
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
			token, handle := sessionInDB(t, db, alice)
			require.Equal(t, http.StatusOK, gate(t, b, token))
			require.Equal(t, http.StatusOK, gate(t, b, token), "known to b")
			tc.revoke(t, token, handle)
			start := time.Now()
			require.Eventually(t, func() bool { return gate(t, b, token) == http.StatusUnauthorized }, 5*time.Second, time.Millisecond,
				"b kept serving a revoked session")
			t.Logf("%s: b refused after %v", tc.name, time.Since(start).Round(time.Millisecond))
		})
	}

	// A user deleted, or losing admin rights, on a: b's memory of them goes.
	root := db.addAdmin(t, "root", "root's long password")
	rootToken, _ := sessionInDB(t, db, root)
	require.Equal(t, http.StatusOK, sendRaw(t, http.MethodGet, b.url("/page"), "", "Cookie", sessionCookie(rootToken)).StatusCode)
	resp := sendRaw(t, http.MethodPatch, a.url("/api/auth/admin/users/root"), jsonText(t, map[string]bool{"is_admin": false}),
		"Content-Type", "application/json", "Authorization", "Bearer "+admin)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Equal(t, false, sendRaw(t, http.MethodGet, b.url("/api/auth/me"), "", "Cookie", sessionCookie(rootToken)).json(t)["is_admin"])
	require.Equal(t, http.StatusOK, sendRaw(t, http.MethodDelete, a.url("/api/auth/admin/users/root"), "", "Authorization", "Bearer "+admin).StatusCode)
	require.Eventually(t, func() bool { return gate(t, b, rootToken) == http.StatusUnauthorized }, 5*time.Second, time.Millisecond)
}

// A revocation missed while b cannot listen must not be served from
// memory: until b has listened again, and emptied its memory, it checks
// every request in the database.
func TestMemoryIsNotTrustedWhileNotListening(t *testing.T) {
	db := newDatabase(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	// b listens as a role of its own, which the test can lock out.
	role := "listener_" + randomHex(t, 4)
	db.exec(t, `CREATE ROLE `+role+` LOGIN`)
	t.Cleanup(func() { db.exec(t, `DROP ROLE IF EXISTS `+role) })
	listenURL := strings.Replace(db.url, "postgres://postgres@", "postgres://"+role+"@", 1)
	require.NotEqual(t, db.url, listenURL)
	b := startCaddy(t, site{DatabaseURL: db.url, AppOptions: "listen_database_url " + listenURL})
	waitListening(t, b)
	token, _ := sessionInDB(t, db, alice)
	require.Equal(t, http.StatusOK, gate(t, b, token))
	require.Equal(t, http.StatusOK, gate(t, b, token))

	// Cut b's listening connection and keep it from coming back.
	db.exec(t, `ALTER ROLE `+role+` NOLOGIN`)
	db.exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, role)
	require.Eventually(t, func() bool { return strings.Contains(b.logs(), "lost the connection that listens for session changes") },
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
	assert.Equal(t, http.StatusUnauthorized, gate(t, b, token), "not listening: the database is asked")

	// Once b listens again, memory (emptied on reconnecting) serves again.
	db.exec(t, `ALTER ROLE `+role+` LOGIN`)
	require.Eventually(t, func() bool { return strings.Contains(b.logs(), "listening for session changes again") },
		10*time.Second, 10*time.Millisecond)
	live, _ := sessionInDB(t, db, alice)
	assert.Equal(t, http.StatusOK, gate(t, b, live))
}

// Long responses end with their session: a stream through a, on its
// session's logout on b, and another when its session expires.
func TestStreamsEndWithTheirSession(t *testing.T) {
	db := newDatabase(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	events := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	a := startCaddy(t, site{DatabaseURL: db.url, Upstream: events.addr()})
	b := startCaddy(t, site{DatabaseURL: db.url})

	stream := func(token string) (ended <-chan time.Time) {
		req, err := http.NewRequest(http.MethodGet, a.url("/api/events"), nil)
		require.NoError(t, err)
		req.Header.Set("Cookie", sessionCookie(token))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		lines := bufio.NewScanner(resp.Body)
		require.True(t, lines.Scan(), "the first event")
		done := make(chan time.Time, 1)
		go func() {
			defer resp.Body.Close()
			for lines.Scan() {
			}
			done <- time.Now()
		}()
		return done
	}

	for _, tc := range []struct {
		name string
		end  func(token, handle string)
	}{
		{"logout on the other server", func(token, _ string) {
			require.Equal(t, http.StatusOK, sendRaw(t, http.MethodPost, b.url("/api/auth/logout"), "", "Cookie", sessionCookie(token)).StatusCode)
		}},
		{"expiry", func(_, handle string) {
			db.exec(t, `UPDATE pgsession.sessions SET expires_at = now() + interval '300 milliseconds' WHERE handle = $1`, handle)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, handle := sessionInDB(t, db, alice)
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
	srv := pgtest.NewServer(t)
	db := newDatabaseAt(t, srv.NewDatabase(t))
	alice := db.addUser(t, "alice", "correct horse battery")
	mallory := db.addUser(t, "mallory", "mallory's long password")
	c := startCaddy(t, site{DatabaseURL: db.url})
	waitListening(t, c)

	var live []string
	for range 4 {
		token, _ := sessionInDB(t, db, alice)
		require.Equal(t, http.StatusOK, gate(t, c, token))
		live = append(live, token)
	}
	revoked, _ := sessionInDB(t, db, mallory)
	require.Equal(t, http.StatusOK, gate(t, c, revoked))
	require.Equal(t, http.StatusOK, sendRaw(t, http.MethodPost, c.url("/api/auth/logout"), "", "Cookie", sessionCookie(revoked)).StatusCode)
	require.Equal(t, http.StatusUnauthorized, gate(t, c, revoked))

	var served, failed, revokedServed, revokedAsked atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	get := func(token string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/page"), nil)
		req.Header.Set("Cookie", sessionCookie(token))
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
	outage := time.NewTimer(10 * time.Second)
	<-outage.C
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
	for line := range strings.Lines(c.logs()) {
		if strings.Contains(line, `"level":"error"`) && !strings.Contains(line, `"logger":"http.log.access`) {
			errorLines = append(errorLines, line)
		}
	}
	assert.Less(t, len(errorLines), 50, "ERROR lines:\n%s", strings.Join(errorLines, ""))
	assert.Contains(t, c.logs(), "session store unreachable")
	assert.Contains(t, c.logs(), "session store reachable again")
}

// A client that hangs up while its session is being looked up is no store
// failure: no 503 is written and nothing is logged as one.
func TestAClientThatGoesAwayIsNotAnOutage(t *testing.T) {
	db := newDatabase(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	c := startCaddy(t, site{DatabaseURL: db.url, AppOptions: "cache_size 0"})
	token, _ := sessionInDB(t, db, alice)

	// Hold a lock that makes every look-up wait, and let clients give up.
	tx, err := db.pool.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), `LOCK TABLE pgsession.sessions IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/page"), nil)
		req.Header.Set("Cookie", sessionCookie(token))
		_, err := http.DefaultClient.Do(req)
		cancel()
		require.Error(t, err, "the client gave up")
	}
	require.NoError(t, tx.Rollback(t.Context()))
	require.Equal(t, http.StatusOK, gate(t, c, token))
	assert.NotContains(t, c.logs(), "unreachable")
	assert.NotContains(t, c.logs(), `"status":503`)
}
