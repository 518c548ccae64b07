package pgsession

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/smtptest"
)

// Asking for a reset link tells nothing of the name asked about: for an
// account with a verified address and for a name nobody has, the status
// and the body are the same, and so is the time, since the answer comes
// before the look-up. Each request names an account (or a name) of its own
// and comes from an address of its own, so no throttle is reached; the
// real and the unknown alternate, so a busy moment of the machine falls on
// both. The medians are compared as the password check's timing test
// compares them: each within twice the other.
func TestForgotAnswersAlikeForRealAndUnknownNames(t *testing.T) {
	t.Parallel()
	const n = 30
	db := newTestDB(t)
	s, srv := resetSite(t, db, siteOptions{trustForwardedFor: true})
	for i := range n {
		db.addUserWithAddress(t, "user"+strconv.Itoa(i))
	}
	ask := func(login string, i int) (reply, time.Duration) {
		body := jsonText(t, map[string]string{"login": login})
		start := time.Now()
		resp := sendRaw(t, http.MethodPost, s.url("/api/auth/password/forgot"), body,
			"Content-Type", "application/json", "X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i))
		return resp, time.Since(start)
	}
	var realTimes, unknownTimes []time.Duration
	for i := range n {
		realLogin, unknownLogin := "user"+strconv.Itoa(i)+"@example.com", "nobody"+strconv.Itoa(i)+"@example.com"
		var realResp, unknownResp reply
		var realTook, unknownTook time.Duration
		// Each goes first in turn, and the pair's background work is done
		// before the next pair, so neither kind meets the other's.
		if i%2 == 0 {
			realResp, realTook = ask(realLogin, 2*i)
			unknownResp, unknownTook = ask(unknownLogin, 2*i+1)
		} else {
			unknownResp, unknownTook = ask(unknownLogin, 2*i+1)
			realResp, realTook = ask(realLogin, 2*i)
		}
		require.Equal(t, http.StatusAccepted, realResp.StatusCode, realResp.body)
		assert.Equal(t, realResp.StatusCode, unknownResp.StatusCode)
		assert.Equal(t, realResp.body, unknownResp.body)
		assert.Equal(t, realResp.Header.Get("Content-Type"), unknownResp.Header.Get("Content-Type"))
		realTimes, unknownTimes = append(realTimes, realTook), append(unknownTimes, unknownTook)
		require.Eventually(t, func() bool {
			return len(srv.Messages(t)) == i+1 && strings.Count(s.logs(), "no account has that name") == i+1
		}, smtptest.WaitTimeout, 5*time.Millisecond, "the pair's links sent, or not")
	}
	real, unknown := resetMedian(realTimes), resetMedian(unknownTimes)
	t.Logf("median answer: an account with an address %v, an unknown name %v", real, unknown)
	assert.Less(t, real, 2*unknown, "a real account's answer is slower than an unknown name's")
	assert.Less(t, unknown, 2*real, "an unknown name's answer is slower than a real account's")

	// The real ones were real: each account got its link.
	waitResetLink(t, srv, "user0@example.com", 1)
}

func resetMedian(times []time.Duration) time.Duration {
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}
