package nginxtest

import (
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
)

// A started nginx serves the test's server block on its port, and once
// the test's cleanup has run, nothing answers there any more.
func TestNginxStartServesAndStops(t *testing.T) {
	var n *Server
	t.Run("serves", func(t *testing.T) {
		n = Start(t, func(port int) string {
			return fmt.Sprintf("server {\n\tlisten 127.0.0.1:%d;\n\tlocation / { return 200 \"hello from nginx\\n\"; }\n}\n", port)
		})
		resp, err := http.Get(n.URL("/x"))
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "hello from nginx\n", string(body))
	})
	_, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(n.URL("/x"))
	assert.Error(t, err, "nginx still answers after the test that started it ended")
}

// A config nginx refuses fails the start at once with nginx's own words,
// rather than after the ready timeout.
func TestNginxStartReportsABadConfig(t *testing.T) {
	bin, err := Find()
	require.NoError(t, err)
	s := &Server{dir: t.TempDir(), log: new(caddyproc.SyncBuffer)}
	err = s.start(bin, 1, "server { listen 127.0.0.1:1; no_such_directive on; }")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown directive "no_such_directive"`)
}
