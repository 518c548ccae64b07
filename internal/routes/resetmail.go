package routes

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/pgsession/caddy-pgsession/store"
)

// The link sender: the throttles a request for a reset link meets before
// its answer, and the queue of the work done after it.

// Limits on asking for reset links. The ones by client address and by the
// name typed are token buckets in this server's memory, checked before the
// answer and the same whether or not the name is an account's; the one by
// account is counted in PostgreSQL, across servers, after the answer, and
// is silent.
const (
	forgotBurstPerAddress = 10
	forgotEveryPerAddress = 6 * time.Minute // 10 an hour, after the burst
	forgotBurstPerLogin   = 3
	forgotEveryPerLogin   = 20 * time.Minute
	forgotRemembered      = 10000 // addresses or names kept; past it they share one bucket
	// linksPerAccount are at most 3 links an hour per account, however it
	// is named (by its username or by its address).
	linksPerAccount = 3
	linksWindow     = time.Hour

	// linkQueueSize is how many requests may wait for the sender; past it
	// a request is dropped (and logged), as a flood would otherwise grow
	// memory without bound.
	linkQueueSize = 256
	// linkJobTimeout bounds one request's look-up, link and hand-over to
	// the mailer.
	linkJobTimeout = 10 * time.Second
)

// linkSender sends reset links in the background, one request at a time,
// in the order asked: a single worker, started when there is work and
// gone when there is none.
type linkSender struct {
	routes    *resetRoutes
	byAddress *AddressLimiter
	byLogin   *AddressLimiter
	jobs      chan linkJob
	worker    chan struct{} // holds a token while the worker runs
}

// linkJob is one request for a link: the name typed, and the address of the
// site the link must lead to, taken from the request.
type linkJob struct {
	login, origin string
}

func newLinkSender(h *resetRoutes) *linkSender {
	return &linkSender{routes: h,
		byAddress: newAddressLimiter(forgotBurstPerAddress, forgotEveryPerAddress, forgotRemembered),
		byLogin:   newAddressLimiter(forgotBurstPerLogin, forgotEveryPerLogin, forgotRemembered),
		jobs:      make(chan linkJob, linkQueueSize), worker: make(chan struct{}, 1)}
}

// loginKey is how the name typed is counted: an address by its normalised
// form, a username by its key, so look-alike spellings share one count.
func loginKey(login string) string {
	if strings.Contains(login, "@") {
		return "email:" + store.NormalizeEmail(login)
	}
	if name, err := store.PrepareUsername(login); err == nil && name.Key != "" {
		return "name:" + name.Key
	}
	return "name:" + strings.ToLower(login)
}

// throttle refuses with 429 a client, or a name, that asked too often.
func (l *linkSender) throttle(r *http.Request, login string) error {
	now := time.Now()
	wait, ok := l.byAddress.allow(clientAddress(clientIP(r)), now)
	if ok {
		wait, ok = l.byLogin.allow(loginKey(login), now)
	}
	if ok {
		return nil
	}
	l.routes.logger.Warn("reset links throttled", zap.String("client_ip", clientIP(r)))
	return &Refusal{status: ReasonStatus[ReasonThrottled], reason: ReasonThrottled,
		message: "Too many reset links asked for, try again later", retryAfter: wait}
}

// queue hands a request to the worker, starting it when it is not running.
func (l *linkSender) queue(r *http.Request, login string) {
	select {
	case l.jobs <- linkJob{login: login, origin: l.routes.portalOrigin(r)}:
	default:
		l.routes.logger.Warn("reset link queue full: a request for a link was dropped",
			zap.String("client_ip", clientIP(r)))
		return
	}
	select {
	case l.worker <- struct{}{}:
		go l.work()
	default: // the worker is running, and will see the job
	}
}

// work sends the queued links, then stops. A job queued as it stops is
// seen by the check after it gives up its token.
func (l *linkSender) work() {
	for {
		for done := false; !done; {
			select {
			case job := <-l.jobs:
				l.send(job)
			default:
				done = true
			}
		}
		<-l.worker
		if len(l.jobs) == 0 {
			return
		}
		select {
		case l.worker <- struct{}{}:
		default:
			return // another worker took over
		}
	}
}

// send does what the answer did not wait for: find the account, check its
// address and its own limit, make the link and mail it. Nothing it logs
// names the name typed, or carries the link.
func (l *linkSender) send(job linkJob) {
	h := l.routes
	defer func() {
		if v := recover(); v != nil {
			h.logger.Error("sending a reset link panicked", zap.Any("panic", v))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), linkJobTimeout)
	defer cancel()
	user, err := h.store.UserByLogin(ctx, job.login)
	switch {
	case errors.Is(err, store.ErrUserNotFound):
		h.logger.Info("reset link not sent: no account has that name or verified address")
		return
	case err != nil:
		h.logger.Warn("reset link not sent: looking up the account", zap.Error(err))
		return
	case user.Email == "" || !user.EmailVerified:
		h.logger.Info("reset link not sent: the account has no verified address", zap.String("username", user.Username))
		return
	}
	wait, err := h.store.ReserveAccountLink(ctx, store.PurposeReset, user.ID, store.LinkLimit{Max: linksPerAccount, Window: linksWindow})
	switch {
	case err != nil:
		h.logger.Warn("reset link not sent: counting the account's links", zap.Error(err))
		return
	case wait > 0:
		h.logger.Info("reset link not sent: the account was sent enough lately", zap.String("username", user.Username),
			zap.Duration("retry_after", wait))
		return
	}
	token, err := h.store.NewAccountToken(ctx, store.PurposeReset, user.ID, user.Email, h.ResetLinkLifetime)
	if err != nil {
		h.logger.Warn("reset link not sent: making the link", zap.Error(err))
		return
	}
	mailer := h.shared.Mail
	if mailer == nil {
		return
	}
	subject, body := h.resetMail(user, job.origin+h.LoginPath+"/reset?token="+token, time.Now().Add(h.ResetLinkLifetime))
	mailer.Send("reset", user.Email, subject, body)
	h.logger.Info("reset link sent", zap.String("username", user.Username))
}

// resetMail is the reset link's message: the site and the account it is
// for, the link, when it stops working, and what to do if it was not asked for.
func (h *resetRoutes) resetMail(user *store.User, link string, expires time.Time) (subject, body string) {
	site := h.SiteName
	if site == "" {
		site = hostOfOrigin(link)
	}
	subject = "Reset your password for " + site
	body = "Someone asked to reset the password of the account " + user.Username + " on " + site + ".\n\n" +
		"To choose a new password, open this link:\n\n" + link + "\n\n" +
		"It works once, for " + waitText(int(h.ResetLinkLifetime.Seconds())) + " (until " +
		expires.UTC().Format("2 Jan 2006 15:04 UTC") + "). Setting the new password signs you out everywhere; " +
		"your two-step sign-in, if you have one, stays on.\n\n" +
		"If you did not ask for this, ignore this mail: your password stays as it is.\n"
	return subject, body
}

// hostOfOrigin is the host of an absolute link.
func hostOfOrigin(link string) string {
	rest := link[strings.Index(link, "://")+3:]
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return hostOnly(rest)
}
