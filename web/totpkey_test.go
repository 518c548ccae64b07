package web

import (
	"regexp"
	"strings"
	"testing"
)

// The key is shown in groups of four, as authenticator apps show one, while
// the QR code (which carries the otpauth:// URI) is the one it was given.
func TestAccountTOTPKeyInGroupsOfFour(t *testing.T) {
	const secret = "4M77KLSPI7OVSFVEK6OE4D3ADOZTU7V6"
	const uri = "otpauth://totp/Example%20Docs:alice?algorithm=SHA1&digits=6&issuer=Example%20Docs&period=30&secret=" + secret
	qr, err := QRCodeSVG(uri, "QR code for your authenticator app")
	if err != nil {
		t.Fatal(err)
	}
	p := samplePage()
	p.TwoStep = &AccountTwoStep{Setup: &AccountTOTPSetup{QRCode: qr, Secret: secret}}
	page := renderAccount(t, p)

	key := regexp.MustCompile(`<code class="totp-secret">(.*?)</code>`).FindStringSubmatch(page)
	if key == nil {
		t.Fatalf("no key on the page:\n%s", page)
	}
	groups := regexp.MustCompile(`<span>([A-Z2-7]+)</span>`).FindAllStringSubmatch(key[1], -1)
	var shown []string
	for _, g := range groups {
		shown = append(shown, g[1])
	}
	if want := []string{"4M77", "KLSP", "I7OV", "SFVE", "K6OE", "4D3A", "DOZT", "U7V6"}; strings.Join(shown, " ") != strings.Join(want, " ") {
		t.Errorf("the key is shown as %q, want the groups %q", shown, want)
	}
	if text := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(key[1], ""); text != secret {
		t.Errorf("the key's text is %q, want %q: the groups are spaced by the style, so a copied key is the key", text, secret)
	}
	if !strings.Contains(page, string(qr)) {
		t.Error("the QR code is not the one made from the otpauth:// URI")
	}
}

func TestAccountTOTPSecretGroups(t *testing.T) {
	for secret, want := range map[string]string{
		"":          "",
		"ABC":       "ABC",
		"ABCD":      "ABCD",
		"ABCDEFGHI": "ABCD EFGH I",
	} {
		if got := strings.Join(AccountTOTPSetup{Secret: secret}.SecretGroups(), " "); got != want {
			t.Errorf("%q in groups: %q, want %q", secret, got, want)
		}
	}
}

// Each successful sign-in says how it was made, as the history's factor
// does, and a failed passkey is not called a wrong password.
func TestAccountRecentSignInsNameTheFactor(t *testing.T) {
	p := samplePage()
	p.ShowSignIns = true
	p.SignIns = []AccountSignIn{
		{At: sampleNow, Outcome: "success", Factor: "password"},
		{At: sampleNow, Outcome: "success", Factor: "passkey"},
		{At: sampleNow, Outcome: "success", Factor: "totp"},
		{At: sampleNow, Outcome: "success", Factor: "recovery_code"},
		{At: sampleNow, Outcome: "failure", Factor: "passkey"},
		{At: sampleNow, Outcome: "second_factor_required", Factor: "password"},
	}
	items := signInItems(renderAccount(t, p))
	if len(items) != len(p.SignIns) {
		t.Fatalf("%d sign-ins shown, want %d", len(items), len(p.SignIns))
	}
	for i, want := range []string{
		`<span class="badge">Signed in with password</span>`,
		`<span class="badge">Signed in with passkey</span>`,
		`<span class="badge">Signed in with password and app code</span>`,
		`<span class="badge">Signed in with password and recovery code</span>`,
		`<span class="badge failed">Failed: passkey not verified</span>`,
		`<span class="badge">Password right, code asked</span>`,
	} {
		if !strings.Contains(items[i], want) {
			t.Errorf("sign-in %d (%s with %s) lacks %s:\n%s", i, p.SignIns[i].Outcome, p.SignIns[i].Factor, want, items[i])
		}
	}
}
