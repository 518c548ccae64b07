package integration

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/caddytest"
)

// fakeGo stands in for the go command in the demo test: building Caddy for
// real would take minutes on a cold cache, and what is tested is how the
// script reports the build, so it lists packages as `go build -v` does and
// copies the binary the tests built.
const fakeGo = `#!/bin/sh
case "$1" in
list) i=0; while [ $i -lt 250 ]; do echo "example.com/pkg$i"; i=$((i+1)); done ;;
build) i=0; while [ $i -lt 150 ]; do echo "example.com/pkg$i" >&2; i=$((i+1)); done; cp "$CADDY_BINARY" caddy ;;
*) echo "fake go: unexpected $*" >&2; exit 2 ;;
esac
`

// make demo, run without a terminal, says that the first build takes
// minutes and shows its progress, and stopping it with SIGINT ends it
// cleanly, with status 0 and no error. Without a terminal the shell
// ignores SIGINT while Caddy, its child, does not, so Caddy stops first:
// the script must take that for the stop it is, not for a crash.
func TestDemoStopsCleanlyOnSIGINTWithoutATerminal(t *testing.T) {
	t.Parallel()
	db := newDatabase(t)
	root := t.TempDir()
	require.NoError(t, os.CopyFS(filepath.Join(root, "demo"), os.DirFS("../demo")))
	bin := filepath.Join(root, "bin")
	require.NoError(t, os.Mkdir(bin, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(bin, "go"), []byte(fakeGo), 0o755))

	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// trap '' INT, then exec: the signal stays ignored in the script, as
	// it is for a job started in the background of a non-interactive shell.
	cmd := exec.CommandContext(ctx, "sh", "-c", `trap '' INT; exec bash demo/run.sh`)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "CADDY_BINARY="+caddyBinary,
		"DATABASE_URL="+db.url, "DEMO_PORT="+strconv.Itoa(port), "HOME="+root, "TMPDIR="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out caddytest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	require.Eventually(t, func() bool { return strings.Contains(out.String(), "Ctrl-C to stop") },
		60*time.Second, 50*time.Millisecond, "the demo did not come up:\n%s", &out)
	assert.Equal(t, http.StatusOK, newBrowser(t).get("http://127.0.0.1:"+strconv.Itoa(port)+"/assets/style.css").StatusCode,
		"the demo serves its site")
	// SIGINT to the whole group, as a Ctrl-C would send it.
	require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGINT))
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatalf("the demo did not stop on SIGINT:\n%s", &out)
	}
	text := out.String()
	assert.NoError(t, err, "make demo stopped by SIGINT exits with 0:\n%s", text)
	assert.NotContains(t, text, "error:", "no false error")
	assert.Contains(t, text, "Demo stopped.")
	assert.Contains(t, text, "the first build compiles Caddy and its dependencies and takes a few minutes")
	assert.Contains(t, text, "compiled 100 of at most 250 packages", "the build shows its progress")
	assert.Contains(t, text, "compiled 150 of at most 250 packages", "and where it ended")
}
