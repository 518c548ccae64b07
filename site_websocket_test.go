package pgsession

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pgsession/caddy-pgsession/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A WebSocket through Caddy's reverse_proxy ends with its session.

// A WebSocket through Caddy's reverse_proxy (a 101, then the connection
// taken over) is ended with its session: the server closes the connection.
func TestAWebSocketThroughReverseProxyEndsWithItsSession(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	ws := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			base64.StdEncoding.EncodeToString(sum[:]))
		rw.Flush()
		io.Copy(io.Discard, conn) // until the proxy closes it
	})
	proxy, proxyLog := caddyReverseProxy(t, ws.URL)
	a := startSite(t, siteOptions{db: db.url, next: proxy})
	waitListening(t, a)
	token, _ := db.sessionInDB(t, alice)

	conn, err := net.Dial("tcp", strings.TrimPrefix(a.url(""), "http://"))
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "GET /socket HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nCookie: %s\r\n\r\n", strings.TrimPrefix(a.url(""), "http://"), cookieHeader(token))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)

	db.exec(t, `DELETE FROM pgsession.sessions WHERE id = $1`, string(store.HashToken(token)))
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.Copy(io.Discard, resp.Body)
	var timeout net.Error
	require.False(t, errors.As(err, &timeout) && timeout.Timeout(), "the WebSocket outlived its session")
	// Counted once the handler has returned, a moment after the close.
	require.Eventually(t, func() bool { return a.metric(t, "requests_ended_total", "when", "during_response") == 1 },
		10*time.Second, time.Millisecond)
	assert.Empty(t, errorLines(a.logEntries(t)))
	assert.Empty(t, errorLines(proxyLog()))
}
