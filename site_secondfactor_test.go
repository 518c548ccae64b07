package pgsession

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/metricstest"
	"github.com/pgsession/caddy-pgsession/internal/routes"

	"github.com/pgsession/caddy-pgsession/internal/webtest"
	"github.com/pgsession/caddy-pgsession/web"
)

// The user's story with a second factor: they set up an authenticator app,
// and from then on their password alone signs them in nowhere.

const testSecretsKey = "test-secrets-key-0123456789-abcdefghijklmnop"

func twoStepSite(t *testing.T, db *testDB, handler string) *testSite {
	return startSite(t, siteOptions{db: db.url, app: "secrets_key " + testSecretsKey, handler: handler})
}

// enrolTOTP sets up and confirms an authenticator for the browser's user
// through the JSON routes, and returns its secret and recovery codes.
func enrolTOTP(t *testing.T, s *testSite, b *browser) (string, []string) {
	t.Helper()
	resp := b.postJSON(s.url("/api/auth/totp/setup"), map[string]any{})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	setup := resp.json(t)
	secret := setup["secret"].(string)
	require.NotEmpty(t, secret)
	code, err := totp.GenerateCode(secret, time.Now())
	require.NoError(t, err)
	resp = b.postJSON(s.url("/api/auth/totp/confirm"), map[string]string{"code": code})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	var codes []string
	for _, c := range resp.json(t)["recovery_codes"].([]any) {
		codes = append(codes, c.(string))
	}
	require.Len(t, codes, 10)
	return secret, codes
}

// laterCode is a code of the next time step, which the server accepts
// (clock skew) and which no earlier sign-in can have used.
func laterCode(t *testing.T, secret string, steps int) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, time.Now().Add(time.Duration(steps)*30*time.Second))
	require.NoError(t, err)
	return code
}

// passwordStep signs in with the password alone and expects the server to
// ask for the second factor.
func passwordStep(t *testing.T, s *testSite, b *browser, name, password string) {
	t.Helper()
	resp := b.postJSON(s.url("/api/auth/login"), map[string]string{"username": name, "password": password})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.JSONEq(t, `{"second_factor":"required","methods":["totp","recovery_code"]}`, resp.body)
	assert.Empty(t, b.cookie(s), "the password alone starts no session")
}

func TestTOTPEnrolmentThenSignInNeedsTheCode(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse")
	s := twoStepSite(t, db, `site_name "Example Docs"`)
	first := newBrowser(t)
	first.login(s, "alice", "correct horse")
	other := newBrowser(t)
	other.login(s, "alice", "correct horse")

	resp := first.postJSON(s.url("/api/auth/totp/setup"), map[string]any{})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	uri := resp.json(t)["uri"].(string)
	assert.True(t, strings.HasPrefix(uri, "otpauth://totp/Example%20Docs:alice?"), uri)
	secret := resp.json(t)["secret"].(string)

	// The secret is stored encrypted: the row holds neither its text nor its bytes.
	var stored []byte
	require.NoError(t, db.pool.QueryRow(context.Background(),
		`SELECT secret FROM pgsession.totp_secrets WHERE user_id = $1`, alice.ID).Scan(&stored))
	assert.NotContains(t, string(stored), secret)
	assert.NotContains(t, strings.ToUpper(string(stored)), secret)

	resp = first.postJSON(s.url("/api/auth/totp/confirm"), map[string]string{"code": "000000"})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "a wrong first code turns nothing on")
	code, err := totp.GenerateCode(secret, time.Now())
	require.NoError(t, err)
	resp = first.postJSON(s.url("/api/auth/totp/confirm"), map[string]string{"code": code})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	recovery := resp.json(t)["recovery_codes"].([]any)
	assert.Len(t, recovery, 10)
	assert.Equal(t, 10, db.count(t, `SELECT count(*) FROM pgsession.recovery_codes WHERE user_id = $1`, alice.ID))
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.recovery_codes WHERE code_hash = convert_to($1, 'UTF8')`,
		recovery[0].(string)), "recovery codes are stored as hashes")

	// Turning it on signs out the other sessions, not this one.
	assert.Equal(t, http.StatusOK, first.get(s.url("/page")).StatusCode)
	assert.Equal(t, http.StatusUnauthorized, other.get(s.url("/page")).StatusCode)

	b := newBrowser(t)
	passwordStep(t, s, b, "alice", "correct horse")
	pending := webtest.SessionCookie(b.jar, s.url("/"), "session_pending")
	require.NotEmpty(t, pending, "the pending cookie is set")
	assert.Equal(t, http.StatusUnauthorized, b.get(s.url("/page")).StatusCode, "a pending login passes no gate")
	assert.Equal(t, http.StatusUnauthorized, gateStatus(t, s, pending), "nor does its token as a session cookie")
	assert.Equal(t, http.StatusUnauthorized, meStatus(t, s, pending))

	resp = b.postJSON(s.url("/api/auth/login/second-factor"), map[string]string{"code": "123456"})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.JSONEq(t, `{"error":"Invalid code"}`, resp.body)
	next := laterCode(t, secret, 1)
	resp = b.postJSON(s.url("/api/auth/login/second-factor"), map[string]string{"code": next})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Equal(t, "alice", resp.json(t)["username"])
	assert.Equal(t, http.StatusOK, b.get(s.url("/page")).StatusCode)
	assert.Empty(t, webtest.SessionCookie(b.jar, s.url("/"), "session_pending"), "the pending cookie is cleared")
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.pending_logins`))

	// The same code again, in another sign-in, is refused.
	replay := newBrowser(t)
	passwordStep(t, s, replay, "alice", "correct horse")
	resp = replay.postJSON(s.url("/api/auth/login/second-factor"), map[string]string{"code": next})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a code works once")

	// A recovery code works once, whatever its case and dashes.
	rc := recovery[0].(string)
	resp = replay.postJSON(s.url("/api/auth/login/second-factor"),
		map[string]string{"recovery_code": strings.ToUpper(strings.ReplaceAll(rc, "-", " "))})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	again := newBrowser(t)
	passwordStep(t, s, again, "alice", "correct horse")
	resp = again.postJSON(s.url("/api/auth/login/second-factor"), map[string]string{"recovery_code": rc})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a recovery code works once")

	// The history names the factor of each step.
	resp = b.get(s.url("/api/auth/history"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var steps []string
	for _, e := range resp.list(t) {
		f, _ := e["factor"].(string)
		steps = append(steps, e["outcome"].(string)+"/"+f)
	}
	assert.Contains(t, steps, "second_factor_required/password")
	assert.Contains(t, steps, "success/totp")
	assert.Contains(t, steps, "success/recovery_code")
	assert.Contains(t, steps, "failure/totp")
	// The metrics count the same steps by factor.
	var counted []string
	for _, m := range metricstest.Gather(t, s.registry)["caddy_pg_session_sign_in_factors_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		counted = append(counted, labels["outcome"]+"/"+labels["factor"])
	}
	assert.Subset(t, counted, []string{"second_factor_required/password", "success/totp", "success/recovery_code", "failure/totp"})

	// Turning it off takes the password, and then the password is enough.
	resp = b.send(http.MethodDelete, s.url("/api/auth/totp"), map[string]string{"current_password": "wrong one"})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp = b.send(http.MethodDelete, s.url("/api/auth/totp"), map[string]string{"current_password": "correct horse"})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Equal(t, http.StatusOK, b.get(s.url("/page")).StatusCode, "the session turning it off stays")
	assert.Equal(t, http.StatusUnauthorized, replay.get(s.url("/page")).StatusCode, "the others end")
	newBrowser(t).login(s, "alice", "correct horse")
}

func TestSecondFactorPendingStateExpires(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse")
	s := twoStepSite(t, db, "")
	b := newBrowser(t)
	b.login(s, "alice", "correct horse")
	secret, _ := enrolTOTP(t, s, b)

	nobody := newBrowser(t)
	resp := nobody.postJSON(s.url("/api/auth/login/second-factor"), map[string]string{"code": laterCode(t, secret, 1)})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no pending login, no session")

	late := newBrowser(t)
	passwordStep(t, s, late, "alice", "correct horse")
	db.exec(t, `UPDATE pgsession.pending_logins SET expires_at = now() - interval '1 second'`)
	resp = late.postJSON(s.url("/api/auth/login/second-factor"), map[string]string{"code": laterCode(t, secret, 1)})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.body, "expired")
	assert.Empty(t, late.cookie(s))
}

func TestSecondFactorGuessingIsThrottled(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse")
	s := twoStepSite(t, db, "")
	b := newBrowser(t)
	b.login(s, "alice", "correct horse")
	secret, _ := enrolTOTP(t, s, b)

	guesser := newBrowser(t)
	passwordStep(t, s, guesser, "alice", "correct horse")
	for range routes.MaxCodeFailures {
		resp := guesser.postJSON(s.url("/api/auth/login/second-factor"), map[string]string{"code": "000000"})
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	resp := guesser.postJSON(s.url("/api/auth/login/second-factor"), map[string]string{"code": laterCode(t, secret, 1)})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "after %d wrong codes the pending login is gone", routes.MaxCodeFailures)
	assert.Contains(t, resp.body, "expired")

	// The password again, and the account's code limit is reached: even
	// the right code gets 429.
	passwordStep(t, s, guesser, "alice", "correct horse")
	resp = guesser.postJSON(s.url("/api/auth/login/second-factor"), map[string]string{"code": laterCode(t, secret, 1)})
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, resp.body)
	assertRetryAfter(t, resp, 15*60)
	assert.Empty(t, guesser.cookie(s))
}

func TestResetSecondFactorsByAdmin(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse")
	admin := randomHex(t, 20)
	s := twoStepSite(t, db, `admin_token "`+admin+`"`)
	b := newBrowser(t)
	b.login(s, "alice", "correct horse")
	enrolTOTP(t, s, b)
	waiting := newBrowser(t)
	passwordStep(t, s, waiting, "alice", "correct horse")

	resp := sendRaw(t, http.MethodDelete, s.url("/api/auth/admin/users/nobody/second-factors"), "", "X-Admin-Token", admin)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp = sendRaw(t, http.MethodDelete, s.url("/api/auth/admin/users/alice/second-factors"), "", "X-Admin-Token", admin)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.JSONEq(t, `{"ended":1}`, resp.body)
	assert.Equal(t, http.StatusUnauthorized, b.get(s.url("/page")).StatusCode, "the user's sessions end")
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.totp_secrets`))
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.recovery_codes`))
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.pending_logins`))
	newBrowser(t).login(s, "alice", "correct horse")
}

func TestSecondFactorRequiredSendsUsersToEnrol(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse")
	s := twoStepSite(t, db, "second_factor required")
	b := newBrowser(t)
	b.login(s, "alice", "correct horse")

	resp := b.get(s.url("/page"))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.JSONEq(t, `{"error":"Second factor enrolment required"}`, resp.body)
	resp = b.getPage(s.url("/docs/"))
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/account#two-step", resp.Header.Get("Location"))
	assert.Equal(t, http.StatusForbidden, b.get(s.url("/api/auth/sessions")).StatusCode, "nor the plugin's other routes")
	page := b.getPage(s.url("/account"))
	require.Equal(t, http.StatusOK, page.StatusCode)
	assert.Contains(t, page.body, "requires two-step sign-in")

	enrolTOTP(t, s, b)
	resp = b.get(s.url("/page"))
	assert.Equal(t, http.StatusOK, resp.StatusCode, "after enrolment the site opens: %s", resp.body)
	assert.Equal(t, "hello alice", resp.body)
}

func TestTOTPIsOffWithoutSecretsKey(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse")
	s := startSite(t, siteOptions{db: db.url})
	b := newBrowser(t)
	b.login(s, "alice", "correct horse")
	resp := b.postJSON(s.url("/api/auth/totp/setup"), map[string]any{})
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.JSONEq(t, `{"error":"TOTP is off: set secrets_key in the pg_session global option"}`, resp.body)
	page := b.getPage(s.url("/account"))
	require.Equal(t, http.StatusOK, page.StatusCode)
	assert.NotContains(t, page.body, `id="two-step"`)
}

// The same story for a person at the pages, without JavaScript.
func TestTwoStepSignInWithThePages(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse")
	s := twoStepSite(t, db, "")
	b := newBrowser(t)
	b.login(s, "alice", "correct horse")

	page := b.getPage(s.url("/account"))
	require.Equal(t, http.StatusOK, page.StatusCode)
	assert.Contains(t, page.body, "Two-step sign-in")
	resp := b.postForm(s.url("/account"), url.Values{"action": {"totp-setup"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	page = b.getPage(s.url("/account"))
	assert.Contains(t, page.body, `<svg class="qr"`, "the QR code is inline SVG")
	assert.NotContains(t, page.body, "data:", "no data: image, which the CSP would block")
	m := regexp.MustCompile(`<code class="totp-secret">((?:<wbr>|<span>[A-Z2-7]{1,4}</span>)+)</code>`).FindStringSubmatch(page.body)
	require.NotNil(t, m, "the secret is shown for typing in, in groups of four")
	secret := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(m[1], "")
	// The QR code still carries the otpauth:// URI of the whole key, as before the key was grouped.
	host, _, err := net.SplitHostPort(strings.TrimPrefix(s.url(""), "http://"))
	require.NoError(t, err)
	qr, err := web.QRCodeSVG("otpauth://totp/"+host+":alice?algorithm=SHA1&digits=6&issuer="+host+"&period=30&secret="+secret,
		"QR code for your authenticator app")
	require.NoError(t, err)
	assert.Contains(t, page.body, string(qr), "the QR code is the otpauth:// URI's")

	resp = b.postForm(s.url("/account"), url.Values{"action": {"totp-confirm"}, "code": {"000000"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Contains(t, b.getPage(s.url(resp.Header.Get("Location"))).body, "That code is not right")
	code, err := totp.GenerateCode(secret, time.Now())
	require.NoError(t, err)
	resp = b.postForm(s.url("/account"), url.Values{"action": {"totp-confirm"}, "code": {code}})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, "Save these recovery codes")
	assert.Len(t, regexp.MustCompile(`<li><code>[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}</code></li>`).FindAllString(resp.body, -1), 10)
	assert.Contains(t, b.getPage(s.url("/account")).body, "10 recovery codes left")

	p := newBrowser(t)
	resp = p.postForm(s.url("/login"), url.Values{"username": {"alice"}, "password": {"correct horse"}, "redirect": {"/docs/"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	for _, want := range []string{`autocomplete="one-time-code"`, `inputmode="numeric"`, "autofocus", `action="/login/second-factor"`,
		`name="redirect" value="/docs/"`, "Use a recovery code"} {
		assert.Contains(t, resp.body, want)
	}
	assert.Empty(t, p.cookie(s))
	resp = p.postForm(s.url("/login/second-factor"), url.Values{"code": {"000000"}, "redirect": {"/docs/"}})
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.body, "Invalid code")
	resp = p.postForm(s.url("/login/second-factor"), url.Values{"code": {laterCode(t, secret, 1)}, "redirect": {"/docs/"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Equal(t, "/docs/", resp.Header.Get("Location"))
	assert.Equal(t, http.StatusOK, p.get(s.url("/page")).StatusCode)

	// Turning it off from the page.
	resp = b.postForm(s.url("/account"), url.Values{"action": {"totp-disable"}, "current_password": {"correct horse"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
	assert.Contains(t, b.getPage(s.url(resp.Header.Get("Location"))).body, "Two-step sign-in is off")
}

// A secret sealed under another secrets_key (the key was changed, or the
// servers disagree) cannot be checked: the sign-in gets 503 saying what to
// do, never a 500, and the log says which user without the secret.
func TestTOTPSecretUnderAnotherKeyIsRefusedWith503(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "correct horse")
	s := twoStepSite(t, db, "")
	b := newBrowser(t)
	b.login(s, "alice", "correct horse")
	secret, _ := enrolTOTP(t, s, b)

	other := startSite(t, siteOptions{db: db.url, app: "secrets_key another-secrets-key-0123456789-abcdefghij"})
	late := newBrowser(t)
	passwordStep(t, other, late, "alice", "correct horse")
	resp := late.postJSON(other.url("/api/auth/login/second-factor"), map[string]string{"code": laterCode(t, secret, 1)})
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, resp.body)
	assert.Contains(t, resp.body, "ask an administrator to reset your second factor")
	assert.Empty(t, late.cookie(other), "no session")
	assert.True(t, other.logged(t, "reading a TOTP secret"))
	assert.NotContains(t, other.logs(), secret)
	assert.Equal(t, 1.0, other.metric(t, "logins_total", "outcome", "second_factor_required"),
		"the password step is counted as asking for the second factor")
	assert.Equal(t, 1.0, other.metric(t, "sign_in_factors_total", "outcome", "second_factor_required"),
		"with the factor it checked")
	assert.NotContains(t, metricstest.Gather(t, other.registry).LabelValues("caddy_pg_session_sign_in_factors_total", "factor"),
		"totp", "the code could not be checked")
}
