package integration

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
)

// fakeGo stands in for the go command in the demo test: building Caddy for
// real would take minutes on a cold cache, and what is tested is how the
// script reports the build, so it lists packages as `go build -v` does
// (FAKE_GO_BUILT of them, 150 unless set) and copies the binary the tests
// built.
const fakeGo = `#!/bin/sh
case "$1" in
list) i=0; while [ $i -lt 250 ]; do echo "example.com/pkg$i"; i=$((i+1)); done ;;
build) i=0; while [ $i -lt "${FAKE_GO_BUILT:-150}" ]; do echo "example.com/pkg$i" >&2; i=$((i+1)); done; cp "$CADDY_BINARY" caddy ;;
*) echo "fake go: unexpected $*" >&2; exit 2 ;;
esac
`

// demoRun is make demo running in a folder of its own, as a newcomer runs
// it: demo/run.sh with the fake go, against a database of the test's.
type demoRun struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *caddyproc.SyncBuffer
	done chan error
	ctx  context.Context
	port int
}

// startDemo runs demo/run.sh with env added to its environment and returns
// once it says the demo is up.
func startDemo(t *testing.T, db *database, env ...string) *demoRun {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.CopyFS(filepath.Join(root, "demo"), os.DirFS("../demo")))
	bin := filepath.Join(root, "bin")
	require.NoError(t, os.Mkdir(bin, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "go"), []byte(fakeGo), 0o755))

	d := &demoRun{t: t, out: new(caddyproc.SyncBuffer), done: make(chan error, 1), port: freePort(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	d.ctx = ctx
	// trap '' INT, then exec: the signal stays ignored in the script, as
	// it is for a job started in the background of a non-interactive shell.
	d.cmd = exec.CommandContext(ctx, "sh", "-c", `trap '' INT; exec bash demo/run.sh`)
	d.cmd.Dir = root
	d.cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "CADDY_BINARY="+caddyBinary,
		"DATABASE_URL="+db.url, "DEMO_PORT="+strconv.Itoa(d.port), "HOME="+root, "TMPDIR="+root)
	d.cmd.Env = append(d.cmd.Env, env...)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	require.NoError(t, d.cmd.Start())
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		}
	})

	require.Eventually(t, func() bool { return strings.Contains(d.out.String(), "Ctrl-C to stop") },
		60*time.Second, 50*time.Millisecond, "the demo did not come up:\n%s", d.out)
	return d
}

// url is path on the demo's site, by the name its Caddyfile serves.
func (d *demoRun) url(path string) string {
	return "http://localhost:" + strconv.Itoa(d.port) + path
}

// stop sends SIGINT to the whole group, as a Ctrl-C would send it, and
// returns how the script ended and all it printed.
func (d *demoRun) stop() (string, error) {
	d.t.Helper()
	require.NoError(d.t, syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT))
	select {
	case err := <-d.done:
		return d.out.String(), err
	case <-d.ctx.Done():
		d.t.Fatalf("the demo did not stop on SIGINT:\n%s", d.out)
		return "", nil
	}
}

// make demo, run without a terminal, says that the first build takes
// minutes and shows its progress, and stopping it with SIGINT ends it
// cleanly, with status 0 and no error. Without a terminal the shell
// ignores SIGINT while Caddy, its child, does not, so Caddy stops first:
// the script must take that for the stop it is, not for a crash.
func TestDemoStopsCleanlyOnSIGINTWithoutATerminal(t *testing.T) {
	t.Parallel()
	d := startDemo(t, newDatabase(t))
	assert.Equal(t, http.StatusOK, newBrowser(t).get("http://127.0.0.1:"+strconv.Itoa(d.port)+"/assets/style.css").StatusCode,
		"the demo serves its site")
	text, err := d.stop()
	assert.NoError(t, err, "make demo stopped by SIGINT exits with 0:\n%s", text)
	assert.NotContains(t, text, "error:", "no false error")
	assert.Contains(t, text, "Demo stopped.")
	assert.Contains(t, text, "the first build compiles Caddy and its dependencies and takes a few minutes")
	assert.Contains(t, text, "compiled 100 of at most 250 packages", "the build shows its progress")
	assert.Contains(t, text, "compiled 150 of at most 250 packages", "and where it ended")
}

// On a warm build cache go build compiles a handful of packages: make demo
// says the build was up to date rather than "compiled 7 of at most 250".
func TestDemoSaysAWarmBuildWasUpToDate(t *testing.T) {
	t.Parallel()
	d := startDemo(t, newDatabase(t), "FAKE_GO_BUILT=7")
	text, err := d.stop()
	require.NoError(t, err, text)
	assert.Contains(t, text, "    up to date\n")
	assert.NotContains(t, text, "compiled 7")
}

// make demo makes a key for two-step sign-in and says so, and the demo's
// site offers it: signed in as the printed user, the account page has its
// section and the TOTP setup route gives a secret.
func TestDemoOffersTwoStepSignIn(t *testing.T) {
	t.Parallel()
	d := startDemo(t, newDatabase(t))
	text := d.out.String()
	assert.Contains(t, text, "Making a key for two-step sign-in: ./caddy pg-session secrets-key")

	b := newBrowser(t)
	resp := b.postJSON(d.url("/api/auth/login"), map[string]string{"username": "demo", "password": demoPassword(t, d)})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assertOffersTOTP(t, b, d.url)
	text, err := d.stop()
	assert.NoError(t, err, text)
}

// Run again on the same database, the demo makes a new key, so the
// authenticator set up in the first run could no longer be read: the demo
// user's two-step sign-in is removed with its password renewed, and the
// new password alone signs in.
func TestDemoRunAgainOnItsDatabaseSignsInWithTheNewPassword(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	first := startDemo(t, db)
	b := newBrowser(t)
	signIn := func(d *demoRun) response {
		return b.postJSON(d.url("/api/auth/login"), map[string]string{"username": "demo", "password": demoPassword(t, d)})
	}
	require.Equal(t, http.StatusOK, signIn(first).StatusCode)
	setup := b.postJSON(first.url("/api/auth/totp/setup"), map[string]any{})
	require.Equal(t, http.StatusOK, setup.StatusCode, setup.body)
	code, err := totp.GenerateCode(jsonField(t, setup.body, "secret"), time.Now())
	require.NoError(t, err)
	confirm := b.postJSON(first.url("/api/auth/totp/confirm"), map[string]string{"code": code})
	require.Equal(t, http.StatusOK, confirm.StatusCode, confirm.body)
	_, err = first.stop()
	require.NoError(t, err)

	second := startDemo(t, db)
	assert.Contains(t, second.out.String(), "./caddy pg-session user reset-2fa demo")
	resp := signIn(second)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assert.NotContains(t, resp.body, "second_factor", "the password alone signs in")
	_, err = second.stop()
	assert.NoError(t, err)
}

// demoPassword is the password the demo printed for its user.
func demoPassword(t *testing.T, d *demoRun) string {
	t.Helper()
	m := regexp.MustCompile(`Password +([A-Za-z0-9]{20})`).FindStringSubmatch(d.out.String())
	require.NotNil(t, m, "the demo prints the password:\n%s", d.out)
	return m[1]
}

// demo/Caddyfile run by hand, as its comment says, takes the key from
// PGSESSION_SECRETS_KEY. Not parallel: the variables are the process's.
func TestDemoCaddyfileByHandTakesTheKeyFromTheEnvironment(t *testing.T) {
	db := newDatabase(t)
	db.addUser(t, "alice", "correct horse battery")
	port := freePort(t)
	site, err := filepath.Abs("../demo/site")
	require.NoError(t, err)
	caddyfile, err := filepath.Abs("../demo/Caddyfile")
	require.NoError(t, err)
	t.Setenv("DATABASE_URL", db.url)
	t.Setenv("PGSESSION_SECRETS_KEY", "by-hand-secrets-key-0123456789-abcdef")
	t.Setenv("DEMO_PORT", strconv.Itoa(port))
	t.Setenv("DEMO_SITE_ROOT", site)
	url := func(path string) string { return "http://localhost:" + strconv.Itoa(port) + path }
	caddyproc.StartWithArgs(t, caddyBinary, url("/assets/style.css"), "run", "--config", caddyfile, "--adapter", "caddyfile")

	b := newBrowser(t)
	resp := b.postJSON(url("/api/auth/login"), map[string]string{"username": "alice", "password": "correct horse battery"})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	assertOffersTOTP(t, b, url)
}

// assertOffersTOTP checks that the site at url, to b signed in, offers
// two-step sign-in on its account page and sets up an authenticator.
func assertOffersTOTP(t *testing.T, b *browser, url func(string) string) {
	t.Helper()
	page := b.getPage(url("/account"))
	require.Equal(t, http.StatusOK, page.StatusCode, page.body)
	assert.Contains(t, page.body, "Two-step sign-in")
	assert.Contains(t, page.body, "Passkeys")
	setup := b.postJSON(url("/api/auth/totp/setup"), map[string]any{})
	require.Equal(t, http.StatusOK, setup.StatusCode, setup.body)
	assert.NotEmpty(t, jsonField(t, setup.body, "secret"), "a new authenticator secret")
}
