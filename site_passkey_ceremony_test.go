package pgsession

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/routes"
	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// A passkey sign-in's begin needs no cookie, so anyone may call it: it
// must write nothing to PostgreSQL and be throttled per address, or it is
// a free write for whoever calls it in a loop.

// schemaWrites is what the plugin's tables hold: their rows, their size on
// disk, and the rows ever inserted into them as PostgreSQL counts them.
type schemaWrites struct{ rows, bytes, inserted int64 }

func measureSchema(t *testing.T, db *testDB) schemaWrites {
	t.Helper()
	ctx := context.Background()
	var w schemaWrites
	require.NoError(t, db.pool.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint,
			coalesce(sum(n_tup_ins), 0)::bigint
		FROM pg_stat_user_tables WHERE schemaname = 'pgsession'`).Scan(&w.bytes, &w.inserted))
	rows, err := db.pool.Query(ctx, `SELECT format('SELECT count(*) FROM %I.%I', schemaname, relname)
		FROM pg_stat_user_tables WHERE schemaname = 'pgsession'`)
	require.NoError(t, err)
	var counts []string
	for rows.Next() {
		var q string
		require.NoError(t, rows.Scan(&q))
		counts = append(counts, q)
	}
	require.NoError(t, rows.Err())
	for _, q := range counts {
		w.rows += int64(db.count(t, q))
	}
	return w
}

// settle waits until no connection but the one asking is open to db's
// database, so every backend that wrote has reported its counts, which
// PostgreSQL does when a backend ends: db's own pool is closed first.
func settle(t *testing.T, db *testDB) {
	t.Helper()
	db.pool.Reset()
	require.Eventually(t, func() bool {
		return db.count(t, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND backend_type = 'client backend' AND pid <> pg_backend_pid()`) == 0
	}, 10*time.Second, 20*time.Millisecond, "the connections to the database close")
}

// Three thousand begins from one address, as fast as four connections
// send them: none writes a row or a byte, and past the burst they get 429
// with Retry-After. The counts are read with every other connection
// closed; a first server has made the ceremony key before.
func TestPasskeyLoginBeginWritesNothing(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	startSite(t, siteOptions{db: db.url}).stop()
	settle(t, db)
	before := measureSchema(t, db)
	site := startSite(t, siteOptions{db: db.url})

	const calls, workers = 3000, 4
	var mu sync.Mutex
	statuses := map[int]int{}
	var throttled reply
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			b := newBrowser(t)
			for range calls / workers {
				resp := atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/login/begin", nil)
				mu.Lock()
				statuses[resp.StatusCode]++
				if resp.StatusCode == http.StatusTooManyRequests && w == 0 {
					throttled = resp
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	site.stop()
	settle(t, db)
	after := measureSchema(t, db)
	t.Logf("%d begins: %v; rows %d -> %d, bytes %d -> %d, rows inserted %d", calls, statuses,
		before.rows, after.rows, before.bytes, after.bytes, after.inserted-before.inserted)

	assert.Equal(t, before.rows, after.rows, "a begin adds no row")
	assert.Equal(t, before.bytes, after.bytes, "nor a byte")
	assert.Equal(t, before.inserted, after.inserted, "nor inserts one")
	assert.Equal(t, calls, statuses[http.StatusOK]+statuses[http.StatusTooManyRequests], "200 or 429, nothing else: %v", statuses)
	assert.Positive(t, statuses[http.StatusOK])
	assert.LessOrEqual(t, statuses[http.StatusOK], routes.BeginBurst+60, "past the burst, about one a second: %v", statuses)
	require.NotNil(t, throttled.Response, "the address was throttled")
	assertRetryAfter(t, throttled, 5)
	assert.Contains(t, throttled.body, "error")
}

// openCeremonyCookie opens a ceremony cookie of site's, as its finish does.
func openCeremonyCookie(t *testing.T, site *testSite, kind, value string) routes.CeremonyState {
	t.Helper()
	state, err := site.app.shared.Ceremonies.Open(kind, value)
	require.NoError(t, err)
	return state
}

// expireCeremonyCookie puts into b the ceremony cookie that begin set, sealed
// again as if its five minutes had passed.
func expireCeremonyCookie(t *testing.T, b *browser, site *testSite, kind string, begin reply) {
	t.Helper()
	state := openCeremonyCookie(t, site, kind, ceremonyCookieOf(t, begin).Value)
	state.Expires = time.Now().Add(-time.Second)
	value, err := site.app.shared.Ceremonies.Seal(kind, state)
	require.NoError(t, err)
	// The jar files the cookie under the request's host, as atLocalhost sends it.
	u, err := url.Parse(site.url(passkeyAPI))
	require.NoError(t, err)
	u.Host = "localhost:" + u.Port()
	b.jar.SetCookies(u, []*http.Cookie{{Name: defaultCeremonyCookie, Value: value, Path: passkeyAPI}})
}

// A sign-in begun on one server finishes on another sharing the database,
// with the key the first server to start stored (no secrets_key) or the
// one both derive from secrets_key; the same cookie and answer sent again,
// to either server, are refused; a cookie altered, or sealed under another
// key, is refused with 400, never a 500.
func TestPasskeyCeremonyFinishesOnAnotherServerOnce(t *testing.T) {
	t.Parallel()
	for name, app := range map[string]string{"key in the database": "", "key from secrets_key": "secrets_key " + testSecretsKey} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := newTestDB(t)
			alice := db.addUser(t, "alice", "alice password")
			key := addSoftPasskey(t, db, alice)
			one, two := startSite(t, siteOptions{db: db.url, app: app}), startSite(t, siteOptions{db: db.url, app: app})

			b := newBrowser(t)
			begin := atLocalhost(t, b, one, http.MethodPost, passkeyAPI+"/login/begin", nil)
			cookie := ceremonyCookieOf(t, begin).Value
			// Both servers stand for one origin, as behind a load balancer:
			// the requests to the second carry the first's host.
			answer := key.answer(t, one, begin)
			finish := finishWithCookie(t, two, one, cookie, answer)
			require.Equal(t, http.StatusOK, finish.StatusCode, finish.body)
			assert.Contains(t, finish.body, `"username":"alice"`)
			assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.used_challenges`), "a finish records its challenge")

			for _, site := range []*testSite{one, two} {
				replay := finishWithCookie(t, site, one, cookie, answer)
				assert.Equal(t, http.StatusBadRequest, replay.StatusCode, replay.body)
				assert.Contains(t, replay.body, "expired or was used")
			}
			tampered := []byte(ceremonyCookieOf(t, atLocalhost(t, b, one, http.MethodPost, passkeyAPI+"/login/begin", nil)).Value)
			tampered[len(tampered)/2] ^= 1
			for _, value := range []string{string(tampered), "not-a-ceremony", strings.Repeat("A", 4000)} {
				resp := finishWithCookie(t, two, one, value, answer)
				assert.Equal(t, http.StatusBadRequest, resp.StatusCode, resp.body)
				assert.Contains(t, resp.body, "cannot be read")
			}
			assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.used_challenges`), "a cookie that does not open writes nothing")
			assert.Empty(t, filterStatus(append(one.statuses(), two.statuses()...), http.StatusInternalServerError), "never a 500")
		})
	}

	// A server with another secrets_key cannot open the first one's cookies.
	db := newTestDB(t)
	one := startSite(t, siteOptions{db: db.url, app: "secrets_key " + testSecretsKey})
	other := startSite(t, siteOptions{db: db.url, app: "secrets_key " + strings.Repeat("x", 40)})
	begin := atLocalhost(t, newBrowser(t), one, http.MethodPost, passkeyAPI+"/login/begin", nil)
	resp := finishWithCookie(t, other, other, ceremonyCookieOf(t, begin).Value, map[string]any{"credential": map[string]any{}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, "cannot be read")
}

// finishWithCookie sends a sign-in finish to site, addressed as origin's
// localhost host, with the ceremony cookie value, from a client without a jar.
func finishWithCookie(t *testing.T, site, origin *testSite, value string, body any) reply {
	t.Helper()
	u, err := url.Parse(origin.url("/"))
	require.NoError(t, err)
	req := webtest.JSONRequest(t, http.MethodPost, site.url(passkeyAPI+"/login/finish"), body, "Cookie", defaultCeremonyCookie+"="+value)
	req.Host = "localhost:" + u.Port()
	resp, data := webtest.Do(t, attackerClient, req)
	return reply{resp, data}
}
