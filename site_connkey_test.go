package pgsession

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A connection remembers the key of the last token it carried, so that the
// gate hashes a browser's token once per connection. A connection that
// carries many users' tokens, as a proxy's does, must still get each
// request its own user, and a token that differs from the last one in a
// single character must not pass for it.
func TestOneConnectionCarryingManyUsersTokens(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse battery")
	bob := db.addUser(t, "bob", "correct horse battery")
	aliceToken, _ := db.sessionInDB(t, alice)
	bobToken, _ := db.sessionInDB(t, bob)
	// The same length and shape as a real token, one character off.
	last := aliceToken[len(aliceToken)-1]
	forged := aliceToken[:len(aliceToken)-1] + map[bool]string{true: "A", false: "B"}[last != 'A']
	answers := map[string]string{aliceToken: "200 hello alice", bobToken: "200 hello bob", forged: "401", "": "401"}

	t.Run("one HTTP/1.1 connection, one request after another", func(t *testing.T) {
		t.Parallel()
		s := startSite(t, siteOptions{db: db.url})
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.url(""), "http://"))
		require.NoError(t, err)
		defer conn.Close()
		r := bufio.NewReader(conn)
		for i, token := range []string{aliceToken, aliceToken, bobToken, bobToken, aliceToken, forged, forged,
			aliceToken, "", bobToken, forged, bobToken} {
			cookie := ""
			if token != "" {
				cookie = "Cookie: " + cookieHeader(token) + "\r\n"
			}
			_, err := fmt.Fprintf(conn, "GET /page HTTP/1.1\r\nHost: site\r\nAccept: application/json\r\n%s\r\n", cookie)
			require.NoError(t, err)
			resp, err := http.ReadResponse(r, nil)
			require.NoError(t, err, "request %d", i)
			assert.Equal(t, answers[token], answer(t, resp), "request %d", i)
		}
	})

	t.Run("one HTTP/2 connection, requests at once", func(t *testing.T) {
		t.Parallel()
		s := startSite(t, siteOptions{db: db.url, http2: true})
		client := &http.Client{Transport: newTransport()}
		defer client.CloseIdleConnections()
		var mu sync.Mutex
		conns := map[string]bool{}
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			mu.Lock()
			conns[info.Conn.LocalAddr().String()] = true
			mu.Unlock()
		}}
		// One request first, so that the rest find its connection.
		require.Equal(t, answers[aliceToken], get(t, client, s, aliceToken, trace))
		tokens := []string{aliceToken, bobToken, forged}
		var wg sync.WaitGroup
		for i := range 200 { // fewer than the 250 streams a Go server allows at once
			wg.Go(func() {
				token := tokens[i%len(tokens)]
				assert.Equal(t, answers[token], get(t, client, s, token, trace), "request %d", i)
			})
		}
		wg.Wait()
		assert.Len(t, conns, 1, "every request went over one connection")
	})
}

// get sends a request for a page with token and returns its status and,
// for a 200, its body.
func get(t *testing.T, client *http.Client, s *testSite, token string, trace *httptrace.ClientTrace) string {
	req, err := http.NewRequest(http.MethodGet, s.url("/page"), nil)
	if !assert.NoError(t, err) {
		return ""
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Cookie", cookieHeader(token))
	resp, err := client.Do(req)
	if !assert.NoError(t, err) {
		return ""
	}
	assert.Equal(t, 2, resp.ProtoMajor)
	return answer(t, resp)
}

// answer is a response's status and, for a 200, its body.
func answer(t *testing.T, resp *http.Response) string {
	defer resp.Body.Close()
	var body strings.Builder
	_, err := bufio.NewReader(resp.Body).WriteTo(&body)
	assert.NoError(t, err)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprint(resp.StatusCode)
	}
	return fmt.Sprintf("%d %s", resp.StatusCode, body.String())
}
