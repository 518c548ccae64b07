package cli_test

import (
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	// The plugin's root package registers the command in its init.
	_ "github.com/pgsession/caddy-pgsession"
	"github.com/pgsession/caddy-pgsession/internal/cli"
	"github.com/pgsession/caddy-pgsession/migrations"
)

func TestCommandIsRegisteredWithCaddy(t *testing.T) {
	t.Parallel()
	registered, ok := caddycmd.Commands()["pg-session"]
	require.True(t, ok, "init registers caddy pg-session")
	require.NotNil(t, registered.CobraFunc)
	cmd := &cobra.Command{Use: "pg-session"}
	registered.CobraFunc(cmd)
	for _, path := range [][]string{
		{"migrate"}, {"user", "add"}, {"user", "passwd"}, {"user", "delete"}, {"user", "list"},
		{"sessions", "list"}, {"sessions", "revoke"}, {"token", "add"}, {"token", "list"}, {"token", "revoke"}, {"stats"},
		{"group", "add"}, {"group", "delete"}, {"group", "list"}, {"user", "groups"}, {"user", "join"}, {"user", "leave"},
		{"check-access"},
	} {
		found, rest, err := cmd.Find(path)
		require.NoError(t, err, path)
		assert.Empty(t, rest, path)
		assert.Equal(t, path[len(path)-1], found.Name())
	}
	for _, flag := range []string{"database-url", "schema"} {
		assert.NotNil(t, cmd.PersistentFlags().Lookup(flag), flag)
	}
	assert.Equal(t, migrations.DefaultSchema, cmd.PersistentFlags().Lookup("schema").DefValue)
	assert.NotNil(t, cli.PublicMatcher, "init gives check-access the gate's matcher of public paths")
}
