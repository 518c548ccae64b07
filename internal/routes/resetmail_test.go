package routes

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The throttle by name typed counts one account's spellings as one: a
// username by its key, an address normalised, so varying the case or the
// width of the letters buys no more links.
func TestLoginKeyCountsSpellingsOfOneNameAsOne(t *testing.T) {
	for _, same := range [][]string{
		{"bob", "Bob", "ＢＯＢ"},
		{"alice@example.com", "Alice@Example.COM", " alice@example.com"},
	} {
		for _, other := range same[1:] {
			assert.Equal(t, loginKey(same[0]), loginKey(other), "%q and %q", same[0], other)
		}
	}
	assert.NotEqual(t, loginKey("bob"), loginKey("bob@example.com"))
}
