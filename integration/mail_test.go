package integration

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The smtp global option with Caddy itself: `caddy validate` checks it
// without reaching the mail server or needing the password's variable,
// and `caddy run` says which variable it needs.
func TestSMTPOptionWithCaddyValidateAndRun(t *testing.T) {
	t.Parallel()
	// A mail server that only counts who comes: nobody should.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	var connections atomic.Int32
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			connections.Add(1)
			conn.Close()
		}
	}()
	config := func(host, tls string) string {
		return fmt.Sprintf(`{
	admin off
	pg_session {
		database_url postgres://caddy@127.0.0.1:1/sessions
		smtp {
			host %s
			port %d
			username app
			password {env.PGSESSION_TEST_SMTP_PASSWORD_NEVER_SET}
			from "Example <site@example.com>"
			tls %s
		}
	}
}
http://127.0.0.1:%d {
	pg_session
	respond "hello"
}
`, host, l.Addr().(*net.TCPAddr).Port, tls, freePort(t))
	}

	out, err := caddyCommand(t, "validate", config("127.0.0.1", "starttls"))
	require.NoError(t, err, out)
	assert.Contains(t, out, "Valid configuration")

	out, err = caddyCommand(t, "run", config("127.0.0.1", "starttls"))
	require.Error(t, err, "the password's variable is not set")
	assert.Contains(t, out, "smtp password")
	assert.Contains(t, out, "PGSESSION_TEST_SMTP_PASSWORD_NEVER_SET")
	assert.Zero(t, connections.Load(), "neither validate nor a failed start reached the mail server")

	out, err = caddyCommand(t, "validate", config("smtp.example.com", "off"))
	require.Error(t, err)
	assert.Contains(t, out, "smtp tls off with a username would send the password in the clear to smtp.example.com")
	assert.Contains(t, out, "Caddyfile:11")
}
