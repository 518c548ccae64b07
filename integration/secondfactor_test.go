package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
)

// Two-step sign-in through a real Caddy: enrolment, the password alone
// giving no session, the pending cookie refused by the gate, a wrong code,
// the right one, its replay, a recovery code once, and the command line's
// reset-2fa, after which the password alone signs in again.
func TestTwoStepSignInThroughCaddy(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startCaddy(t, site{DatabaseURL: db.url, AppOptions: "secrets_key integration-secrets-key-0123456789-abcdef"})

	laptop := newBrowser(t)
	laptop.login(c, "alice", "correct horse battery")
	resp := laptop.postJSON(c.url("/api/auth/totp/setup"), map[string]any{})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	secret := jsonField(t, resp.body, "secret")
	code := func(steps int) string {
		code, err := totp.GenerateCode(secret, time.Now().Add(time.Duration(steps)*30*time.Second))
		require.NoError(t, err)
		return code
	}
	resp = laptop.postJSON(c.url("/api/auth/totp/confirm"), map[string]string{"code": code(0)})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	recovery := jsonList(t, resp.body, "recovery_codes")
	require.Len(t, recovery, 10)

	phone := newBrowser(t)
	resp = phone.postJSON(c.url("/api/auth/login"), map[string]string{"username": "alice", "password": "correct horse battery"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"second_factor":"required","methods":["totp","recovery_code"]}`, resp.body)
	assert.Empty(t, phone.cookie(c), "the password alone starts no session")
	pending := webtest.SessionCookie(phone.jar, c.url("/"), "session_pending")
	require.NotEmpty(t, pending, "a pending cookie holds the login's first step")
	assert.Equal(t, http.StatusUnauthorized, phone.get(c.url("/page")).StatusCode, "the pending cookie does not pass the gate")
	assert.Equal(t, http.StatusUnauthorized,
		newBrowser(t).get(c.url("/page"), "Cookie", "session="+pending).StatusCode, "not even as a session cookie")

	resp = phone.postJSON(c.url("/api/auth/login/second-factor"), map[string]string{"code": "000000"})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a wrong code")
	right := code(1)
	resp = phone.postJSON(c.url("/api/auth/login/second-factor"), map[string]string{"code": right})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.NotEmpty(t, phone.cookie(c))
	assert.Equal(t, "hello alice", phone.get(c.url("/page")).body)

	replay := newBrowser(t)
	require.Equal(t, http.StatusOK, replay.postJSON(c.url("/api/auth/login"),
		map[string]string{"username": "alice", "password": "correct horse battery"}).StatusCode)
	resp = replay.postJSON(c.url("/api/auth/login/second-factor"), map[string]string{"code": right})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a code is accepted once")
	resp = replay.postJSON(c.url("/api/auth/login/second-factor"), map[string]string{"recovery_code": recovery[0]})
	require.Equal(t, http.StatusOK, resp.StatusCode, "a recovery code works: %s", resp.body)

	again := newBrowser(t)
	require.Equal(t, http.StatusOK, again.postJSON(c.url("/api/auth/login"),
		map[string]string{"username": "alice", "password": "correct horse battery"}).StatusCode)
	resp = again.postJSON(c.url("/api/auth/login/second-factor"), map[string]string{"recovery_code": recovery[0]})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "once")

	// The phone is lost: the operator resets the second factor.
	out, err := pgSessionCommand(t, db.url, "user", "reset-2fa", "alice")
	require.NoError(t, err, out)
	// The command line's change reaches the server through PostgreSQL's
	// NOTIFY, within milliseconds.
	assert.Eventually(t, func() bool { return phone.get(c.url("/page")).StatusCode == http.StatusUnauthorized },
		10*time.Second, 10*time.Millisecond, "reset-2fa ends the user's sessions")
	fresh := newBrowser(t)
	fresh.login(c, "alice", "correct horse battery")
	assert.NotEmpty(t, fresh.cookie(c), "and the password alone signs in again")
}

// pgSessionCommand runs `caddy pg-session args…` against the database at url.
func pgSessionCommand(t *testing.T, url string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBinary, append([]string{"pg-session", "--database-url", url}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func jsonField(t *testing.T, body, field string) string {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	s, ok := v[field].(string)
	require.True(t, ok, "%s has no string %q", body, field)
	return s
}

func jsonList(t *testing.T, body, field string) []string {
	t.Helper()
	var v map[string][]string
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v[field]
}

// Through a real Caddy: guessing codes is throttled with 429, and with
// second_factor required a user without one reaches only the enrolment,
// until they have set it up.
func TestCodeGuessingAndRequiredSecondFactorThroughCaddy(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	c := startCaddy(t, site{DatabaseURL: db.url, AppOptions: "secrets_key integration-secrets-key-0123456789-abcdef",
		HandlerOptions: "second_factor required"})

	b := newBrowser(t)
	b.login(c, "alice", "correct horse battery")
	resp := b.get(c.url("/page"))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.JSONEq(t, `{"error":"Second factor enrolment required"}`, resp.body)
	resp = b.getPage(c.url("/page"))
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/account#two-step", resp.Header.Get("Location"), "a browser is sent to set it up")

	resp = b.postJSON(c.url("/api/auth/totp/setup"), map[string]any{})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	secret := jsonField(t, resp.body, "secret")
	code, err := totp.GenerateCode(secret, time.Now())
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, b.postJSON(c.url("/api/auth/totp/confirm"), map[string]string{"code": code}).StatusCode)
	assert.Equal(t, "hello alice", b.get(c.url("/page")).body, "once set up, the site opens")

	// Someone with the password guesses codes: each pending sign-in takes
	// three wrong codes, and the account soon answers 429.
	guesser := newBrowser(t)
	var statuses []int
	for range 3 {
		require.Equal(t, http.StatusOK, guesser.postJSON(c.url("/api/auth/login"),
			map[string]string{"username": "alice", "password": "correct horse battery"}).StatusCode)
		for range 3 {
			statuses = append(statuses, guesser.postJSON(c.url("/api/auth/login/second-factor"),
				map[string]string{"code": "000000"}).StatusCode)
		}
	}
	assert.Contains(t, statuses, http.StatusTooManyRequests, "guessing is throttled: %v", statuses)
	assert.Equal(t, http.StatusUnauthorized, statuses[0], "a wrong code is 401")
	assert.Empty(t, guesser.cookie(c), "and no guess signed in")
}
