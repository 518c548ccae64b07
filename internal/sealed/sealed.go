// Package sealed encrypts the small values the plugin keeps out of reach
// of whoever reads its database or a browser's cookies: second-factor
// secrets at rest and passkey ceremonies in cookies. One way of sealing,
// AES-256-GCM with a random nonce, serves both, each bound to additional
// data naming what it is, so a value sealed for one use or one user does
// not open as another.
package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// KeySize is the size of a Box's key: AES-256's.
const KeySize = 32

// ErrUnreadable is a sealed value that does not open: altered, too short,
// sealed under another key or with other additional data.
var ErrUnreadable = errors.New("sealed value does not open")

// Box seals and opens values under one key.
type Box struct{ aead cipher.AEAD }

// New makes a box with a KeySize-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sealing key: %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	return &Box{aead: aead}, nil
}

// DeriveKey derives a key for one purpose from a long secret (the
// secrets_key option) with HKDF-SHA256, so that the secret may be any long
// string and each purpose gets a key of its own.
func DeriveKey(secret, purpose string) ([]byte, error) {
	return hkdf.Key(sha256.New, []byte(secret), nil, purpose, KeySize)
}

// Seal encrypts plain, authenticating ad with it.
func (b *Box) Seal(plain, ad []byte) []byte {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plain)+b.aead.Overhead())
	rand.Read(nonce)
	return b.aead.Seal(nonce, nonce, plain, ad)
}

// Open decrypts what Seal made with the same ad.
func (b *Box) Open(sealed, ad []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, ErrUnreadable
	}
	plain, err := b.aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, ErrUnreadable
	}
	return plain, nil
}
