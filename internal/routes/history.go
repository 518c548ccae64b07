package routes

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/store"
	"github.com/pgsession/caddy-pgsession/web"
)

// The sign-in history: every attempt to sign in to an existing account,
// shown to its owner ({api_path}/history, the account page) and to admins.

const (
	// historyWriteTimeout bounds the recording of one attempt, which is a
	// single indexed INSERT: a database that hangs costs a login at most this.
	historyWriteTimeout = time.Second
	// defaultHistoryLimit and maxHistoryLimit are how many attempts the JSON
	// routes list without ?limit= and at most.
	defaultHistoryLimit = 50
	maxHistoryLimit     = 500
	// accountPageSignIns is how many attempts the account page shows.
	accountPageSignIns = 10
)

// recordSignIn adds an attempt to sign in as username to its account's
// history; user is the account after a success. It runs in the request, so
// the history is complete when the answer arrives, and stops waiting for
// the database after historyWriteTimeout; it is not cancelled when the
// client hangs up, so hanging up does not hide an attempt. A failure is
// logged and the login goes on.
func (h *attempts) recordSignIn(r *http.Request, username string, user *store.User, outcome, factor string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), historyWriteTimeout)
	defer cancel()
	a := store.SignInAttempt{Username: username, IP: clientIP(r), UserAgent: r.UserAgent(), Outcome: outcome, Factor: factor}
	if user != nil {
		a.User = user.ID
	}
	if err := h.store.RecordSignIn(ctx, a); err != nil {
		h.logger.Warn("could not record a sign-in attempt in the history", zap.String("outcome", outcome),
			zap.String("client_ip", a.IP), zap.Error(err))
	}
}

// signInJSON is how an attempt appears in the JSON routes.
type signInJSON struct {
	Time      time.Time `json:"time"`
	IP        string    `json:"ip"`
	UserAgent string    `json:"user_agent"`
	Device    string    `json:"device"`
	Outcome   string    `json:"outcome"`
	Factor    string    `json:"factor,omitempty"`
}

// serveOwnHistory lists the caller's latest sign-in attempts.
func (h *accountRoutes) serveOwnHistory(w http.ResponseWriter, r *http.Request, c *caller) error {
	return h.listSignIns(w, r, c.session.User.ID)
}

// listSignIns answers with a user's latest sign-in attempts, newest first:
// defaultHistoryLimit of them, or ?limit= up to maxHistoryLimit.
func (h *attempts) listSignIns(w http.ResponseWriter, r *http.Request, userID store.UserID) error {
	limit, err := historyLimit(r.URL.RawQuery)
	if err != nil {
		return err
	}
	signIns, err := h.store.SignInHistory(r.Context(), userID, limit)
	if err != nil {
		return storeUnavailable(err)
	}
	return writeJSONList(w, signIns, func(s store.SignIn) signInJSON {
		return signInJSON{Time: s.At, IP: s.IP, UserAgent: s.UserAgent,
			Device: web.DescribeUserAgent(s.UserAgent), Outcome: s.Outcome, Factor: s.Factor}
	})
}

// historyLimit reads ?limit= from a raw query string: defaultHistoryLimit
// when absent, else digits only, from 1 to maxHistoryLimit, given once. A
// query that does not parse is refused rather than read in part: Go drops a
// pair such as "limit=1;select" silently, which would answer with the
// default instead of the 400 the client needs to see.
func historyLimit(rawQuery string) (int, error) {
	wrong := refuse(ReasonBadRequest, fmt.Sprintf("limit must be a whole number from 1 to %d", maxHistoryLimit))
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return 0, refuse(ReasonBadRequest, "The query string cannot be read: separate parameters with & and escape the rest")
	}
	values, ok := q["limit"]
	switch {
	case !ok:
		return defaultHistoryLimit, nil
	case len(values) != 1:
		return 0, wrong
	}
	v := values[0]
	if v == "" || strings.Trim(v, "0123456789") != "" {
		return 0, wrong
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxHistoryLimit {
		return 0, wrong
	}
	return n, nil
}

// addSignIns fills in the account page's "Recent sign-ins", when the
// history is kept.
func (h *accountRoutes) addSignIns(r *http.Request, page *web.AccountPage, userID store.UserID) error {
	if page.ShowSignIns = h.keepsHistory; !page.ShowSignIns {
		return nil
	}
	signIns, err := h.store.SignInHistory(r.Context(), userID, accountPageSignIns)
	if err != nil {
		return storeUnavailable(err)
	}
	for _, s := range signIns {
		page.SignIns = append(page.SignIns, web.AccountSignIn{At: s.At, Device: web.DescribeUserAgent(s.UserAgent),
			UserAgent: s.UserAgent, IP: s.IP, Outcome: s.Outcome, Factor: s.Factor})
	}
	return nil
}
