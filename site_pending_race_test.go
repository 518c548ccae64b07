package pgsession

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/routes"
	"github.com/pgsession/caddy-pgsession/internal/webtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// A pending sign-in is finished once, however many right factors arrive
// for it at once: the pending row is taken in the transaction that starts
// the session, so one request signs in and the others get 401, having
// used up nothing.

// raceRound is what one round of factors sent at once did.
type raceRound struct {
	statuses     map[int]int
	sessions     int // sessions started
	recoveryUsed int // recovery codes used up
	totpUsed     bool
	pendingLeft  int // pending logins still there
}

// finishAtOnce signs in with the password, then sends, at once and with
// the same pending cookie, one request per body to the second step.
func finishAtOnce(t *testing.T, s *testSite, db *testDB, user string, bodies []string, totpStep int64) raceRound {
	t.Helper()
	id := string(db.userNamed(t, user).ID)
	sessions := db.count(t, `SELECT count(*) FROM pgsession.sessions WHERE user_id = $1`, id)
	used := db.count(t, `SELECT count(*) FROM pgsession.recovery_codes WHERE user_id = $1 AND used_at IS NOT NULL`, id)
	b := newBrowser(t)
	passwordStep(t, s, b, user, "correct horse")
	pending := webtest.SessionCookie(b.jar, s.url("/"), "session_pending")
	require.NotEmpty(t, pending)
	var round raceRound
	round.statuses = atOnce(len(bodies), func(i int) reply {
		return sendRaw(t, http.MethodPost, s.url("/api/auth/login/second-factor"), bodies[i],
			"Content-Type", "application/json", "Cookie", "session_pending="+pending)
	})
	round.sessions = db.count(t, `SELECT count(*) FROM pgsession.sessions WHERE user_id = $1`, id) - sessions
	round.recoveryUsed = db.count(t, `SELECT count(*) FROM pgsession.recovery_codes WHERE user_id = $1 AND used_at IS NOT NULL`, id) - used
	round.totpUsed = db.count(t, `SELECT count(*) FROM pgsession.totp_secrets WHERE user_id = $1 AND last_step = $2`, id, totpStep) == 1
	round.pendingLeft = db.count(t, `SELECT count(*) FROM pgsession.pending_logins WHERE user_id = $1`, id)
	return round
}

// Each round: a pending sign-in, five unused recovery codes and a fresh
// TOTP code at once. Exactly one answers 200 and starts a session, exactly
// one factor is used up, and the pending login is gone; the rest get 401
// (or 429 when the account's limit of codes in flight is reached).
func TestPendingSignInIsFinishedOnceUnderParallelFactors(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse")
	s := twoStepSite(t, db, "max_failed_logins_per_ip 100000")
	b := newBrowser(t)
	b.login(s, "alice", "correct horse")
	secret, _ := enrolTOTP(t, s, b)

	const rounds = 20
	for round := range rounds {
		// Fresh factors for the round: five recovery codes, and a TOTP
		// code of the next step, made fresh by moving the last step back.
		bodies := make([]string, 0, 6)
		for i := range 5 {
			code := fmt.Sprintf("race-%02d-%d-%s", round, i, randomHex(t, 8))
			db.exec(t, `INSERT INTO pgsession.recovery_codes (user_id, code_hash) VALUES ($1, $2)`, alice.ID, routes.HashRecoveryCode(code))
			bodies = append(bodies, jsonText(t, map[string]string{"recovery_code": code}))
		}
		now := time.Now()
		step := now.Unix()/routes.TOTPPeriod + 1
		db.exec(t, `UPDATE pgsession.totp_secrets SET last_step = $2 WHERE user_id = $1`, alice.ID, step-3)
		bodies = append(bodies, jsonText(t, map[string]string{"code": laterCode(t, secret, 1)}))

		got := finishAtOnce(t, s, db, "alice", bodies, step)
		used := got.recoveryUsed
		if got.totpUsed {
			used++
		}
		require.Equal(t, 1, got.statuses[http.StatusOK], "round %d: one sign-in: %v", round, got.statuses)
		require.Equal(t, 5, got.statuses[http.StatusUnauthorized]+got.statuses[http.StatusTooManyRequests],
			"round %d: the rest refused: %v", round, got.statuses)
		require.Equal(t, 1, got.sessions, "round %d: one session", round)
		require.Equal(t, 1, used, "round %d: one factor used up (recovery codes %d, TOTP %v)", round, got.recoveryUsed, got.totpUsed)
		require.Zero(t, got.pendingLeft, "round %d: the pending login is finished", round)
	}
	assert.Empty(t, filterStatus(s.statuses(), http.StatusInternalServerError), "never a 500")
}

// softPasskey is a passkey held by the test itself: an ES256 key whose
// public half is stored for a user as a registration would store it, and
// which signs sign-in answers as an authenticator with user verification
// and no signature counter does.
type softPasskey struct {
	id     []byte
	key    *ecdsa.PrivateKey
	handle []byte // the user's WebAuthn handle
}

func addSoftPasskey(t *testing.T, db *testDB, user *store.User) *softPasskey {
	t.Helper()
	ctx := context.Background()
	p, cose := newSoftPasskey(t)
	record, err := json.Marshal(webauthn.Credential{ID: p.id, PublicKey: cose, AttestationType: "none",
		Flags: webauthn.CredentialFlags{UserPresent: true, UserVerified: true}})
	require.NoError(t, err)
	_, err = db.store.AddPasskey(ctx, store.Passkey{ID: p.id, UserID: user.ID, Name: "Soft key", Credential: record, PublicKey: cose})
	require.NoError(t, err)
	p.handle, err = db.store.WebAuthnHandle(ctx, user.ID)
	require.NoError(t, err)
	return p
}

// newSoftPasskey makes a passkey's key and id, and its public key as COSE
// bytes, as an authenticator does when it creates one.
func newSoftPasskey(t *testing.T) (*softPasskey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ecdhKey, err := key.PublicKey.ECDH()
	require.NoError(t, err)
	point := ecdhKey.Bytes() // 0x04 || x || y
	cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         1, XCoord: point[1:33], YCoord: point[33:],
	})
	require.NoError(t, err)
	return &softPasskey{id: []byte("soft-" + randomHex(t, 8)), key: key}, cose
}

// answer is the body of a sign-in finish for the challenge of begin, at
// the origin of site as reached at localhost.
func (p *softPasskey) answer(t *testing.T, site *testSite, begin reply) map[string]any {
	t.Helper()
	challenge := publicKeyOptions(t, begin)["challenge"].(string)
	u, err := url.Parse(site.url("/"))
	require.NoError(t, err)
	clientData, err := json.Marshal(map[string]any{"type": "webauthn.get", "challenge": challenge,
		"origin": "http://localhost:" + u.Port(), "crossOrigin": false})
	require.NoError(t, err)
	rpIDHash := sha256.Sum256([]byte("localhost"))
	authData := append(rpIDHash[:], 0x05, 0, 0, 0, 0) // user present and verified; no counter
	clientHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(append([]byte{}, authData...), clientHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, p.key, digest[:])
	require.NoError(t, err)
	enc := base64.RawURLEncoding.EncodeToString
	return map[string]any{"credential": map[string]any{
		"id": enc(p.id), "rawId": enc(p.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": enc(clientData), "authenticatorData": enc(authData),
			"signature": enc(sig), "userHandle": enc(p.handle)},
	}}
}

// The same with a passkey as the second step: each round the passkey's
// answer, five recovery codes and a TOTP code arrive at once for one
// pending sign-in, which is finished once. When the passkey finishes it,
// every code gets 401 and none is used up; when a code does, no other code
// passes, only that one is used up, and the passkey, a whole sign-in on
// its own, starts a session of its own.
func TestPendingSignInWithAPasskeyIsFinishedOnce(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	alice := db.addUser(t, "alice", "correct horse")
	s := twoStepSite(t, db, "max_failed_logins_per_ip 100000")
	b := newBrowser(t)
	b.login(s, "alice", "correct horse")
	secret, _ := enrolTOTP(t, s, b)
	key := addSoftPasskey(t, db, db.userNamed(t, "alice"))

	const rounds = 20
	passkeyWins := 0
	for round := range rounds {
		var codes []string
		for i := range 5 {
			code := fmt.Sprintf("race-%02d-%d-%s", round, i, randomHex(t, 8))
			db.exec(t, `INSERT INTO pgsession.recovery_codes (user_id, code_hash) VALUES ($1, $2)`, alice.ID, routes.HashRecoveryCode(code))
			codes = append(codes, jsonText(t, map[string]string{"recovery_code": code}))
		}
		step := time.Now().Unix()/routes.TOTPPeriod + 1
		db.exec(t, `UPDATE pgsession.totp_secrets SET last_step = $2 WHERE user_id = $1`, alice.ID, step-3)
		codes = append(codes, jsonText(t, map[string]string{"code": laterCode(t, secret, 1)}))
		sessions := db.count(t, `SELECT count(*) FROM pgsession.sessions WHERE user_id = $1`, alice.ID)
		usedBefore := db.count(t, `SELECT count(*) FROM pgsession.recovery_codes WHERE user_id = $1 AND used_at IS NOT NULL`, alice.ID)

		signer := newBrowser(t)
		resp := signer.postJSON(s.url("/api/auth/login"), map[string]string{"username": "alice", "password": "correct horse"})
		require.JSONEq(t, `{"second_factor":"required","methods":["totp","recovery_code","passkey"]}`, resp.body)
		pending := webtest.SessionCookie(signer.jar, s.url("/"), "session_pending")
		body := key.answer(t, s, atLocalhost(t, signer, s, http.MethodPost, passkeyAPI+"/login/begin", nil))
		var passkey reply
		statuses := atOnce(len(codes)+1, func(i int) reply {
			if i == len(codes) {
				passkey = atLocalhost(t, signer, s, http.MethodPost, passkeyAPI+"/login/finish", body)
				return passkey
			}
			return sendRaw(t, http.MethodPost, s.url("/api/auth/login/second-factor"), codes[i],
				"Content-Type", "application/json", "Cookie", "session_pending="+pending)
		})
		used := db.count(t, `SELECT count(*) FROM pgsession.recovery_codes WHERE user_id = $1 AND used_at IS NOT NULL`, alice.ID) - usedBefore
		used += db.count(t, `SELECT count(*) FROM pgsession.totp_secrets WHERE user_id = $1 AND last_step = $2`, alice.ID, step)
		codesPassed := statuses[http.StatusOK]
		require.Equal(t, http.StatusOK, passkey.StatusCode, "round %d: the passkey signs in: %s", round, passkey.body)
		codesPassed--
		require.Zero(t, db.count(t, `SELECT count(*) FROM pgsession.pending_logins WHERE user_id = $1`, alice.ID), "round %d", round)
		if codesPassed == 0 {
			passkeyWins++
		}
		require.LessOrEqual(t, codesPassed, 1, "round %d: one code at most: %v", round, statuses)
		require.Equal(t, codesPassed, used, "round %d: what was used up is the code that passed", round)
		require.Equal(t, 1+codesPassed, db.count(t, `SELECT count(*) FROM pgsession.sessions WHERE user_id = $1`, alice.ID)-sessions,
			"round %d: the pending sign-in's session, and the passkey's own when a code finished it first", round)
	}
	t.Logf("the passkey won %d of %d rounds", passkeyWins, rounds)
	assert.Empty(t, filterStatus(s.statuses(), http.StatusInternalServerError), "never a 500")
}
