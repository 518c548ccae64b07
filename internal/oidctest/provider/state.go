package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pgsession/caddy-pgsession/internal/oidctest/control"
)

// state is what a provider keeps across a restart on the same port: the
// test's users, redirect URIs, signing keys and pending knobs, as a real
// provider keeps its accounts and keys when it comes back. Codes in flight
// are lost, as a real restart may lose them.
type state struct {
	RedirectURIs []string `json:"redirect_uris"`
	// Keys[0] signs; the others are still published in the key set.
	Keys        []storedKey            `json:"keys,omitempty"`
	OIDCUsers   []control.User         `json:"oidc_users,omitempty"`
	Next        []control.Knobs        `json:"next,omitempty"`
	GitHubUsers []control.GitHubUser   `json:"github_users,omitempty"`
	Tokens      map[string]githubToken `json:"tokens,omitempty"`
}

// storedKey is an RSA private key in PKCS #1 form.
type storedKey struct {
	DER []byte `json:"der"`
}

func (k storedKey) private() (*rsa.PrivateKey, error) { return x509.ParsePKCS1PrivateKey(k.DER) }

func newKey() (*rsa.PrivateKey, storedKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, storedKey{}, err
	}
	return key, storedKey{DER: x509.MarshalPKCS1PrivateKey(key)}, nil
}

// load reads the state a previous run on this port saved, or starts from
// the flags.
func (s *server) load() error {
	s.st = state{RedirectURIs: s.cfg.redirectURIs, Tokens: map[string]githubToken{}}
	if s.cfg.statePath == "" {
		return nil
	}
	data, err := os.ReadFile(s.cfg.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, &s.st); err != nil {
		return fmt.Errorf("reading %s: %w", s.cfg.statePath, err)
	}
	if s.st.Tokens == nil {
		s.st.Tokens = map[string]githubToken{}
	}
	return nil
}

// save writes the state whole, through a rename, so a provider stopped at
// any moment leaves the last complete state.
func (s *server) save() error {
	if s.cfg.statePath == "" {
		return nil
	}
	data, err := json.Marshal(s.st)
	if err != nil {
		return err
	}
	tmp := s.cfg.statePath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.cfg.statePath)
}

func (st *state) addOIDCUser(u control.User) error {
	if u.Subject == "" {
		return errors.New("a user needs a subject")
	}
	for i := range st.OIDCUsers {
		if st.OIDCUsers[i].Subject == u.Subject {
			st.OIDCUsers[i] = u
			return nil
		}
	}
	st.OIDCUsers = append(st.OIDCUsers, u)
	return nil
}

func (st *state) oidcUser(subject string) (control.User, bool) {
	for _, u := range st.OIDCUsers {
		if u.Subject == subject {
			return u, true
		}
	}
	return control.User{}, false
}

func (st *state) addGitHubUser(u control.GitHubUser) error {
	if u.Login == "" {
		return errors.New("a user needs a login")
	}
	for i := range st.GitHubUsers {
		if strings.EqualFold(st.GitHubUsers[i].Login, u.Login) {
			if u.ID == 0 {
				u.ID = st.GitHubUsers[i].ID
			}
			st.GitHubUsers[i] = u
			return nil
		}
	}
	if u.ID == 0 {
		// GitHub's ids are numbers that never change; these start
		// where no test would type one by hand.
		u.ID = int64(583231 + len(st.GitHubUsers))
	}
	st.GitHubUsers = append(st.GitHubUsers, u)
	return nil
}

// githubUser finds a user by login, which GitHub compares ignoring case.
func (st *state) githubUser(login string) (control.GitHubUser, bool) {
	for _, u := range st.GitHubUsers {
		if strings.EqualFold(u.Login, login) {
			return u, true
		}
	}
	return control.GitHubUser{}, false
}
