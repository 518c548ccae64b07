package pgsession

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/cli"
)

// The command line, run in process, for tests whose story goes through it
// (its own tests are in internal/cli).

// cliResult is what one run of `caddy pg-session` did.
type cliResult struct {
	stdout, stderr string
	err            error
}

// all is everything the command showed.
func (r cliResult) all() string {
	s := r.stdout + r.stderr
	if r.err != nil {
		s += r.err.Error()
	}
	return s
}

// cliDB runs `caddy pg-session --database-url url ARGS...` with stdin as its input.
func cliDB(t *testing.T, url, stdin string, args ...string) cliResult {
	t.Helper()
	c := cli.Command()
	cmd := &cobra.Command{Use: c.Name, Short: c.Short, Long: c.Long}
	c.CobraFunc(cmd)
	var stdout, stderr bytes.Buffer
	cmd.SetArgs(append([]string{"--database-url", url}, args...))
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	err := cmd.Execute()
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// cliOK runs the command and fails the test if it fails.
func cliOK(t *testing.T, url, stdin string, args ...string) string {
	t.Helper()
	r := cliDB(t, url, stdin, args...)
	require.NoError(t, r.err, "pg-session %v; stderr: %s", args, r.stderr)
	return r.stdout
}
