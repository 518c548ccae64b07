//go:build gatepath

package pgsession

import (
	"cmp"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/stretchr/testify/require"
)

// TestGatedRequestPath serves GATEPATH_REQUESTS requests (1 without it)
// whose session is in memory, on one connection, from the gate to the
// site's response. It is a tool rather than a test: make gate-path runs
// it under coverage with one request and with two, and the blocks the
// second request ran are the way one request takes (the connection's first
// also hashes its token).
func TestGatedRequestPath(t *testing.T) {
	n, err := strconv.Atoi(cmp.Or(os.Getenv("GATEPATH_REQUESTS"), "1"))
	require.NoError(t, err, "GATEPATH_REQUESTS")
	h, token, conn := gateFromMemory()
	site := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "text/css")
		_, err := w.Write([]byte("body { margin: 0 }"))
		return err
	})
	for range n {
		r := httptest.NewRequest(http.MethodGet, "/assets/site.css", nil)
		r.Header.Set("Cookie", "session="+token)
		r = r.WithContext(context.WithValue(conn, caddy.ReplacerCtxKey, caddy.NewReplacer()))
		w := httptest.NewRecorder()
		require.NoError(t, h.ServeHTTP(w, r, site))
		require.Equal(t, http.StatusOK, w.Code)
	}
}
