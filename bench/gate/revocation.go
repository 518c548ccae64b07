package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/pgsession/caddy-pgsession/store"
)

// revocationTimeout bounds how long one trial polls server B, and
// revocationGiveUp how many trials may time out before the run stops, so a
// cache that never learns of logouts ends the run in seconds, not hours.
const (
	revocationTimeout = 5 * time.Second
	revocationGiveUp  = 3
)

// revocationResult is what the trials found.
type revocationResult struct {
	trials int
	// delays run from the return of the logout on A to B's first 401, for
	// the trials that saw one.
	delays []time.Duration
	// servedAfter counts B's 200s to requests sent after the logout
	// returned; trialsServed counts the trials with at least one.
	servedAfter, trialsServed int
	timedOut                  int
	// servedAgain counts 200s to requests sent after B's first 401: a
	// refused session must stay refused.
	servedAgain int
}

// measureRevocation logs sessions out on server A (its gated site) and polls server B until
// it refuses them: the time a logout takes to reach every server.
func (env *environment) measureRevocation(ctx context.Context, b *serverB) (*revocationResult, error) {
	progress("timing %d logouts on server A as seen by server B", env.cfg.revocationTrials)
	// One keep-alive connection to each server, so each poll is one round
	// trip and not a TCP handshake.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	logoutURL := fmt.Sprintf("http://127.0.0.1:%d/api/auth/logout", env.ports["gate_cache_on"])
	pageURL := siteURL(b.port)
	res := &revocationResult{trials: env.cfg.revocationTrials}
	for trial := range env.cfg.revocationTrials {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		token, _, err := env.store.CreateSession(ctx, store.SessionParams{User: *env.user, Lifetime: time.Hour})
		if err != nil {
			return nil, err
		}
		cookie := "session=" + token
		if status, err := get(client, pageURL, cookie); err != nil || status != http.StatusOK {
			return nil, fmt.Errorf("trial %d: server B answered a new session with %d (%v), want 200", trial+1, status, err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, logoutURL, nil)
		req.Header.Set("Cookie", cookie)
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("trial %d: logging out on server A: %w", trial+1, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("trial %d: logout on server A answered %s, want 200", trial+1, resp.Status)
		}
		loggedOut := time.Now()

		served := 0
		for {
			status, err := get(client, pageURL, cookie)
			now := time.Now()
			if err != nil {
				return nil, fmt.Errorf("trial %d: polling server B: %w", trial+1, err)
			}
			if status == http.StatusUnauthorized {
				res.delays = append(res.delays, now.Sub(loggedOut))
				for range 5 {
					if status, err := get(client, pageURL, cookie); err == nil && status == http.StatusOK {
						res.servedAgain++
					}
				}
				break
			}
			if status != http.StatusOK {
				return nil, fmt.Errorf("trial %d: server B answered %d, want 200 or 401", trial+1, status)
			}
			served++
			if now.Sub(loggedOut) > revocationTimeout {
				res.timedOut++
				break
			}
		}
		res.servedAfter += served
		if served > 0 {
			res.trialsServed++
		}
		if res.timedOut >= revocationGiveUp {
			return nil, fmt.Errorf("server B still served %d logged-out sessions %s after logout; giving up", res.timedOut, revocationTimeout)
		}
	}
	slices.Sort(res.delays)
	return res, nil
}

// get requests url with cookie and returns the status, reading the body so
// the connection is reused.
func get(client *http.Client, url, cookie string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Cookie", cookie)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, errors.Join(err, resp.Body.Close())
}

func (r *revocationResult) print(w io.Writer) {
	fmt.Fprintf(w, "Revocation across two servers: %d sessions each checked on B (200), logged out on A,\n", r.trials)
	fmt.Fprintln(w, "then B polled back to back until it answered 401.")
	if len(r.delays) > 0 {
		fmt.Fprintf(w, "  logout returned → B's first 401: p50 %s, p99 %s, max %s\n",
			latency(percentile(r.delays, 50)), latency(percentile(r.delays, 99)), latency(r.delays[len(r.delays)-1]))
	}
	fmt.Fprintf(w, "  200s served by B between the logout's return and B's first 401: %d, in %d of %d trials\n",
		r.servedAfter, r.trialsServed, r.trials)
	fmt.Fprintf(w, "  200s served by B after its first 401 (5 more requests a trial): %d\n", r.servedAgain)
	if r.timedOut > 0 {
		fmt.Fprintf(w, "  trials where B still served the session after %s: %d\n", revocationTimeout, r.timedOut)
	}
}
