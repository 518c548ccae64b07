package request

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The fuzz targets of this package. Each has a checked-in corpus in
// testdata/fuzz/<name>, run as ordinary tests by go test; make fuzz-short
// (part of make test) fuzzes each briefly and make fuzz for longer. They
// live here, away from Caddy, so that their instrumented builds are small.

// maxBodyBytes is the plugin's limit on a route's body.
const maxBodyBytes = 64 << 10

// credentials is the login body, as the plugin reads it.
type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Remember bool   `json:"remember"`
}

// FuzzSafeRedirect checks that the redirect after login never leaves the
// site: SafeRedirect returns its input only when it is a path on this site,
// and "/" otherwise.
func FuzzSafeRedirect(f *testing.F) {
	for _, seed := range []string{
		"/", "/docs/page.html?lang=en#top", "", "//evil.example", `/\evil.example`,
		"/\t/evil.example", "https://evil.example", "/%2F%2Fevil.example", "/.//evil.example",
		"/@evil.example", "/ok/../../evil.example",
	} {
		f.Add(seed)
	}
	base, err := url.Parse("https://site.example/login")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, target string) {
		got := SafeRedirect(target)
		if got == "/" {
			return
		}
		if got != target {
			t.Fatalf("SafeRedirect(%q) = %q: neither the input nor \"/\"", target, got)
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.HasPrefix(got, `/\`) {
			t.Fatalf("SafeRedirect(%q) = %q: not a path starting with a single /", target, got)
		}
		for i := 0; i < len(got); i++ {
			// Browsers read \ as / and drop tabs and newlines anywhere in a URL.
			if c := got[i]; c < 0x20 || c == 0x7f || c == '\\' {
				t.Fatalf("SafeRedirect(%q) = %q: has the byte %#x", target, got, c)
			}
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("SafeRedirect(%q) = %q, which does not parse: %v", target, got, err)
		}
		if u.Scheme != "" || u.Host != "" || u.User != nil {
			t.Fatalf("SafeRedirect(%q) = %q: scheme %q, host %q, user %v", target, got, u.Scheme, u.Host, u.User)
		}
		// What matters: resolved against the site, it stays on the site.
		if r := base.ResolveReference(u); r.Scheme != "https" || r.Host != "site.example" || r.User != nil {
			t.Fatalf("SafeRedirect(%q) = %q resolves to %s, off the site", target, got, r)
		}

		// And so does the Location header the login route sends with it
		// (http.Redirect cleans the path).
		w := httptest.NewRecorder()
		http.Redirect(w, httptest.NewRequest(http.MethodPost, base.String(), nil), got, http.StatusSeeOther)
		loc := w.Header().Get("Location")
		if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.ContainsAny(loc, "\\\t\r\n") {
			t.Fatalf("Location for %q is %q", got, loc)
		}
		lu, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("Location for %q is %q, which does not parse: %v", got, loc, err)
		}
		if r := base.ResolveReference(lu); r.Host != "site.example" || r.User != nil {
			t.Fatalf("Location for %q is %q, which resolves to %s, off the site", got, loc, r)
		}
	})
}

// FuzzDecodeLoginBody checks the JSON body of the login and register routes
// as the plugin decodes it: one JSON object with no key but username,
// password and remember, none twice, read the same way by any JSON parser.
func FuzzDecodeLoginBody(f *testing.F) {
	for _, seed := range []string{
		`{"username":"alice","password":"correct horse","remember":true}`,
		`{}`,
		`{"username":"alice","username":"admin","password":"x"}`,
		`{"username":"alice","Username":"admin"}`,
		`{"user\u006eame":"a","username":"b"}`,
		`{"username":"a"}{"username":"b"}`,
		`{"remember":"yes"}`,
		`[{"username":"a"}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Add(append(append([]byte(`{"username":"`), bytes.Repeat([]byte("a"), maxBodyBytes)...), `"}`...))
	f.Fuzz(func(t *testing.T, body []byte) {
		var got credentials
		r := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(body)), maxBodyBytes)
		err := DecodeJSONObject(r, &got, "username", "password", "remember")

		if len(body) > maxBodyBytes {
			if !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("a body of %d bytes, over %d: err = %v, want ErrBodyTooLarge", len(body), maxBodyBytes, err)
			}
			return
		}
		if errors.Is(err, ErrBodyTooLarge) {
			t.Fatalf("a body of %d bytes, within %d, refused as too large", len(body), maxBodyBytes)
		}

		keys, object := topLevelKeys(body)
		dup, unknown := "", ""
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] && dup == "" {
				dup = k
			}
			seen[k] = true
			if k != "username" && k != "password" && k != "remember" && unknown == "" {
				unknown = k
			}
		}
		var plain credentials
		strict := json.NewDecoder(bytes.NewReader(body))
		strict.DisallowUnknownFields()
		typesOK := object && strict.Decode(&plain) == nil

		if err != nil {
			// Refused: fine for anything but a clean object of the known
			// fields with the right types.
			if object && json.Valid(body) && dup == "" && unknown == "" && typesOK {
				t.Fatalf("%q refused (%v), but it is one JSON object of known fields, none twice", body, err)
			}
			return
		}
		if !object || !json.Valid(body) {
			t.Fatalf("%q accepted, but it is not one JSON object", body)
		}
		if dup != "" {
			t.Fatalf("%q accepted, but it gives %q twice", body, dup)
		}
		if unknown != "" {
			t.Fatalf("%q accepted, but it has the unknown key %q", body, unknown)
		}
		var again credentials
		if err := json.Unmarshal(body, &again); err != nil {
			t.Fatalf("%q accepted, but encoding/json refuses it: %v", body, err)
		}
		if got.Username != again.Username || got.Password != again.Password || got.Remember != again.Remember {
			t.Fatalf("%q read as %+v, but encoding/json reads %+v", body, got, again)
		}
	})
}

// topLevelKeys returns the keys of the JSON object body, in order and with
// repeats, reading it token by token, and whether body is exactly one JSON
// object (whitespace around it aside).
func topLevelKeys(body []byte) ([]string, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var keys []string
	for {
		tok, err := dec.Token()
		if err != nil {
			return keys, false
		}
		if tok == json.Delim('}') {
			break
		}
		key, ok := tok.(string)
		if !ok {
			return keys, false
		}
		keys = append(keys, key)
		// Skip the value, however deeply nested.
		depth := 0
		for {
			tok, err := dec.Token()
			if err != nil {
				return keys, false
			}
			switch tok {
			case json.Delim('{'), json.Delim('['):
				depth++
			case json.Delim('}'), json.Delim(']'):
				depth--
			}
			if depth == 0 {
				break
			}
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return keys, false
	}
	return keys, true
}
