package pgsession

import (
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Races an attacker can start from outside, with real parallel requests
// against a real server. Each runs enough rounds that a regression shows.

// sessionSetBy returns the session cookie a response set, or "".
func sessionSetBy(resp reply) string {
	for _, c := range resp.Cookies() {
		if c.Name == "session" && c.MaxAge >= 0 {
			return c.Value
		}
	}
	return ""
}

// loginsInALoop starts four clients logging in as name with password over
// and over; the function it returns stops them, waits for the logins in
// flight, and returns the session tokens of every login that succeeded.
// ready reports whether at least two have, so the race is under way.
func loginsInALoop(t *testing.T, c *testSite, name, password string) (ready func() bool, stop func() []string) {
	done := make(chan struct{})
	var mu sync.Mutex
	var tokens []string
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if resp := postLoginJSON(t, c, name, password); resp.StatusCode == http.StatusOK {
					mu.Lock()
					tokens = append(tokens, sessionSetBy(resp))
					mu.Unlock()
				}
			}
		})
	}
	ready = func() bool { mu.Lock(); defer mu.Unlock(); return len(tokens) >= 2 }
	stop = func() []string {
		close(done)
		wg.Wait()
		return tokens
	}
	return ready, stop
}

// Four clients log in with alice's password in a loop while alice changes
// it. Once the change has returned, no session made with the old password
// may be alive, including those of logins that checked the old password
// just before the change and created their session just after. It holds
// for every way a password changes: the API, the account form, an admin
// and the command line.
func TestPasswordChangeEndsEverySessionOfTheOldPassword(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addAdmin(t, "root", "root's long password")
	db.addUser(t, "alice", "password number 0")
	const admin = "an admin token that is long enough to pass"
	c := startSite(t, siteOptions{db: db.url, handler: `
		max_failed_logins_per_account 100000
		max_failed_logins_per_ip 100000
		admin_token "` + admin + `"`})

	type change func(t *testing.T, owner *browser, old, next string)
	changes := []struct {
		name   string
		change change
	}{
		{"api", func(t *testing.T, owner *browser, old, next string) {
			resp := owner.send(http.MethodPost, c.url("/api/auth/password"), map[string]string{"current_password": old, "new_password": next})
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"account form", func(t *testing.T, owner *browser, old, next string) {
			resp := owner.postForm(c.url("/account"), url.Values{"action": {"password"}, "current_password": {old}, "new_password": {next}})
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.body)
			require.Equal(t, "/account?done=password", resp.Header.Get("Location"))
		}},
		{"admin", func(t *testing.T, _ *browser, _, next string) {
			resp := sendRaw(t, http.MethodPatch, c.url("/api/auth/admin/users/alice"), jsonText(t, map[string]string{"password": next}),
				"Content-Type", "application/json", "Authorization", "Bearer "+admin)
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		}},
		{"command line", func(t *testing.T, _ *browser, _, next string) {
			cliOK(t, db.url, next+"\n", "user", "passwd", "alice", "--password-stdin")
		}},
	}

	password := "password number 0"
	var survived, made int
	for _, ch := range changes {
		for round := range 3 {
			next := fmt.Sprintf("password number %s %d", ch.name, round)
			owner := newBrowser(t)
			owner.login(c, "alice", password)

			ready, stop := loginsInALoop(t, c, "alice", password)
			// Let logins be under way, then change the password in their midst.
			require.Eventually(t, ready, 30*time.Second, time.Millisecond)
			ch.change(t, owner, password, next)
			// Logins in flight finish; any that returned 200 now holds a
			// session of the old password.
			tokens := stop()

			for _, token := range tokens {
				made++
				if meStatus(t, c, token) != http.StatusUnauthorized {
					survived++
				}
			}
			password = next
			assert.Equal(t, http.StatusOK, postLoginJSON(t, c, "alice", password).StatusCode, "%s: the new password works", ch.name)
		}
	}
	t.Logf("%d sessions made with old passwords, %d alive after the change returned", made, survived)
	assert.Zero(t, survived, "sessions of an old password outlived the change (of %d made)", made)
}

// An admin whose rights are removed loses them at the next request, and a
// user who is deleted while their logins are in flight keeps no session.
func TestDeletedUsersAndRemovedAdminRightsTakeEffectAtOnce(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	db.addAdmin(t, "root", "root's long password")
	db.addAdmin(t, "deputy", "deputy's long password")
	c := startSite(t, siteOptions{db: db.url, handler: "max_failed_logins_per_account 100000\nmax_failed_logins_per_ip 100000"})
	root, deputy := newBrowser(t), newBrowser(t)
	root.login(c, "root", "root's long password")
	deputy.login(c, "deputy", "deputy's long password")
	require.Equal(t, http.StatusOK, deputy.get(c.url("/api/auth/admin/users")).StatusCode)

	resp := root.send(http.MethodPatch, c.url("/api/auth/admin/users/deputy"), map[string]bool{"is_admin": false})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
	resp = deputy.get(c.url("/api/auth/admin/users"))
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "the deputy's own session has lost admin rights: %s", resp.body)
	assert.Equal(t, false, deputy.get(c.url("/api/auth/me")).json(t)["is_admin"])

	for round := range 3 {
		name := fmt.Sprintf("temp%d", round)
		db.addUser(t, name, "a temporary password")
		ready, stop := loginsInALoop(t, c, name, "a temporary password")
		require.Eventually(t, ready, 30*time.Second, time.Millisecond)
		resp := root.send(http.MethodDelete, c.url("/api/auth/admin/users/"+name), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.body)
		tokens := stop()
		for _, token := range tokens {
			assert.Equal(t, http.StatusUnauthorized, meStatus(t, c, token), "a session of the deleted user %s", name)
		}
	}
}

// atOnce sends n requests at once and counts the answers by status.
func atOnce(n int, send func(i int) reply) map[int]int {
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			resp := send(i)
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return statuses
}

// Forty, then eighty, wrong guesses arrive at once against a limit of five.
// Exactly five may have their password checked, wherever a password is
// checked, however the requests interleave; the rest get 429.
func TestFailedLoginLimitsHoldUnderParallelGuessing(t *testing.T) {
	t.Parallel()
	db := newTestDB(t)
	// Each limit is tested alone: c holds accounts and registrations to
	// five, perIP holds addresses to five.
	c := startSite(t, siteOptions{db: db.url, handler: `
		max_failed_logins_per_account 5
		max_failed_logins_per_ip 100000
		max_registrations_per_ip 5
		registration on`})
	perIP := startSite(t, siteOptions{db: db.url, handler: `
		max_failed_logins_per_account 100000
		max_failed_logins_per_ip 5`})
	form := func(values url.Values) string { return values.Encode() }
	formType := []string{"Content-Type", "application/x-www-form-urlencoded"}

	for _, guesses := range []int{40, 80} {
		for _, tc := range []struct {
			name    string
			refused int // the status of a checked, wrong password
			setup   func(t *testing.T) func(i int) reply
		}{
			{"json login, one account", http.StatusUnauthorized, func(t *testing.T) func(int) reply {
				db.addUser(t, "alice", "correct horse battery")
				return func(i int) reply { return postLoginJSON(t, c, "alice", fmt.Sprintf("guess %d", i)) }
			}},
			{"form login, one account", http.StatusUnauthorized, func(t *testing.T) func(int) reply {
				db.addUser(t, "alice", "correct horse battery")
				return func(i int) reply {
					return sendRaw(t, http.MethodPost, c.url("/login"), form(url.Values{"username": {"alice"}, "password": {fmt.Sprintf("guess %d", i)}}), formType...)
				}
			}},
			{"json login, one address, many accounts", http.StatusUnauthorized, func(t *testing.T) func(int) reply {
				return func(i int) reply { return postLoginJSON(t, perIP, fmt.Sprintf("user%d", i), "Summer2024!") }
			}},
			{"password change", http.StatusForbidden, func(t *testing.T) func(int) reply {
				db.addUser(t, "alice", "correct horse battery")
				token, _ := db.sessionInDB(t, db.userNamed(t, "alice"))
				return func(i int) reply {
					return sendRaw(t, http.MethodPost, c.url("/api/auth/password"),
						jsonText(t, map[string]string{"current_password": fmt.Sprintf("guess %d", i), "new_password": "the thief's password"}),
						"Content-Type", "application/json", "Cookie", cookieHeader(token))
				}
			}},
			{"account form", http.StatusSeeOther, func(t *testing.T) func(int) reply {
				db.addUser(t, "alice", "correct horse battery")
				token, _ := db.sessionInDB(t, db.userNamed(t, "alice"))
				return func(i int) reply {
					return sendRaw(t, http.MethodPost, c.url("/account"),
						form(url.Values{"action": {"password"}, "current_password": {fmt.Sprintf("guess %d", i)}, "new_password": {"the thief's password"}}),
						append(formType, "Cookie", cookieHeader(token))...)
				}
			}},
			{"registration", http.StatusCreated, func(t *testing.T) func(int) reply {
				return func(i int) reply {
					return sendRaw(t, http.MethodPost, c.url("/api/auth/register"),
						jsonText(t, map[string]string{"username": fmt.Sprintf("newcomer%d-%d", guesses, i), "password": "a fine long password"}),
						"Content-Type", "application/json")
				}
			}},
		} {
			t.Run(fmt.Sprintf("%s, %d at once", tc.name, guesses), func(t *testing.T) {
				db.exec(t, `DELETE FROM pgsession.login_attempts`)
				db.exec(t, `DELETE FROM pgsession.users WHERE username = 'alice'`)
				send := tc.setup(t)
				statuses := atOnce(guesses, send)
				t.Logf("%d at once: %v", guesses, statuses)
				assert.Equal(t, 5, statuses[tc.refused], "passwords checked (or accounts made): %v", statuses)
				assert.Equal(t, guesses-5, statuses[http.StatusTooManyRequests], "%v", statuses)
			})
		}
	}
}
