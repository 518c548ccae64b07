package sealed

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSealedValuesOpenOnlyWithTheirKeyAndData(t *testing.T) {
	key, err := DeriveKey("a secrets key of at least thirty-two characters", "test v1")
	require.NoError(t, err)
	box, err := New(key)
	require.NoError(t, err)
	sealed := box.Seal([]byte("JBSWY3DPEHPK3PXP"), []byte("user-1"))

	plain, err := box.Open(sealed, []byte("user-1"))
	require.NoError(t, err)
	assert.Equal(t, "JBSWY3DPEHPK3PXP", string(plain))
	assert.NotEqual(t, sealed, box.Seal([]byte("JBSWY3DPEHPK3PXP"), []byte("user-1")), "a fresh nonce each time")

	_, err = box.Open(sealed, []byte("user-2"))
	assert.ErrorIs(t, err, ErrUnreadable, "another user's data")
	altered := bytes.Clone(sealed)
	altered[len(altered)-1] ^= 1
	_, err = box.Open(altered, []byte("user-1"))
	assert.ErrorIs(t, err, ErrUnreadable, "altered")
	_, err = box.Open(sealed[:10], []byte("user-1"))
	assert.ErrorIs(t, err, ErrUnreadable, "too short")

	other, err := DeriveKey("a secrets key of at least thirty-two characters", "another purpose v1")
	require.NoError(t, err)
	assert.NotEqual(t, key, other, "each purpose its own key")
	otherBox, err := New(other)
	require.NoError(t, err)
	_, err = otherBox.Open(sealed, []byte("user-1"))
	assert.ErrorIs(t, err, ErrUnreadable, "another key")

	_, err = New(key[:16])
	assert.Error(t, err, "a key of the wrong size")
}
