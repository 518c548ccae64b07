package engine

import (
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"

	"github.com/pgsession/caddy-pgsession/store"
)

// Each session keeps its own method, apart from its user's, and says
// whether it passed a second factor; what the store read is what the gate
// is told. The method costs the session no room: a busy server holds many.
func TestSessionsKeepTheirMethod(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		method string
		done   bool
	}{
		{store.MethodPassword, false},
		{store.MethodPasswordTOTP, true},
		{store.MethodPasswordRecoveryCode, true},
		{store.MethodPasskey, true},
		{store.MethodProvider, false},
		{store.MethodProviderMFA, true},
		{store.MethodProviderTOTP, true},
		{store.MethodProviderRecoveryCode, true},
		{"", false},                // an API token's
		{"something newer", false}, // a method this server does not know is no second factor
	} {
		s := FromLive(KeyOf("token "+tc.method), store.LiveSession{UserID: "user-1", Username: "u",
			ExpiresAt: now.Add(time.Hour), LastSeenAt: now, CheckedAt: now, Method: tc.method, IdleTimeout: 90 * time.Second}, now)
		want := tc.method
		if tc.method == "something newer" {
			want = ""
		}
		assert.Equal(t, want, s.Method(), tc.method)
		assert.Equal(t, want, s.MethodValue(), tc.method)
		assert.Equal(t, tc.done, s.SecondFactorDone(), tc.method)
		assert.Equal(t, 90*time.Second, s.idleTimeout())
	}
	password := FromLive(KeyOf("a"), store.LiveSession{UserID: "user-1", Username: "u", Method: store.MethodPassword}, now)
	passkey := FromLive(KeyOf("b"), store.LiveSession{UserID: "user-1", Username: "u", Method: store.MethodPasskey}, now)
	assert.Equal(t, password.user, passkey.user, "the user is shared")
	assert.NotEqual(t, password.Method(), passkey.Method(), "the method is the session's")
	// A session is its user, four times, the idle timeout, the method and a
	// token's scope: 56 bytes, with no padding grown.
	assert.LessOrEqual(t, unsafe.Sizeof(cachedSession{}), uintptr(56))
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = passkey.MethodValue() }))
}
