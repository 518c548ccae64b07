package routes

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/internal/request"
	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// Passkeys (WebAuthn): a user registers one from the account page and then
// signs in with it alone, without a username or password. A ceremony's
// begin answers with the options for navigator.credentials.create or get
// and seals its challenge into a short-lived cookie (passkey_ceremony.go),
// which any server sharing the database can open, so the finish may reach
// another server; the finish takes it, once, and has go-webauthn verify the
// browser's answer.

// ceremonyLifetime is how long a begun ceremony can be finished: the time a
// person needs to touch a key or unlock a phone, not more.
const ceremonyLifetime = 5 * time.Minute

// msgPasskeyFailed is the answer to a passkey sign-in that did not verify;
// it does not say why, as the reasons are for the log.
const msgPasskeyFailed = "That passkey could not be verified"

// passkeyJSON is how a passkey appears in the JSON routes: by its
// credential id in unpadded base64url, as WebAuthn spells ids.
type passkeyJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func toPasskeyJSON(p store.Passkey) passkeyJSON {
	return passkeyJSON{ID: base64.RawURLEncoding.EncodeToString(p.ID), Name: p.Name, CreatedAt: p.CreatedAt, LastUsedAt: p.LastUsedAt}
}

// passkeyID decodes a passkey id from a path or a form; false when it is
// not one.
func passkeyID(s string) ([]byte, bool) {
	id, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	return id, err == nil && len(id) > 0 && len(id) <= 1023
}

// passkeyUser is a user as go-webauthn sees them.
type passkeyUser struct {
	user        store.User
	handle      []byte
	credentials []webauthn.Credential
}

func (u *passkeyUser) WebAuthnID() []byte                         { return u.handle }
func (u *passkeyUser) WebAuthnName() string                       { return u.user.Username }
func (u *passkeyUser) WebAuthnDisplayName() string                { return u.user.Username }
func (u *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.credentials }

// loadPasskeyUser reads a user's WebAuthn handle and passkeys. The stored
// counter and backup state are the columns', which sign-ins update.
func (h *factors) loadPasskeyUser(r *http.Request, user store.User) (*passkeyUser, error) {
	handle, err := h.store.WebAuthnHandle(r.Context(), user.ID)
	if err != nil {
		return nil, err
	}
	keys, err := h.store.UserPasskeys(r.Context(), user.ID)
	if err != nil {
		return nil, err
	}
	u := &passkeyUser{user: user, handle: handle}
	for _, k := range keys {
		var c webauthn.Credential
		if err := json.Unmarshal(k.Credential, &c); err != nil {
			h.logger.Warn("a stored passkey cannot be read", zap.String("username", user.Username), zap.Error(err))
			continue
		}
		c.Authenticator.SignCount, c.Flags.BackupState = k.SignCount, k.BackupState
		u.credentials = append(u.credentials, c)
	}
	return u, nil
}

// relyingParty is the WebAuthn relying party of r's site: passkey_rp_id and
// passkey_origins when set, else the request's host (without its port) and
// origin, which is what the browser itself checks the RP ID against.
func (h *factors) relyingParty(r *http.Request) (*webauthn.WebAuthn, error) {
	rpID := h.PasskeyRPID
	if rpID == "" {
		rpID = strings.ToLower(r.Host)
		if host, _, err := net.SplitHostPort(rpID); err == nil {
			rpID = host
		}
		if rpID == "" || net.ParseIP(strings.Trim(rpID, "[]")) != nil {
			return nil, refuse(ReasonPasskeysNeedADomain,
				"Passkeys need the site to be opened by its domain name, not an IP address")
		}
	}
	origins := h.PasskeyOrigins
	if len(origins) == 0 {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		origins = []string{scheme + "://" + strings.ToLower(r.Host)}
	}
	wa, err := webauthn.New(&webauthn.Config{RPID: rpID, RPDisplayName: cmp.Or(h.SiteName, rpID), RPOrigins: origins})
	if err != nil {
		return nil, refuse(ReasonPasskeysUnavailable, "Passkeys are not available at this address")
	}
	return wa, nil
}

// ceremonyCookieName is the name of the cookie holding the sealed state of
// the ceremony under way in this browser: the session cookie's name with
// _passkey, as the pending sign-in's has _pending. A __Host- name turns
// __Secure-, because __Host- demands Path=/ and this cookie goes only to
// the passkey routes; browsers still insist that it be Secure.
func (h *factors) ceremonyCookieName() string { return h.scopedCookieName("_passkey") }

// ceremonyCookie is the cookie of a ceremony's sealed state, sent only to
// the passkey routes; maxAge -1 clears it.
func (h *factors) ceremonyCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: h.ceremonyCookieName(), Value: value, Path: h.APIPath + "/passkeys", MaxAge: maxAge,
		HttpOnly: true, Secure: h.secure(r), SameSite: http.SameSiteStrictMode}
}

// serveRegisterPasskeyBegin answers with the options to create a passkey
// for the caller: a discoverable credential (so it can sign in without a
// username) with user verification, none of the caller's passkeys again.
func (h *accountRoutes) serveRegisterPasskeyBegin(w http.ResponseWriter, r *http.Request, c *caller) error {
	wa, err := h.relyingParty(r)
	if err != nil {
		return err
	}
	u, err := h.loadPasskeyUser(r, c.session.User)
	if err != nil {
		return storeUnavailable(err)
	}
	exclude := make([]protocol.CredentialDescriptor, 0, len(u.credentials))
	for _, cred := range u.credentials {
		exclude = append(exclude, cred.Descriptor())
	}
	creation, data, err := wa.BeginRegistration(u,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementRequired,
			UserVerification: protocol.VerificationRequired,
		}),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired),
		webauthn.WithExclusions(exclude))
	if err != nil {
		return err
	}
	if err := h.beginCeremony(w, r, CeremonyRegister, c.session.User.ID, data); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, creation)
	return nil
}

// passkeyRegistration is the body of POST {api}/passkeys/register/finish.
type passkeyRegistration struct {
	Name       string          `json:"name"`
	Credential json.RawMessage `json:"credential"`
}

// serveRegisterPasskeyFinish verifies the new passkey and stores it; like a
// password change, it ends the caller's other sessions.
func (h *accountRoutes) serveRegisterPasskeyFinish(w http.ResponseWriter, r *http.Request, c *caller) error {
	var body passkeyRegistration
	if err := request.DecodeJSONObject(r.Body, &body, "name", "credential"); err != nil {
		return badBody(err)
	}
	body.Name = strings.TrimSpace(body.Name)
	var inputErr *store.InputError
	if err := store.ValidatePasskeyName(body.Name); errors.As(err, &inputErr) {
		return badInput(inputErr)
	}
	passkey, err := h.registerPasskey(w, r, c, body)
	if err != nil {
		return err
	}
	n, err := h.store.NewCredentials(r.Context(), c.session.User.ID, c.token)
	if err != nil {
		return storeUnavailable(err)
	}
	h.memory.ForgetUser(c.session.User.ID)
	h.logger.Info("passkey added", zap.String("username", c.session.User.Username), zap.Int64("sessions_ended", n))
	writeJSON(w, http.StatusCreated, toPasskeyJSON(*passkey))
	return nil
}

// registerPasskey verifies a registration's answer against its ceremony and
// stores the passkey.
func (h *accountRoutes) registerPasskey(w http.ResponseWriter, r *http.Request, c *caller, body passkeyRegistration) (*store.Passkey, error) {
	wa, err := h.relyingParty(r)
	if err != nil {
		return nil, err
	}
	userID, data, err := h.takeCeremony(w, r, CeremonyRegister)
	if err != nil {
		return nil, err
	}
	if userID != c.session.User.ID {
		return nil, refuse(ReasonNoPasskeyCeremony, "The passkey request was started by another account: start again")
	}
	invalid := refuse(ReasonUnverifiedPasskey, "The passkey could not be verified")
	parsed, err := protocol.ParseCredentialCreationResponseBytes(body.Credential)
	if err != nil {
		return nil, invalid
	}
	u, err := h.loadPasskeyUser(r, c.session.User)
	if err != nil {
		return nil, storeUnavailable(err)
	}
	cred, err := wa.CreateCredential(u, *data, parsed)
	if err != nil {
		h.logger.Info("passkey registration refused", zap.String("username", u.user.Username), zap.Error(err))
		return nil, invalid
	}
	record, err := json.Marshal(cred)
	if err != nil {
		return nil, err
	}
	transports := make([]string, 0, len(cred.Transport))
	for _, t := range cred.Transport {
		transports = append(transports, string(t))
	}
	passkey, err := h.store.AddPasskey(r.Context(), store.Passkey{
		ID: cred.ID, UserID: c.session.User.ID, Name: body.Name, Credential: record, PublicKey: cred.PublicKey,
		SignCount: cred.Authenticator.SignCount, AAGUID: cred.Authenticator.AAGUID, Transports: transports,
		BackupEligible: cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
	})
	var inputErr *store.InputError
	switch {
	case errors.Is(err, store.ErrPasskeyExists):
		return nil, refuse(ReasonPasskeyExists, "That passkey is already registered")
	case errors.Is(err, store.ErrTooManyPasskeys):
		return nil, refuse(ReasonTooManyPasskeys, "You have as many passkeys as an account may have: remove one first")
	case errors.As(err, &inputErr):
		return nil, badInput(inputErr)
	case errors.Is(err, store.ErrUserNotFound):
		return nil, refuse(ReasonNotAuthenticated, "Not authenticated")
	case err != nil:
		return nil, storeUnavailable(err)
	}
	return passkey, nil
}

// serveOwnPasskeys lists the caller's passkeys.
func (h *accountRoutes) serveOwnPasskeys(w http.ResponseWriter, r *http.Request, c *caller) error {
	keys, err := h.store.UserPasskeys(r.Context(), c.session.User.ID)
	if err != nil {
		return storeUnavailable(err)
	}
	return writeJSONList(w, keys, toPasskeyJSON)
}

// serveRemovePasskey removes one of the caller's passkeys.
func (h *accountRoutes) serveRemovePasskey(w http.ResponseWriter, r *http.Request, c *caller) error {
	n, err := h.removePasskey(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int64{"ended": n})
	return nil
}

// removePasskey removes the caller's passkey named by id and, as a password
// change does, ends their other sessions: whoever added a passkey with a
// stolen session loses that session with it. It returns how many ended.
func (h *accountRoutes) removePasskey(r *http.Request, c *caller, id string) (int64, error) {
	notFound := refuse(ReasonNoSuchPasskey, "No such passkey")
	raw, ok := passkeyID(id)
	if !ok {
		return 0, notFound
	}
	removed, err := h.store.DeletePasskey(r.Context(), c.session.User.ID, raw)
	if errors.Is(err, store.ErrLastSignInMethod) {
		return 0, refuse(ReasonLastSignInMethod, "That passkey is your only way to sign in: set a password or link an account first")
	}
	if err != nil {
		return 0, storeUnavailable(err)
	}
	if !removed {
		return 0, notFound
	}
	n, err := h.store.NewCredentials(r.Context(), c.session.User.ID, c.token)
	if err != nil {
		return 0, storeUnavailable(err)
	}
	h.memory.ForgetUser(c.session.User.ID)
	h.logger.Info("passkey removed", zap.String("username", c.session.User.Username), zap.Int64("sessions_ended", n))
	return n, nil
}

// addPasskeys fills in the account page's passkeys section.
func (h *accountRoutes) addPasskeys(r *http.Request, page *web.AccountPage, userID store.UserID) error {
	keys, err := h.store.UserPasskeys(r.Context(), userID)
	if err != nil {
		return storeUnavailable(err)
	}
	page.PasskeyAPI, page.PasskeyAdded = h.APIPath, h.AccountPath+"?done=passkey-added"
	for _, k := range keys {
		p := web.AccountPasskey{ID: base64.RawURLEncoding.EncodeToString(k.ID), Name: k.Name, CreatedAt: k.CreatedAt}
		if k.LastUsedAt != nil {
			p.LastUsedAt = *k.LastUsedAt
		}
		page.Passkeys = append(page.Passkeys, p)
	}
	return nil
}

// Interface guards
var _ webauthn.User = (*passkeyUser)(nil)
