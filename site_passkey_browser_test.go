package pgsession

import (
	"context"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/chromium"
)

// Passkeys in a real Chromium, with its virtual authenticator standing in
// for a phone or a laptop's fingerprint reader: register one on the account
// page, sign out, sign in with it alone, remove it. WebAuthn needs a
// domain, so the browser opens the site at http://localhost:<port> (a
// secure context in Chromium), not at the harness's 127.0.0.1.

const (
	passkeySignInButton = `[data-passkey-sign-in]`
	passkeyAddForm      = `form[data-passkey-add]`
	passkeyNameField    = `input[name="passkey_name"]`
	passkeyAddButton    = `form[data-passkey-add] button[type="submit"]`
	passkeyRemoveButton = `form:has(input[name="action"][value="remove-passkey"]) button[type="submit"]`
	passkeyError        = `[data-passkey-error]`
	codePageTitle       = `#code-title` // the heading of the page after a right password
)

func TestPasskeyBrowser(t *testing.T) {
	t.Parallel()
	browser := chromium.Start(t)
	for _, tc := range []struct {
		name string
		test func(*testing.T, *chromium.Browser)
	}{
		{"RegisterSignOutSignInWithThePasskeyAloneRemove", browserPasskeyRegisterSignInRemove},
		{"WithoutJavaScriptNoPasskeyButtonAndPasswordsWork", browserPasskeyWithoutJavaScript},
		{"PasskeyAsTheSecondStepAfterThePassword", browserPasskeyAsTheSecondStep},
		{"AnotherAccountsPasskeyDoesNotFinishTheSignIn", browserAnotherAccountsPasskey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, browser)
		})
	}
}

// localhost is the address of path on site by the name localhost.
func localhost(t *testing.T, site *testSite, path string) string {
	t.Helper()
	return siteAt(t, site, "localhost", path)
}

// addAuthenticator gives the tab a virtual platform authenticator that
// keeps discoverable passkeys and verifies its user (a fingerprint that
// always matches), and returns its id.
func addAuthenticator(tab *chromium.Tab) webauthn.AuthenticatorID {
	return chromium.Run(tab, "add a virtual authenticator", func(ctx context.Context, t *chromedp.Target) (webauthn.AuthenticatorID, error) {
		if _, err := cdp.Call(ctx, t, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return "", err
		}
		res, err := cdp.Call(ctx, t, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol:                    webauthn.AuthenticatorProtocolCtap2,
				Ctap2version:                webauthn.Ctap2versionCtap21,
				Transport:                   webauthn.AuthenticatorTransportInternal,
				HasResidentKey:              true,
				HasUserVerification:         true,
				IsUserVerified:              true,
				AutomaticPresenceSimulation: true,
			},
		})
		return res.AuthenticatorID, err
	})
}

// authenticatorCredentials lists the passkeys the virtual authenticator holds.
func authenticatorCredentials(tab *chromium.Tab, id webauthn.AuthenticatorID) []*webauthn.Credential {
	return chromium.Run(tab, "list the authenticator's passkeys", func(ctx context.Context, t *chromedp.Target) ([]*webauthn.Credential, error) {
		res, err := cdp.Call(ctx, t, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
		return res.Credentials, err
	})
}

// hasSessionCookieAt reports whether the tab holds a session cookie for rawURL.
func hasSessionCookieAt(tab *chromium.Tab, rawURL string) bool {
	c := sessionCookieAt(tab, rawURL)
	return c != nil && c.Value != ""
}

// shown reports whether the first element matching selector is rendered.
func shown(tab *chromium.Tab, selector string) bool {
	return chromium.Run(tab, "see whether "+selector+" is shown", chromedp.Evaluate[bool](
		`(function(){ const el = document.querySelector(`+"`"+selector+"`"+`); return !!el && el.getClientRects().length > 0; })()`))
}

func browserPasskeyRegisterSignInRemove(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, `site_name "Team Docs"`)
	db := testDBAt(t, site.opts.db)
	tab := browser.NewTab(t)
	authenticator := addAuthenticator(tab)
	docs := localhost(t, site, docsPage)

	openLoginPage(tab, docs)
	signIn(tab, "alice", alicePassword)
	tab.Do("wait for the docs page", chromedp.WaitVisible(chromedp.CSS(protectedText)))

	tab.Do("add a passkey named Work laptop on the account page",
		chromedp.Navigate(localhost(t, site, "/account")),
		chromedp.WaitVisible(chromedp.CSS(passkeyAddForm)),
		chromedp.SendKeys(chromedp.CSS(passkeyNameField), "Work laptop"),
		chromedp.Click(chromedp.CSS(passkeyAddButton)),
		chromedp.WaitVisible(chromedp.CSS(noticeMessage)),
	)
	assert.Contains(t, text(tab, noticeMessage), "Passkey added")
	assert.Equal(t, "Work laptop", text(tab, "#passkey-0-name"), "the account page lists the passkey by its name")
	creds := authenticatorCredentials(tab, authenticator)
	require.Len(t, creds, 1, "the authenticator holds the new passkey")
	assert.True(t, creds[0].IsResidentCredential, "a discoverable passkey, usable without a username")
	assert.Equal(t, "localhost", creds[0].RpID)
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.passkeys p JOIN pgsession.users u ON u.id = p.user_id
		WHERE u.username = 'alice' AND p.name = 'Work laptop'`))

	tab.Do("sign out from the account page", chromedp.Click(chromedp.CSS(accountSignOut)), chromedp.WaitVisible(chromedp.CSS(passwordField)))
	assert.False(t, hasSessionCookieAt(tab, docs), "signed out")

	openLoginPage(tab, docs)
	tab.Do("sign in with the passkey, typing nothing",
		chromedp.WaitVisible(chromedp.CSS(passkeySignInButton)),
		chromedp.Click(chromedp.CSS(passkeySignInButton)),
		chromedp.WaitVisible(chromedp.CSS(protectedText)),
	)
	assert.Equal(t, docs, location(tab), "the person lands on the page asked for, query string and all")
	assert.True(t, hasSessionCookieAt(tab, docs))
	assert.Equal(t, 1, db.count(t, `SELECT count(*) FROM pgsession.passkeys WHERE last_used_at IS NOT NULL`), "the passkey's last use is known")
	assert.Equal(t, 2, db.count(t, `SELECT count(*) FROM pgsession.sign_in_history WHERE outcome = 'success'`),
		"the passkey sign-in is in the history, after the password one")

	tab.Do("remove the passkey on the account page",
		chromedp.Navigate(localhost(t, site, "/account")),
		chromedp.WaitVisible(chromedp.CSS(passkeyRemoveButton)),
		chromedp.Click(chromedp.CSS(passkeyRemoveButton)),
		chromedp.WaitVisible(chromedp.CSS(noticeMessage)),
	)
	assert.Contains(t, text(tab, noticeMessage), "Passkey removed")
	assert.False(t, present(tab, passkeyRemoveButton), "no passkey is listed")
	assert.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.passkeys`))

	// The authenticator still offers the passkey; the site no longer takes it.
	tab.Do("sign out again", chromedp.Click(chromedp.CSS(accountSignOut)), chromedp.WaitVisible(chromedp.CSS(passwordField)))
	openLoginPage(tab, docs)
	tab.Do("try the removed passkey",
		chromedp.WaitVisible(chromedp.CSS(passkeySignInButton)),
		chromedp.Click(chromedp.CSS(passkeySignInButton)),
		chromedp.WaitVisible(chromedp.CSS(passkeyError)),
	)
	assert.Contains(t, text(tab, passkeyError), "could not be verified")
	assert.False(t, present(tab, protectedText))
	assert.False(t, hasSessionCookieAt(tab, docs))
}

func browserPasskeyWithoutJavaScript(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	tab := browser.NewTab(t)
	tab.Do("turn JavaScript off", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
	docs := localhost(t, site, docsPage)
	openLoginPage(tab, docs)
	assert.True(t, present(tab, passkeySignInButton), "the page has the button")
	visible := chromium.Run(tab, "see whether the passkey block is rendered", chromedp.Evaluate[bool](
		`document.querySelector("[data-passkey]").getClientRects().length > 0`))
	assert.False(t, visible, "but without JavaScript it stays hidden")
	signIn(tab, "alice", alicePassword)
	tab.Do("wait for the docs page", chromedp.WaitVisible(chromedp.CSS(protectedText)))
	tab.Do("open the account page", chromedp.Navigate(localhost(t, site, "/account")), chromedp.WaitVisible(chromedp.CSS(accountSignOut)))
	assert.False(t, shown(tab, passkeyAddForm), "adding a passkey needs JavaScript, and is not offered")
	assert.True(t, shown(tab, "[data-passkey-fallback]"), "the page says so")
}

// With a passkey, the password alone no longer signs in: the page after it
// asks for the passkey, and the passkey finishes the sign-in, landing on
// the page asked for.
func browserPasskeyAsTheSecondStep(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	tab := browser.NewTab(t)
	addAuthenticator(tab)
	docs := localhost(t, site, docsPage)

	openLoginPage(tab, docs)
	signIn(tab, "alice", alicePassword)
	tab.Do("add a passkey on the account page",
		chromedp.WaitVisible(chromedp.CSS(protectedText)),
		chromedp.Navigate(localhost(t, site, "/account")),
		chromedp.WaitVisible(chromedp.CSS(passkeyAddForm)),
		chromedp.SendKeys(chromedp.CSS(passkeyNameField), "Phone"),
		chromedp.Click(chromedp.CSS(passkeyAddButton)),
		chromedp.WaitVisible(chromedp.CSS(noticeMessage)),
		chromedp.Click(chromedp.CSS(accountSignOut)),
		chromedp.WaitVisible(chromedp.CSS(passwordField)),
	)

	openLoginPage(tab, docs)
	signIn(tab, "alice", alicePassword)
	// The login page has a passkey button too: wait for the next page's heading first.
	tab.Do("wait for the page that asks for the passkey", chromedp.WaitVisible(chromedp.CSS(codePageTitle)),
		chromedp.WaitVisible(chromedp.CSS(passkeySignInButton)))
	assert.False(t, hasSessionCookieAt(tab, docs), "the password alone starts no session")
	assert.False(t, present(tab, `#code`), "no authenticator app is on, so no code is asked for")
	tab.Do("use the passkey", chromedp.Click(chromedp.CSS(passkeySignInButton)), chromedp.WaitVisible(chromedp.CSS(protectedText)))
	assert.Equal(t, docs, location(tab), "the person lands on the page asked for")
	assert.True(t, hasSessionCookieAt(tab, docs))
}

// addPasskeyAs signs in as name with the password alone (the user has no
// second factor yet), adds a passkey on the account page and signs out.
func addPasskeyAs(t *testing.T, tab *chromium.Tab, site *testSite, name, password string) {
	t.Helper()
	openLoginPage(tab, localhost(t, site, docsPage))
	signIn(tab, name, password)
	tab.Do("add a passkey as "+name,
		chromedp.WaitVisible(chromedp.CSS(protectedText)),
		chromedp.Navigate(localhost(t, site, "/account")),
		chromedp.WaitVisible(chromedp.CSS(passkeyAddForm)),
		chromedp.SendKeys(chromedp.CSS(passkeyNameField), "Shared laptop"),
		chromedp.Click(chromedp.CSS(passkeyAddButton)),
		chromedp.WaitVisible(chromedp.CSS(noticeMessage)),
		chromedp.Click(chromedp.CSS(accountSignOut)),
		chromedp.WaitVisible(chromedp.CSS(passwordField)),
	)
}

// After alice's password, only alice's passkey finishes her sign-in: on a
// device that holds bob's passkey alone, using it is refused, and neither
// account is signed in.
func browserAnotherAccountsPasskey(t *testing.T, browser *chromium.Browser) {
	site := startDocs(t, "")
	testDBAt(t, site.opts.db).addUser(t, "bob", "bob's long password")
	tab := browser.NewTab(t)
	authenticator := addAuthenticator(tab)
	addPasskeyAs(t, tab, site, "bob", "bob's long password")
	bobs := authenticatorCredentials(tab, authenticator)
	require.Len(t, bobs, 1)
	addPasskeyAs(t, tab, site, "alice", alicePassword)
	for _, c := range authenticatorCredentials(tab, authenticator) {
		if string(c.CredentialID) != string(bobs[0].CredentialID) {
			chromium.Run(tab, "take alice's passkey off the device", func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
				return cdp.Call(ctx, t, webauthn.RemoveCredential, webauthn.RemoveCredentialParams{
					AuthenticatorID: authenticator, CredentialID: c.CredentialID})
			})
		}
	}
	require.Len(t, authenticatorCredentials(tab, authenticator), 1, "only bob's passkey is left on the device")

	docs := localhost(t, site, docsPage)
	openLoginPage(tab, docs)
	signIn(tab, "alice", alicePassword)
	tab.Do("use the device's passkey, bob's, after alice's password",
		chromedp.WaitVisible(chromedp.CSS(codePageTitle)),
		chromedp.WaitVisible(chromedp.CSS(passkeySignInButton)),
		chromedp.Click(chromedp.CSS(passkeySignInButton)),
		chromedp.WaitVisible(chromedp.CSS(passkeyError)),
	)
	assert.Contains(t, text(tab, passkeyError), "another account")
	assert.False(t, present(tab, protectedText))
	assert.False(t, hasSessionCookieAt(tab, docs), "neither alice nor bob is signed in")
}
