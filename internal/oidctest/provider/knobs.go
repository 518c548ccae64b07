package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/pgsession/caddy-pgsession/internal/oidctest/control"
)

// spoil rewrites an ID token as k says, signed again: with the current
// key, or with a key never published under the current key's kid, so only
// the signature tells it from a good token.
func (s *server) spoil(idToken string, k control.Knobs) (string, error) {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return "", errors.New("mockoidc made an ID token that is no JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	claims := jwt.MapClaims{}
	if err := dec.Decode(&claims); err != nil {
		return "", fmt.Errorf("reading the ID token's claims: %w", err)
	}
	now := time.Now()
	if k.Audience != "" {
		claims["aud"] = []string{k.Audience}
	}
	if k.Expired {
		claims["iat"] = now.Add(-2 * time.Hour).Unix()
		claims["nbf"] = now.Add(-2 * time.Hour).Unix()
		claims["auth_time"] = now.Add(-2 * time.Hour).Unix()
		claims["exp"] = now.Add(-time.Hour).Unix()
	}
	if k.Nonce != "" {
		claims["nonce"] = k.Nonce
	}
	if k.Issuer != "" {
		claims["iss"] = k.Issuer
	}
	signer := s.oidc.m.Keypair
	if k.SignWithOtherKey {
		if s.oidc.otherKey == nil {
			key, _, err := newKey()
			if err != nil {
				return "", err
			}
			s.oidc.otherKey = &mockoidc.Keypair{PrivateKey: key, PublicKey: &key.PublicKey}
		}
		signer = &mockoidc.Keypair{PrivateKey: s.oidc.otherKey.PrivateKey, PublicKey: s.oidc.otherKey.PublicKey, Kid: signer.Kid}
	}
	return signer.SignJWT(claims)
}

func (s *server) next(w http.ResponseWriter, r *http.Request) {
	var k control.Knobs
	err := decodeJSON(r, &k)
	if err == nil && k == (control.Knobs{}) {
		err = errors.New("no knob is set")
	}
	if err == nil {
		s.st.Next = append(s.st.Next, k)
	}
	s.answerControl(w, err)
}

// rotateKeys makes a new signing key, with a new kid, and publishes it in
// place of the old one or, with keep_old, beside it until the next
// rotation.
func (s *server) rotateKeys(w http.ResponseWriter, r *http.Request) {
	var body control.Rotation
	if err := decodeJSON(r, &body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_, stored, err := newKey()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	keys := []storedKey{stored}
	if body.KeepOld {
		keys = append(keys, s.st.Keys[0])
	}
	s.st.Keys = keys
	if err := s.openKeys(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := s.save(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, control.Rotated{Kid: s.oidc.keys[0].Kid})
}
