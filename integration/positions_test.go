package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Two mistakes show only where the directive meets the global option; caddy
// validate names the file and line of each, not just Caddy's long chain of
// "provision http: server srv0: …".
func TestValidateNamesTheLineOfMistakesAcrossBlocks(t *testing.T) {
	t.Parallel()
	t.Run("second_factor required without secrets_key", func(t *testing.T) {
		t.Parallel()
		out, err := caddyCommand(t, "validate", `{
	pg_session {
		database_url postgres://127.0.0.1/app
	}
}
http://localhost {
	pg_session {
		second_factor required
	}
	file_server
}
`)
		require.Error(t, err)
		assert.Contains(t, out, "second_factor required needs secrets_key in the pg_session global option")
		assert.Contains(t, out, "/Caddyfile:8", "the error names the file and the option's line")
	})
	t.Run("the directive without the global option", func(t *testing.T) {
		t.Parallel()
		out, err := caddyCommand(t, "validate", "http://localhost {\n\tpg_session\n\tfile_server\n}\n")
		require.Error(t, err)
		assert.Regexp(t, `add a global option block .*, at \S*/Caddyfile:2`, out,
			"the warning names the file and the directive's line, with the fix")
	})
}

// JSON refuses a 0 the Caddyfile refuses: the field cannot tell 0 from
// unset, but a 0 written down is not quietly taken for the default.
func TestValidateRefusesAZeroJSONAsTheCaddyfileDoes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "caddy.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"apps": {
	"pg_session": {"database_url": "postgres://127.0.0.1/app"},
	"http": {"servers": {"srv0": {"listen": [":0"], "routes": [{"handle": [
		{"handler": "pg_session", "lifetime": 0}
	]}]}}}
}}`), 0o600))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, caddyBinary, "validate", "--config", path).CombinedOutput()
	require.Error(t, err, "%s", out)
	assert.Contains(t, string(out), `lifetime must be positive, not \"0\"`)
}
