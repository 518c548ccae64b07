package routes

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The begin limit counts an IPv6 client by its /64, forgets addresses
// whose buckets have filled again, and when full makes new addresses
// share one bucket rather than letting them in unthrottled.
func TestBeginLimitPerAddress(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"192.0.2.7:5555", "192.0.2.7"},
		{"::ffff:192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2::9]:443", "2001:db8:1:2::/64"},
		{"not an address", "not an address"},
	} {
		assert.Equal(t, c.want, clientAddress(c.ip), c.ip)
	}

	now := time.Now()
	l := newAddressLimiter(2, time.Second, 2)
	for range 2 {
		_, ok := l.allow("a", now)
		require.True(t, ok)
	}
	wait, ok := l.allow("a", now)
	assert.False(t, ok, "past the burst")
	assert.Equal(t, time.Second, wait, "the wait for the next token")
	_, ok = l.allow("b", now)
	assert.True(t, ok)
	_, ok = l.allow("c", now)
	assert.True(t, ok, "a third address, with the map full, takes from the shared bucket")
	_, ok = l.allow("d", now)
	assert.True(t, ok)
	_, ok = l.allow("e", now)
	assert.False(t, ok, "which empties as one address's would")
	later := now.Add(3 * time.Second)
	_, ok = l.allow("e", later)
	assert.True(t, ok, "once idle addresses are forgotten, a new one has a bucket of its own")
	assert.Len(t, l.buckets, 1, "a and b, full again, were forgotten")
}
