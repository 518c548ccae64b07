package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// Attacks whose defence needs Caddy itself, run as a process: what its logs
// (the access log included) hold, how far the process's memory grows under
// a flood of logins hashed at full cost, and options refused before Caddy
// starts. Every other attack is told, and tested in process, in the root
// package's site_security_test.go.

// ---------------------------------------------------------------------------
// Helpers

// attackerClient has no cookie jar and does not follow redirects.
var attackerClient = webtest.NewBare(nil)

// sendRaw sends one request with body (none when empty) and header pairs.
func sendRaw(t *testing.T, method, rawURL, body string, header ...string) response {
	t.Helper()
	resp, data := webtest.SendRaw(t, attackerClient, method, rawURL, body, header...)
	return response{resp, data}
}

func jsonText(t *testing.T, v any) string {
	t.Helper()
	return webtest.JSONText(t, v)
}

// postLoginJSON posts a JSON login as a script would, with extra header pairs.
func postLoginJSON(t *testing.T, c *caddyServer, username, password string, header ...string) response {
	t.Helper()
	body := jsonText(t, map[string]string{"username": username, "password": password})
	return sendRaw(t, http.MethodPost, c.url("/api/auth/login"), body, append([]string{"Content-Type", "application/json"}, header...)...)
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// ---------------------------------------------------------------------------
// Password hashing as a denial of service

// vmHWM returns the peak resident memory of process pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	require.NotZero(t, pid)
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			fields := strings.Fields(rest)
			require.Len(t, fields, 2, sc.Text())
			require.Equal(t, "kB", fields[1])
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	require.NoError(t, sc.Err())
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// mebibyte is for reporting memory figures.
const mebibyte = 1 << 20

// An attacker fires 200 logins at once. Each argon2id check takes 19 MiB and
// tens of milliseconds of CPU, so unbounded they would take 200 × 19 MiB ≈
// 3.8 GiB and starve every other request. The store computes only as many
// hashes at once as there are CPUs and answers the rest 503 with Retry-After
// after a short wait: the flood is refused cleanly, memory stays bounded, and
// logged-in users keep being served.
func TestLoginFloodNeitherExhaustsMemoryNorStarvesTheSite(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc to read Caddy's peak memory")
	}
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	// Limits far above the flood, so 429 does not stop it before the hashing.
	c := startCaddy(t, site{DatabaseURL: db.url, HandlerOptions: "max_failed_logins_per_account 100000\n\t\tmax_failed_logins_per_ip 100000"})
	reader := newBrowser(t)
	reader.client.Timeout = 20 * time.Second
	reader.login(c, "alice", "correct horse battery")
	// One failed login before measuring, so what is measured is the flood, not first use.
	require.Equal(t, http.StatusUnauthorized, postLoginJSON(t, c, "alice", "warming up").StatusCode)
	before := vmHWM(t, c.PID())

	const logins = 200
	flood := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: logins}}
	var mu sync.Mutex
	statuses := map[int]int{}
	var problems []string
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range logins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			password := "correct horse battery"
			if i%2 == 1 {
				password = fmt.Sprintf("wrong guess %d", i)
			}
			body, _ := json.Marshal(map[string]string{"username": "alice", "password": password})
			<-start
			resp, err := flood.Post(c.url("/api/auth/login"), "application/json", bytes.NewReader(body))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				problems = append(problems, "login: "+err.Error())
				return
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			statuses[resp.StatusCode]++
			switch resp.StatusCode {
			case http.StatusOK, http.StatusUnauthorized:
			case http.StatusServiceUnavailable:
				if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n <= 0 {
					problems = append(problems, fmt.Sprintf("503 without a usable Retry-After (%q): %s", resp.Header.Get("Retry-After"), data))
				}
			default:
				problems = append(problems, fmt.Sprintf("login answered %d: %s", resp.StatusCode, data))
			}
		}()
	}

	// Meanwhile a logged-in user keeps reading pages.
	done := make(chan struct{})
	var pages, pageFailures int
	var pageProblems []string
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-done:
				return
			default:
			}
			req, _ := http.NewRequest(http.MethodGet, c.url("/dashboard"), nil)
			resp, err := reader.client.Do(req)
			pages++
			if err != nil {
				pageFailures++
				pageProblems = append(pageProblems, err.Error())
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				pageFailures++
				pageProblems = append(pageProblems, resp.Status)
			}
		}
	}()

	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)
	close(done)
	<-readerDone
	after := vmHWM(t, c.PID())

	growth := after - before
	t.Logf("%d concurrent logins in %s: %v; Caddy's peak RSS %d MiB before, %d MiB after, growth %d MiB (race detector: %v); %d page requests meanwhile",
		logins, elapsed.Round(time.Millisecond), statuses, before/mebibyte, after/mebibyte, growth/mebibyte, raceEnabled, pages)
	assert.Empty(t, problems, "every login answers 200, 401 or 503 with Retry-After")
	assert.Positive(t, statuses[http.StatusOK], "some right passwords were checked")
	assert.Positive(t, statuses[http.StatusUnauthorized], "some wrong passwords were checked")
	assert.Positive(t, pages, "pages were requested during the flood")
	assert.Zero(t, pageFailures, "every page request of the logged-in user succeeded: %v", pageProblems)
	// The bound. Measured on a 2-CPU machine, this flood grows Caddy's peak
	// RSS by 66–78 MiB in a plain build and 250–370 MiB in the race build the
	// tests use with -race (the race detector's shadow memory costs several
	// bytes for each byte argon2 touches). With the hash limit taken out of
	// the store, the plain build grew by about 2 GiB (not the full 3.8 GiB:
	// the four-connection pool staggers the logins' start a little), and a
	// race build would grow several times that. 1 GiB is far from both.
	assert.Less(t, growth, int64(1<<30), "Caddy's peak memory grew by %d MiB during the flood", growth/mebibyte)
}

// ---------------------------------------------------------------------------
// Options refused at configuration

// An admin token short enough to guess is refused at configuration, also
// when it comes from the environment.
func TestShortAdminTokenIsRefusedAtConfiguration(t *testing.T) {
	caddyfile := func(value string) string {
		return `{
	pg_session {
		database_url postgres://127.0.0.1/app
	}
}
http://localhost {
	pg_session {
		admin_token ` + value + `
	}
	respond "hi"
}
`
	}
	out, err := caddyCommand(t, "validate", caddyfile("0123456789"))
	require.Error(t, err, out)
	assert.Contains(t, out, "admin_token must be at least 32 characters")
	t.Setenv("PGSESSION_TEST_SHORT_ADMIN_TOKEN", "0123456789")
	out, err = caddyCommand(t, "validate", caddyfile("{env.PGSESSION_TEST_SHORT_ADMIN_TOKEN}"))
	require.Error(t, err, "a short token from the environment is refused too:\n%s", out)
	assert.Contains(t, out, "admin_token must be at least 32 characters")
}

// A cookie name browsers keep only with Secure is refused with secure off,
// rather than left for browsers to drop silently.
func TestCookieNameThatNeedsHTTPSIsRefusedWithSecureOff(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"__Host-session", "__Secure-session"} {
		out, err := caddyCommand(t, "validate", `{
	pg_session {
		database_url postgres://127.0.0.1/app
	}
}
http://localhost {
	pg_session {
		cookie_name `+name+`
		secure off
	}
	respond "hi"
}
`)
		require.Error(t, err, out)
		assert.Contains(t, out, "cookie_name "+name+" needs a Secure cookie, but secure is off")
	}
}

// ---------------------------------------------------------------------------
// Secrets in logs and answers

// Someone who can read Caddy's logs (a log shipper, a support engineer, an
// attacker with read access to /var/log) must not find credentials there.
// With debug logging and an access log on, a full flow is run: a failed login,
// a login, pages, the account page, a password change, admin requests with the
// token, logout. No cookie value, password, password hash or admin token
// appears in the log, nor in any answer where it does not belong.
func TestSecretsStayOutOfLogsAndAnswers(t *testing.T) {
	var upstreamSawToken sync.Map
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("X-Admin-Token"); v != "" {
			upstreamSawToken.Store(r.URL.Path, v)
		}
		io.WriteString(w, "page for "+r.Header.Get("X-Auth-Username"))
	}))
	t.Cleanup(upstream.Close)

	db := newDatabase(t)
	oldPassword := "old-password-" + randomHex(t, 8)
	db.addUser(t, "alice", oldPassword)
	db.addAdmin(t, "root", "root-password-"+randomHex(t, 8))
	newPassword := "new-password-" + randomHex(t, 8)
	wrongPasswords := []string{"wrong-password-" + randomHex(t, 8), "wrong-password-" + randomHex(t, 8), "wrong-password-" + randomHex(t, 8)}
	token := "admin-token-" + randomHex(t, 20)
	wrongToken := "wrong-admin-token-" + randomHex(t, 20)
	t.Setenv("PGSESSION_TEST_ADMIN_TOKEN", token)

	port := freePort(t)
	caddyfile := fmt.Sprintf(`{
	debug
	admin off
	auto_https off
	pg_session {
		database_url %s
	}
}
http://127.0.0.1:%d {
	log {
		output stderr
		# As docs/operations.md advises: Caddy's access log records request headers,
		# redacting only Cookie and Authorization.
		format filter {
			wrap json
			fields {
				request>headers>X-Admin-Token delete
			}
		}
	}
	pg_session {
		admin_token {env.PGSESSION_TEST_ADMIN_TOKEN}
	}
	reverse_proxy %s
}
`, db.url, port, upstream.Listener.Addr().String())
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	srv := caddyproc.Start(t, caddyBinary, caddyfile, base+"/api/auth/me", 0)
	c := &caddyServer{Server: srv, t: t, site: site{Port: port}}

	var answers []response
	keep := func(resp response) response { answers = append(answers, resp); return resp }
	hashes := func() []string {
		var out []string
		rows, err := db.pool.Query(context.Background(), `SELECT password_hash FROM pgsession.users`)
		require.NoError(t, err)
		for rows.Next() {
			var h string
			require.NoError(t, rows.Scan(&h))
			out = append(out, h)
			// The salt and the key alone are secrets too.
			parts := strings.Split(h, "$")
			out = append(out, parts[len(parts)-2], parts[len(parts)-1])
		}
		require.NoError(t, rows.Err())
		return out
	}
	// A password typed into the name field, as happens when a person's
	// focus is in the wrong place: no account has that name.
	pasted := "pasted-password-" + randomHex(t, 8)
	secrets := map[string]string{"admin token": token, "wrong admin token": wrongToken, "old password": oldPassword, "new password": newPassword}
	for i, pw := range wrongPasswords {
		secrets[fmt.Sprintf("wrong password %d", i)] = pw
	}
	for i, h := range hashes() {
		secrets[fmt.Sprintf("password hash (part) %d before", i)] = h
	}

	b := newBrowser(t)
	require.Equal(t, http.StatusUnauthorized, keep(b.postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": wrongPasswords[0]})).StatusCode)
	require.Equal(t, http.StatusUnauthorized, keep(b.postForm(c.url("/login"), url.Values{"username": {"alice"}, "password": {wrongPasswords[1]}})).StatusCode)
	require.Equal(t, http.StatusUnauthorized, keep(b.postForm(c.url("/login"), url.Values{"username": {pasted}, "password": {"x"}})).StatusCode)
	resp := keep(b.postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": oldPassword}))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	require.Equal(t, http.StatusOK, keep(b.getPage(c.url("/dashboard"))).StatusCode)
	require.Equal(t, http.StatusOK, keep(b.getPage(c.url("/account"))).StatusCode)
	require.Equal(t, http.StatusOK, keep(b.get(c.url("/api/auth/sessions"))).StatusCode)
	require.Equal(t, http.StatusForbidden, keep(b.send(http.MethodPost, c.url("/api/auth/password"),
		map[string]string{"current_password": wrongPasswords[2], "new_password": newPassword})).StatusCode)
	require.Equal(t, http.StatusOK, keep(b.send(http.MethodPost, c.url("/api/auth/password"),
		map[string]string{"current_password": oldPassword, "new_password": newPassword})).StatusCode)
	require.Equal(t, http.StatusUnauthorized, keep(b.get(c.url("/api/auth/admin/users"), "X-Admin-Token", wrongToken)).StatusCode)
	require.Equal(t, http.StatusOK, keep(b.get(c.url("/api/auth/admin/users"), "X-Admin-Token", token)).StatusCode)
	require.Equal(t, http.StatusOK, keep(b.get(c.url("/api/auth/admin/users/alice/sessions"), "X-Admin-Token", token)).StatusCode)
	require.Equal(t, http.StatusOK, keep(b.get(c.url("/api/auth/admin/users"), "Authorization", "Bearer "+token)).StatusCode)
	// A tool that sends the token on every request, pages included.
	require.Equal(t, http.StatusOK, keep(b.get(c.url("/reports"), "X-Admin-Token", token)).StatusCode)
	other := newBrowser(t)
	require.Equal(t, http.StatusSeeOther, keep(other.postForm(c.url("/login"), url.Values{"username": {"alice"}, "password": {newPassword}})).StatusCode)
	require.Equal(t, http.StatusOK, keep(other.get(c.url("/api/auth/me"))).StatusCode)
	require.Equal(t, http.StatusOK, keep(b.postJSON(c.url("/api/auth/logout"), nil)).StatusCode)
	require.Equal(t, http.StatusSeeOther, keep(other.postForm(c.url("/logout"), nil)).StatusCode)

	for i, h := range hashes() {
		secrets[fmt.Sprintf("password hash (part) %d after", i)] = h
	}
	cookies := 0
	for _, a := range answers {
		for _, ck := range a.Cookies() {
			if ck.Value != "" {
				cookies++
				secrets[fmt.Sprintf("cookie %d", cookies)] = ck.Value
			}
		}
	}
	require.GreaterOrEqual(t, cookies, 2, "the flow saw the cookies of two logins")

	// Stopping Caddy flushes everything it logged.
	srv.Stop()
	logs := srv.Logs()
	require.Contains(t, logs, `"level":"debug"`, "debug logging was on")
	require.Contains(t, logs, "login failed", "the plugin's own log lines are there")
	require.Contains(t, logs, `"uri":"/api/auth/admin/users"`, "the access log is there")
	// The login form fills the name in again for its own visitor, so only
	// the log is checked for it.
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, pasted) {
			t.Errorf("Caddy's log contains a password typed as the name, in: %.500s", line)
			break
		}
	}
	for what, secret := range secrets {
		// Not assert.NotContains: it would print the whole log for each secret.
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, secret) {
				t.Errorf("Caddy's log contains the %s, in: %.500s", what, line)
				break
			}
		}
		for _, a := range answers {
			assert.NotContains(t, a.body, secret, "the answer to %s %s contains the %s", a.Request.Method, a.Request.URL.Path, what)
		}
	}
	upstreamSawToken.Range(func(path, v any) bool {
		t.Errorf("the upstream received the admin token on %s", path)
		return true
	})
	if t.Failed() {
		t.Logf("secrets checked: %d", len(secrets))
	}
}
