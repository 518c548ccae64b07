package routes

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pgsession/caddy-pgsession/internal/engine"
	"github.com/pgsession/caddy-pgsession/store"
)

// API tokens on the session path: a script's Authorization: Bearer pgs_…
// finds its user as a cookie would, from the same memory, and is then held
// to the same rules, with the paths the token is limited to on top.

// resolveAPIToken finds the live token of bearer. A token memory does not
// hold costs a reservation against the address's failed logins before it
// is looked up, as a password does, so guessing tokens is throttled on
// every server alike; a token found is forgiven.
func (h *sessions) resolveAPIToken(r *http.Request, bearer string, now time.Time) (Resolved, *Refusal) {
	res := Resolved{}
	if s, ok := h.tokens.Remembered(r.Context(), bearer, now); ok {
		res.Session = s
		return res, nil
	}
	if !store.IsAPIToken(bearer) {
		return res, invalidAPIToken()
	}
	ip := clientIP(r)
	attempt, err := h.store.ReserveTokenAttempt(r.Context(), ip, h.Throttle)
	if err != nil {
		return res, storeUnavailable(err)
	}
	if attempt.Throttled() {
		h.logger.Warn("API token checks throttled", zap.String("client_ip", ip), zap.Int("ip_failures", attempt.IP))
		return res, tooManyAttempts(attempt, "Too many wrong API tokens, try again later")
	}
	if res.Session, err = h.tokens.Look(r.Context(), bearer, now); err != nil {
		return res, storeUnavailable(err)
	}
	if res.IsZero() {
		h.logger.Info("wrong API token", zap.String("client_ip", ip))
		h.recordExpiredToken(r, bearer, ip)
		return res, invalidAPIToken()
	}
	h.forgive(attempt)
	return res, nil
}

// recordExpiredToken puts the use of an expired token in its user's
// sign-in history, so the owner sees that a script still sends it; a token
// that names no token names no account, and is not recorded.
func (h *sessions) recordExpiredToken(r *http.Request, bearer, ip string) {
	owner, found, err := h.store.APITokenOwner(r.Context(), store.HashAPIToken(bearer))
	if err != nil || !found {
		return
	}
	err = h.store.RecordSignIn(r.Context(), store.SignInAttempt{User: owner, IP: ip, UserAgent: r.UserAgent(),
		Outcome: store.SignInFailure, Factor: store.FactorAPIToken})
	if err != nil {
		h.logger.Warn("recording the use of an expired API token", zap.Error(err))
	}
}

// forgive releases the reservation of a token that was found; best effort,
// outliving the request, whose client may be gone.
func (h *sessions) forgive(a store.Attempt) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.store.ReleaseAttempt(ctx, a); err != nil {
		h.logger.Warn("releasing a reserved API token check", zap.Error(err))
	}
}

// touchAPIToken records the use of a token, at most once per renewal
// interval, with the address it came from, so its owner sees it on the
// account page. A token has no idle end, so the write never decides
// whether it lives: revoking it is announced.
func (h *sessions) touchAPIToken(r *http.Request, sess engine.Session, now time.Time, epoch uint64) bool {
	wrote, err := h.store.TouchAPIToken(r.Context(), sess.ID(), now, clientIP(r), time.Duration(h.RenewalInterval))
	if err != nil {
		if c := h.logger.Check(zapcore.WarnLevel, "recording the use of an API token"); c != nil {
			c.Write(zap.Error(err))
		}
		return true
	}
	touch := store.SessionTouchedRecently
	if wrote {
		touch = store.SessionTouched
	}
	h.memory.Renewed(sess, now, touch, epoch)
	return true
}

// invalidAPIToken refuses a bearer token of the API tokens' prefix that
// names no live token: malformed, unknown, expired or revoked.
func invalidAPIToken() *Refusal {
	return refuse(ReasonInvalidAPIToken, "Invalid API token")
}
