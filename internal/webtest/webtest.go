// Package webtest is the HTTP client side of the end-to-end tests, shared
// by the in-process tests and those that run the Caddy binary: a browser
// with a cookie jar that shows every redirect, and a bare client that sends
// exactly what it is given, as an attacker's script would.
package webtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// noRedirects makes a client return each redirect, so tests see every 303.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// NewBrowser returns a client with a cookie jar that does not follow
// redirects; transport may be nil for Go's default.
func NewBrowser(t testing.TB, transport http.RoundTripper) (*http.Client, *cookiejar.Jar) {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, Transport: transport, Timeout: 30 * time.Second, CheckRedirect: noRedirects}, jar
}

// NewBare returns a client without a cookie jar that does not follow
// redirects; transport may be nil for Go's default.
func NewBare(transport http.RoundTripper) *http.Client {
	return &http.Client{Transport: transport, Timeout: 30 * time.Second, CheckRedirect: noRedirects}
}

// Request builds a request with body (nil for none) and header pairs.
func Request(t testing.TB, method, rawURL string, body io.Reader, header ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// JSONRequest builds a request with v as its JSON body (none when nil) and header pairs.
func JSONRequest(t testing.TB, method, rawURL string, v any, header ...string) *http.Request {
	t.Helper()
	if v == nil {
		return Request(t, method, rawURL, nil, header...)
	}
	return Request(t, method, rawURL, strings.NewReader(JSONText(t, v)),
		append([]string{"Content-Type", "application/json"}, header...)...)
}

// FormRequest builds a POST of an HTML form.
func FormRequest(t testing.TB, rawURL string, form url.Values) *http.Request {
	t.Helper()
	return Request(t, http.MethodPost, rawURL, strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded")
}

// Do sends req and returns the response with its body read.
func Do(t testing.TB, client *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := client.Do(req)
	require.NoError(t, err, "%s %s", req.Method, req.URL)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

// SendRaw sends one request with body (none when empty) and header pairs,
// exactly as given, with client.
func SendRaw(t testing.TB, client *http.Client, method, rawURL, body string, header ...string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return Do(t, client, Request(t, method, rawURL, rd, header...))
}

// JSONText is v as JSON.
func JSONText(t testing.TB, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	return string(data)
}

// Decode reads body as JSON into a value of type T.
func Decode[T any](t testing.TB, body string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(body), &v), "body: %s", body)
	return v
}

// SessionCookie returns the value of the cookie name the jar holds for rawURL, or "".
func SessionCookie(jar *cookiejar.Jar, rawURL, name string) string {
	u, _ := url.Parse(rawURL)
	for _, ck := range jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}
