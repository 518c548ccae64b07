package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

func TestUserAddPasswordInput(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	for _, tc := range []struct{ name, stdin, err string }{
		{"not a terminal", testPassword + "\n",
			"stdin is not a terminal, so the password cannot be asked for: pass --password-stdin and write the password as one line on stdin"},
		{"empty stdin", "", "no password on stdin: write it as one line"},
		{"empty line", "\n", "password is shorter than 8 characters"},
		{"short", "short\n", "password is shorter than 8 characters"},
		{"too long", strings.Repeat("p", store.MaxPasswordLength+1) + "\n", "password is longer than 1024 bytes"},
		{"far too long", strings.Repeat("p", 1<<20), "password is longer than 1024 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"user", "add", "alice"}
			if tc.name != "not a terminal" {
				args = append(args, "--password-stdin")
			}
			r := executeDB(t, url, tc.stdin, args...)
			require.Error(t, r.err)
			assert.Equal(t, tc.err, r.err.Error())
		})
	}
	r := executeDB(t, url, strings.Repeat("p", store.MaxPasswordLength)+"\r\n", "user", "add", "alice", "--password-stdin")
	assert.NoError(t, r.err, "the longest password allowed fits, with its line ending")

	r = executeDB(t, url, testPassword+"\n", "user", "add", " bob", "--password-stdin")
	require.Error(t, r.err)
	assert.Equal(t, "username starts or ends with a space", r.err.Error(), "store.InputError's message")
}

func TestPasswordPrompt(t *testing.T) {
	t.Parallel()
	answers := func(a ...string) func() ([]byte, error) {
		return func() ([]byte, error) {
			if len(a) == 0 {
				return nil, errors.New("no more input")
			}
			next := a[0]
			a = a[1:]
			return []byte(next), nil
		}
	}
	var w bytes.Buffer
	pw, err := promptPassword(&w, "alice", answers(testPassword, testPassword))
	require.NoError(t, err)
	assert.Equal(t, testPassword, pw)
	assert.Equal(t, "Password for \"alice\": \nRepeat the password: \n", w.String())

	_, err = promptPassword(&w, "alice", answers(testPassword, "correct horse battery!"))
	assert.EqualError(t, err, "the passwords do not match")
	w.Reset()
	_, err = promptPassword(&w, "alice", answers("short"))
	assert.EqualError(t, err, "password is shorter than 8 characters")
	assert.NotContains(t, w.String(), "Repeat", "a password that will be refused is not asked for twice")
	_, err = promptPassword(&w, "alice", answers(testPassword))
	assert.EqualError(t, err, "reading the password: no more input")
}
