package web

import (
	"crypto/sha256"
	"encoding/base64"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// scriptElements returns the text of each <script> element of page.
func scriptElements(page string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?s)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1) {
		if strings.TrimSpace(m[1]) != "" {
			out = append(out, "attributes:"+m[1])
			continue
		}
		out = append(out, m[2])
	}
	return out
}

// withoutScript is page with its <script> element removed, to check the
// rest as any built-in page.
func withoutScript(page string) string {
	return regexp.MustCompile(`(?s)<script>.*?</script>`).ReplaceAllString(page, "")
}

func passkeyPages(t *testing.T) map[string]string {
	return map[string]string{
		"login": render(t, DefaultLoginTemplate(), LoginPage{Action: "/login", Redirect: "/docs/", PasskeyAPI: "/api/auth"}),
		"account": renderAccount(t, AccountPage{Username: "alice", Action: "/account", LogoutAction: "/logout",
			PasskeyAPI: "/api/auth", PasskeyAdded: "/account?done=passkey-added",
			Passkeys: []AccountPasskey{{ID: "a2V5LTE", Name: "Laptop", CreatedAt: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)}}}),
	}
}

// The one script is inline, is passkey.js byte for byte, and is what
// ScriptHash allows: a CSP with it runs the script and nothing else.
func TestPasskeyScriptMatchesItsHash(t *testing.T) {
	if !regexp.MustCompile(`^'sha256-[A-Za-z0-9+/]{43}='$`).MatchString(ScriptHash()) {
		t.Fatalf("ScriptHash() = %q, not a CSP sha256 source expression", ScriptHash())
	}
	raw, err := os.ReadFile("passkey.js")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(string(raw)), "</script") {
		t.Fatal("passkey.js contains </script")
	}
	for name, page := range passkeyPages(t) {
		scripts := scriptElements(page)
		if len(scripts) != 1 {
			t.Fatalf("%s page: %d script elements, want 1: %q", name, len(scripts), scripts)
		}
		if scripts[0] != normalizeNewlines(string(raw)) {
			t.Errorf("%s page: html/template altered the script", name)
		}
		sum := sha256.Sum256([]byte(scripts[0]))
		if got := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; got != ScriptHash() {
			t.Errorf("%s page: hash of the rendered script = %s, ScriptHash() = %s", name, got, ScriptHash())
		}
		assertSelfContained(t, withoutScript(page))
	}
}

// Without JavaScript nothing of passkeys shows but the list and its
// remove buttons, which are plain forms.
func TestPasskeyControlsHiddenUntilTheScriptShowsThem(t *testing.T) {
	pages := passkeyPages(t)
	login := pages["login"]
	if !regexp.MustCompile(`<div data-passkey hidden>\s*<p class="divider">.*\s*<button type="button" class="secondary" data-passkey-sign-in>Sign in with a passkey</button>`).MatchString(login) {
		t.Errorf("the login page's passkey button is not in a hidden block:\n%s", login)
	}
	if !strings.Contains(login, `data-passkey-api="/api/auth"`) {
		t.Error("the login page does not name the API path for the script")
	}
	account := pages["account"]
	for _, want := range []string{
		`<form data-passkey data-passkey-add data-passkey-done="/account?done=passkey-added" aria-label="Add a passkey" hidden>`,
		`<span id="passkey-0-name">Laptop</span>`,
		`<input type="hidden" name="action" value="remove-passkey">`,
		`<input type="hidden" name="passkey" value="a2V5LTE">`,
		`<dd>never</dd>`,
		`data-passkey-fallback>Adding a passkey needs`,
	} {
		if !strings.Contains(account, want) {
			t.Errorf("the account page lacks %s", want)
		}
	}
	for name, page := range pages {
		if regexp.MustCompile(`data-passkey-error[^>]*role=`).MatchString(page) || !strings.Contains(page, `data-passkey-error hidden`) {
			t.Errorf("%s page: the passkey error box must be hidden, and an alert only once it says something", name)
		}
	}
}

func TestPasskeySectionAbsentWithoutAPIPath(t *testing.T) {
	for name, page := range map[string]string{
		"login":   render(t, DefaultLoginTemplate(), LoginPage{Action: "/login"}),
		"account": renderAccount(t, samplePage()),
	} {
		if strings.Contains(page, "data-passkey") || strings.Contains(page, "<script") {
			t.Errorf("%s page mentions passkeys without PasskeyAPI", name)
		}
	}
}

func TestPasskeyNamesEscaped(t *testing.T) {
	page := renderAccount(t, AccountPage{Username: "alice", Action: "/account", PasskeyAPI: "/api/auth",
		Passkeys: []AccountPasskey{{ID: `"><b>`, Name: `<img src=x onerror=alert(1)>`}}})
	if strings.Contains(page, "<img") || strings.Contains(page, `"><b>`) {
		t.Fatal("a passkey's name or id reached the page unescaped")
	}
}
