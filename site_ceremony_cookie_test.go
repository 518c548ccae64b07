package pgsession

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The passkey ceremony cookie is named after cookie_name, as the pending
// sign-in's cookie is, so two sites on one host with their own cookie
// names keep their ceremonies apart.

// A site with its own cookie_name registers a passkey and signs in with it
// through a ceremony cookie of the derived name, and sets no other.
func TestPasskeyCeremonyCookieFollowsCookieName(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addUser(t, "alice", "alice password")
	site := startSite(t, siteOptions{db: db.url, handler: "cookie_name app_sid"})

	b := newBrowser(t)
	b.login(site, "alice", "alice password")
	begin := atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/register/begin", nil)
	c := namedCookie(t, begin, "app_sid_passkey")
	assert.Equal(t, passkeyAPI, c.Path, "sent to the passkey routes only")
	assert.True(t, c.HttpOnly)
	key, cose := newSoftPasskey(t)
	reg := atLocalhost(t, b, site, http.MethodPost, passkeyAPI+"/register/finish",
		map[string]any{"name": "Laptop", "credential": key.registration(t, site, begin, cose)})
	require.Equal(t, http.StatusCreated, reg.StatusCode, reg.body)
	assert.Equal(t, -1, namedCookie(t, reg, "app_sid_passkey").MaxAge, "the finish clears the ceremony's cookie")

	signer := newBrowser(t)
	login := atLocalhost(t, signer, site, http.MethodPost, passkeyAPI+"/login/begin", nil)
	namedCookie(t, login, "app_sid_passkey")
	finish := atLocalhost(t, signer, site, http.MethodPost, passkeyAPI+"/login/finish", key.answer(t, site, login))
	require.Equal(t, http.StatusOK, finish.StatusCode, finish.body)
	assert.Contains(t, finish.body, `"username":"alice"`)
	assert.NotEmpty(t, namedCookie(t, finish, "app_sid").Value, "the passkey's sign-in starts a session under cookie_name")

	for _, resp := range []reply{begin, reg, login, finish} {
		for _, c := range resp.Cookies() {
			assert.Contains(t, []string{"app_sid", "app_sid_passkey"}, c.Name, "no cookie of another name")
		}
	}
}

// A __Host- cookie must have Path=/, which the ceremony cookie has not: it
// is named __Secure- instead, which browsers take with a narrower path as
// long as it is Secure.
func TestPasskeyCeremonyCookieUnderAHostPrefix(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	site := startSite(t, siteOptions{db: db.url, https: true, handler: "cookie_name __Host-app"})

	begin := atLocalhost(t, newBrowser(t), site, http.MethodPost, passkeyAPI+"/login/begin", nil)
	require.Equal(t, http.StatusOK, begin.StatusCode, begin.body)
	c := namedCookie(t, begin, "__Secure-app_passkey")
	assert.True(t, c.Secure, "browsers drop a __Secure- cookie that is not Secure")
	assert.Equal(t, passkeyAPI, c.Path)
}

// namedCookie returns the cookie called name that resp sets.
func namedCookie(t *testing.T, resp reply, name string) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", name, resp.Header.Values("Set-Cookie"))
	return nil
}

// registration is the body's credential of a registration finish for the
// challenge of begin, as an authenticator with user verification answers
// navigator.credentials.create at site reached at localhost: "none"
// attestation, the new key's id and public key in its authenticator data.
func (p *softPasskey) registration(t *testing.T, site *testSite, begin reply, cose []byte) map[string]any {
	t.Helper()
	pk := publicKeyOptions(t, begin)
	handle, err := base64.RawURLEncoding.DecodeString(pk["user"].(map[string]any)["id"].(string))
	require.NoError(t, err)
	p.handle = handle
	u, err := url.Parse(site.url("/"))
	require.NoError(t, err)
	clientData, err := json.Marshal(map[string]any{"type": "webauthn.create", "challenge": pk["challenge"],
		"origin": "http://localhost:" + u.Port(), "crossOrigin": false})
	require.NoError(t, err)
	rpIDHash := sha256.Sum256([]byte("localhost"))
	authData := append(rpIDHash[:], 0x45, 0, 0, 0, 0) // user present and verified, credential data; no counter
	authData = append(authData, make([]byte, 16)...)  // AAGUID: none
	authData = binary.BigEndian.AppendUint16(authData, uint16(len(p.id)))
	authData = append(append(authData, p.id...), cose...)
	attestation, err := webauthncbor.Marshal(struct {
		Format    string         `cbor:"fmt"`
		Statement map[string]any `cbor:"attStmt"`
		AuthData  []byte         `cbor:"authData"`
	}{"none", map[string]any{}, authData})
	require.NoError(t, err)
	enc := base64.RawURLEncoding.EncodeToString
	return map[string]any{"id": enc(p.id), "rawId": enc(p.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": enc(clientData), "attestationObject": enc(attestation)}}
}
