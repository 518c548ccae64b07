package pgsession

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The fuzz targets of this package. Each has a checked-in corpus in
// testdata/fuzz/<name>, run as ordinary tests by go test; make fuzz-short
// (part of make test) fuzzes each briefly and make fuzz for longer. A
// failing input found while fuzzing is written there too and becomes a
// regression test.

// FuzzSafeRedirect checks that the redirect after login never leaves the
// site: safeRedirect returns its input only when it is a path on this site,
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
		got := safeRedirect(target)
		if got == "/" {
			return
		}
		if got != target {
			t.Fatalf("safeRedirect(%q) = %q: neither the input nor \"/\"", target, got)
		}
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.HasPrefix(got, `/\`) {
			t.Fatalf("safeRedirect(%q) = %q: not a path starting with a single /", target, got)
		}
		for i := 0; i < len(got); i++ {
			// Browsers read \ as / and drop tabs and newlines anywhere in a URL.
			if c := got[i]; c < 0x20 || c == 0x7f || c == '\\' {
				t.Fatalf("safeRedirect(%q) = %q: has the byte %#x", target, got, c)
			}
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("safeRedirect(%q) = %q, which does not parse: %v", target, got, err)
		}
		if u.Scheme != "" || u.Host != "" || u.User != nil {
			t.Fatalf("safeRedirect(%q) = %q: scheme %q, host %q, user %v", target, got, u.Scheme, u.Host, u.User)
		}
		// What matters: resolved against the site, it stays on the site.
		if r := base.ResolveReference(u); r.Scheme != "https" || r.Host != "site.example" || r.User != nil {
			t.Fatalf("safeRedirect(%q) = %q resolves to %s, off the site", target, got, r)
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
// as readCredentials decodes it: one JSON object with no key but username,
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
		err := decodeJSONObject(r, &got, "username", "password", "remember")

		if len(body) > maxBodyBytes {
			if !errors.Is(err, errBodyTooLarge) {
				t.Fatalf("a body of %d bytes, over %d: err = %v, want errBodyTooLarge", len(body), maxBodyBytes, err)
			}
			return
		}
		if errors.Is(err, errBodyTooLarge) {
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

// errAt is how every error of the Caddyfile blocks ends: the file and line
// (NewTestDispenser's file is "Testfile"; no imports, so no import chain).
var errAt = regexp.MustCompile(`at Testfile:(\d+)$`)

// FuzzUnmarshalCaddyfile feeds arbitrary text as the body of a pg_session
// block, both the handler directive and the global option (the app). It
// never panics; an error names the file and a line of the input; a
// handler or app it accepts survives the trip through JSON that caddy adapt
// makes, with every option among its allowed values.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"",
		"public /assets/* /favicon.ico\ncookie_name __Host-session\nsecure on\nsame_site none",
		"same_site none",
		"lifetime 0",
		"remember_lifetime 0\nidle_timeout 30m\nrenewal_interval 1m",
		"renewal_interval 5m\nidle_timeout 1m",
		"cache_control off\nmax_registrations_per_ip 3",
		"login_path login",
		"trusted_origins https://app.example.com http://x/y",
		"admin_token {env.ADMIN_TOKEN}\ncross_origin_protection off",
		"database_url {env.DATABASE_URL}\nschema pgsession\ncleanup_interval 1h\nmax_connections 8",
		"public {\n}",
		"}\n{",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		text := "pg_session {\n" + input + "\n}"
		lines := strings.Count(text, "\n") + 1

		d, ok := testDispenser(text)
		if !ok {
			return
		}
		var h Handler
		err := h.UnmarshalCaddyfile(d)
		if err != nil {
			checkErrAt(t, "handler", text, lines, err)
		} else {
			checkHandler(t, text, &h)
		}

		d, _ = testDispenser(text)
		var a App
		err = a.UnmarshalCaddyfile(d)
		if err != nil {
			checkErrAt(t, "app", text, lines, err)
		} else {
			if a.CleanupInterval < 0 || a.MaxConnections < 0 {
				t.Fatalf("%q: app accepted with cleanup_interval %v and max_connections %d", text, a.CleanupInterval, a.MaxConnections)
			}
			var back App
			roundTrip(t, text, &a, &back)
		}
	})
}

// testDispenser returns caddyfile.NewTestDispenser(text), unless that would
// end the process: NewTestDispenser calls log.Fatalf on text the lexer
// refuses (an unclosed quote or heredoc), which is Caddy's test helper and
// not the parsing under test, so such text is skipped. Text with {$ is
// lexed as is, without NewTestDispenser's expansion of environment
// variables, since it cannot be known in advance whether the expanded text
// would lex.
func testDispenser(text string) (*caddyfile.Dispenser, bool) {
	tokens, err := caddyfile.Tokenize([]byte(text), "Testfile")
	if err != nil {
		return nil, false
	}
	if strings.Contains(text, "{$") {
		return caddyfile.NewDispenser(tokens), true
	}
	return caddyfile.NewTestDispenser(text), true
}

func checkErrAt(t *testing.T, block, text string, lines int, err error) {
	t.Helper()
	m := errAt.FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("%q: %s error without file and line: %v", text, block, err)
	}
	if n, _ := strconv.Atoi(m[1]); n < 1 || n > lines {
		t.Fatalf("%q: %s error at line %d of %d: %v", text, block, n, lines, err)
	}
}

func checkHandler(t *testing.T, text string, h *Handler) {
	t.Helper()
	oneOf := func(opt, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		t.Fatalf("%q: handler accepted with %s %q, not one of %q", text, opt, v, allowed)
	}
	oneOf("same_site", h.SameSite, "", "lax", "strict", "none")
	oneOf("secure", h.Secure, "", "auto", "on", "off")
	oneOf("cross_origin_protection", h.CrossOriginProtection, "", "on", "off")
	oneOf("cache_control", h.CacheControl, "", "on", "off")
	if h.IdleTimeout > 0 && h.RenewalInterval > h.IdleTimeout/2 {
		t.Fatalf("%q: handler accepted with renewal_interval %v and idle_timeout %v", text, h.RenewalInterval, h.IdleTimeout)
	}
	if h.SameSite == "none" && h.Secure != "on" {
		t.Fatalf("%q: handler accepted with same_site none and secure %q", text, h.Secure)
	}
	if h.CookieName != "" && !validCookieName(h.CookieName) {
		t.Fatalf("%q: handler accepted with cookie_name %q", text, h.CookieName)
	}
	if (strings.HasPrefix(h.CookieName, "__Host-") || strings.HasPrefix(h.CookieName, "__Secure-")) && h.Secure == "off" {
		t.Fatalf("%q: handler accepted with cookie_name %q and secure off", text, h.CookieName)
	}
	for opt, p := range map[string]string{"login_path": h.LoginPath, "logout_path": h.LogoutPath, "api_path": h.APIPath, "account_path": h.AccountPath} {
		if p != "" && !strings.HasPrefix(p, "/") {
			t.Fatalf("%q: handler accepted with %s %q", text, opt, p)
		}
	}
	if h.Lifetime < 0 || h.IdleTimeout < 0 || h.RenewalInterval < 0 || h.FailedLoginWindow < 0 ||
		h.RememberLifetime != nil && *h.RememberLifetime < 0 ||
		h.MaxSessionsPerUser < 0 || h.MaxFailedLoginsPerAccount < 0 || h.MaxFailedLoginsPerIP < 0 || h.MaxRegistrationsPerIP < 0 {
		t.Fatalf("%q: handler accepted with a negative value: %+v", text, h)
	}
	for _, o := range h.TrustedOrigins {
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.Count(o, "/") != 2 {
			t.Fatalf("%q: handler accepted with trusted origin %q", text, o)
		}
	}
	if h.AdminToken != "" && !strings.Contains(h.AdminToken, "{") && len(h.AdminToken) < minAdminTokenLength {
		t.Fatalf("%q: handler accepted with an admin_token of %d characters", text, len(h.AdminToken))
	}
	var back Handler
	roundTrip(t, text, h, &back)
}

// roundTrip checks that v comes back equal from the JSON caddy adapt makes of it.
func roundTrip[T any](t *testing.T, text string, v, back *T) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%q: accepted, but does not marshal: %v", text, err)
	}
	if err := json.Unmarshal(data, back); err != nil {
		t.Fatalf("%q: accepted as %s, which does not unmarshal: %v", text, data, err)
	}
	if !reflect.DeepEqual(v, back) {
		t.Fatalf("%q: accepted as %+v, but through JSON %s it comes back as %+v", text, *v, data, *back)
	}
}
