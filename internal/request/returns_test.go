package request

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// portalReturns is the rule of a portal at https://auth.example.com with
// cookie_domain example.com and one trusted origin.
var portalReturns = Returns{Domain: "example.com", Origins: []string{"https://partner.example.net"}, Scheme: "https"}

// The open-redirect payloads the red team used on the single-site
// redirect, and their single sign-on cousins: each must be refused.
var openRedirects = []string{
	"https://evil.example", "//evil.example", "/\\evil.example", "https:evil.example", "https:/evil.example",
	"https://example.com.evil.example/", "https://evilexample.com/", "https://example.com@evil.example/",
	"https://docs.example.com:443@evil.example/", `https://evil.example\@docs.example.com/`,
	"https://evil.example#.example.com", "https://evil.example?.example.com", "https://evil.example/.example.com",
	"https://evil.example%2f.example.com/", "https://evil.example%2F@docs.example.com/", "HTTPS://evil.example/",
	"javascript:alert(1)", "javascript://docs.example.com/%0aalert(1)", "data:text/html,<script>alert(1)</script>",
	"https://docs.example.com\t.evil.example/", "https://docs.example.com\n/", " https://docs.example.com/",
	"https://docs.exаmple.com/", "https://DOCS.EXAMPLE.COM.evil.example/", "https://127.0.0.1/", "https://[::1]/",
	"http://docs.example.com/", "ftp://docs.example.com/", "https://docs.example.com:/", "https://.example.com/",
	"https://docs..example.com/", "https://docs.example.com./", "https://partner.example.net.evil.example/",
	"https://partner.example.net:8443/", "http://partner.example.net/", "https://user:pw@docs.example.com/",
	"https:///docs.example.com/", "https://\\docs.example.com/", "https://docs.example.com\\@evil.example/",
}

func TestReturnsRefusesOpenRedirects(t *testing.T) {
	for _, target := range openRedirects {
		if portalReturns.Allows(target) {
			t.Errorf("Allows(%q) = true: a sign-in would end off the sites of the cookie domain", target)
		}
	}
}

func TestReturnsAllowsTheSitesOfTheDomain(t *testing.T) {
	for _, target := range []string{
		"https://example.com/", "https://docs.example.com", "https://docs.example.com/guide/page.html?lang=en#top",
		"https://a.b.example.com:8443/x", "https://partner.example.net/welcome", "https://xn--bcher-kva.example.com/",
	} {
		if !portalReturns.Allows(target) {
			t.Errorf("Allows(%q) = false: a site of the cookie domain", target)
		}
	}
	plain := Returns{Domain: "example.test", Scheme: "http"}
	if !plain.Allows("http://docs.example.test:8080/page") {
		t.Error("a plain-HTTP portal refused a plain-HTTP site of its domain")
	}
	if (Returns{Scheme: "https"}).Allows("https://docs.example.com/") {
		t.Error("no cookie domain and no trusted origins allowed an absolute address")
	}
}

// FuzzSafeReturn checks that an address Returns allows is one a browser
// takes to a host on the cookie domain or a trusted origin, however it is
// written, and that the Location header sending it there says the same.
func FuzzSafeReturn(f *testing.F) {
	for _, seed := range append(openRedirects, "https://docs.example.com/page", "https://partner.example.net/") {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, target string) {
		if !portalReturns.Allows(target) {
			return
		}
		if !strings.HasPrefix(target, "https://") || strings.ContainsAny(target, "\\ \t\r\n") {
			t.Fatalf("Allows(%q): not a plain https address", target)
		}
		u, err := url.Parse(target)
		if err != nil {
			t.Fatalf("Allows(%q), which does not parse: %v", target, err)
		}
		authority := strings.TrimPrefix(target, "https://")
		if i := strings.IndexAny(authority, "/?#"); i >= 0 {
			authority = authority[:i]
		}
		if strings.Contains(authority, "@") {
			t.Fatalf("Allows(%q): user info in the authority %q", target, authority)
		}
		host := authority
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			host = host[:i]
		}
		if host != u.Hostname() || strings.ToLower(host) != host {
			t.Fatalf("Allows(%q): the host as written, %q, is not the host parsed, %q", target, host, u.Hostname())
		}
		onDomain := host == "example.com" || strings.HasSuffix(host, ".example.com")
		if !onDomain && "https://"+authority != "https://partner.example.net" {
			t.Fatalf("Allows(%q): host %q is neither on example.com nor a trusted origin", target, host)
		}
		w := httptest.NewRecorder()
		http.Redirect(w, httptest.NewRequest(http.MethodGet, "https://auth.example.com/login", nil), target, http.StatusSeeOther)
		if loc := w.Header().Get("Location"); loc != target {
			t.Fatalf("Location for %q is %q", target, loc)
		}
	})
}
