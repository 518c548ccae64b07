package identity

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds each call to a provider and a whole exchange,
	// so a provider that stops answering holds a sign-in for seconds, not
	// minutes.
	DefaultTimeout = 10 * time.Second
	// DefaultRetryMin and DefaultRetryMax bound the wait between attempts
	// to reach a provider that could not be reached, doubling from one to
	// the other.
	DefaultRetryMin = time.Second
	DefaultRetryMax = time.Minute
	// DefaultRecheck is how old the last proof that a provider answers may
	// be before Available asks for another, in the background.
	DefaultRecheck = time.Minute
)

// Options are how a Provider reaches its provider; tests shorten them.
type Options struct {
	// Client makes the calls; without a Timeout of its own it gets
	// Timeout. Default: a client of net/http's default transport.
	Client *http.Client
	// Timeout bounds each call and each Exchange. Default: DefaultTimeout.
	Timeout time.Duration
	// RetryMin and RetryMax bound the wait between attempts while the
	// provider cannot be reached. Default: DefaultRetryMin, DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// Recheck is how old a proof that the provider answers may be before
	// Available asks for another. Default: DefaultRecheck.
	Recheck time.Duration
	// Logger gets the provider's changes between available and not
	// (SetLogger changes it). Default: none.
	Logger *zap.Logger
}

// Provider is one identity provider of the config. New makes it without a
// call to the provider, so `caddy validate` makes none; Start reaches it in
// the background, and keeps trying while it cannot.
type Provider struct {
	cfg    Config
	opts   Options
	client *http.Client // every call; follows redirects
	api    *http.Client // GitHub's API, whose membership answers redirect to mean "no"
	logger atomic.Pointer[zap.Logger]

	mu      sync.Mutex
	found   *discovery // OpenID Connect: what discovery found last; nil before
	down    string     // why the provider cannot be used now; "" when it can
	checked time.Time  // when the provider last answered
	nudge   chan struct{}

	start sync.Once
	stop  context.CancelFunc
	done  chan struct{}
}

// New makes the provider of cfg, whose rules the caller checked and whose
// secrets it expanded.
func New(cfg Config, opts Options) (*Provider, error) {
	switch {
	case cfg.Name == "":
		return nil, errors.New("identity provider without a name")
	case (cfg.Issuer == "") == !cfg.GitHub:
		return nil, fmt.Errorf("identity provider %s needs exactly one of issuer and github", cfg.Name)
	case cfg.ClientID == "" || cfg.ClientSecret == "":
		return nil, fmt.Errorf("identity provider %s needs client_id and client_secret", cfg.Name)
	}
	opts.Timeout = cmp.Or(opts.Timeout, DefaultTimeout)
	opts.RetryMin = cmp.Or(opts.RetryMin, DefaultRetryMin)
	opts.RetryMax = max(cmp.Or(opts.RetryMax, DefaultRetryMax), opts.RetryMin)
	opts.Recheck = cmp.Or(opts.Recheck, DefaultRecheck)
	client := new(http.Client)
	if opts.Client != nil {
		*client = *opts.Client
	}
	client.Timeout = cmp.Or(client.Timeout, opts.Timeout)
	api := *client
	api.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	p := &Provider{cfg: cfg, opts: opts, client: client, api: &api, nudge: make(chan struct{}, 1), done: make(chan struct{})}
	p.SetLogger(opts.Logger)
	if !cfg.GitHub {
		// GitHub needs no discovery, so it can be used until a call fails;
		// an OpenID provider only once its discovery document is read.
		p.down = "not reached yet"
	}
	return p, nil
}

// Name is the provider's name, as in its callback's path.
func (p *Provider) Name() string { return p.cfg.Name }

// Label is the text of the provider's button.
func (p *Provider) Label() string { return p.cfg.ButtonLabel() }

// Config is the provider's config without its client secret, so that a
// caller cannot log it by mistake.
func (p *Provider) Config() Config {
	c := p.cfg
	c.ClientSecret = ""
	return c
}

// SetLogger makes the provider log through l: a provider shared across
// config reloads logs through the config that started last. Nil logs nothing.
func (p *Provider) SetLogger(l *zap.Logger) {
	if l == nil {
		l = zap.NewNop()
	}
	p.logger.Store(l)
}

// Start reaches the provider in the background (discovery for OpenID
// Connect, a look at the API for GitHub) and returns at once; while the
// provider cannot be reached it tries again, waiting longer each time, up
// to RetryMax. It runs until ctx ends or Stop; a second Start does nothing.
func (p *Provider) Start(ctx context.Context) {
	p.start.Do(func() {
		ctx, p.stop = context.WithCancel(ctx)
		go p.run(ctx)
	})
}

// Stop ends what Start began and waits for it; it is safe without Start.
func (p *Provider) Stop() {
	p.start.Do(func() { close(p.done) })
	if p.stop != nil {
		p.stop()
	}
	<-p.done
}

// Destruct stops the provider, for a caddy.UsagePool that shares it
// across config reloads.
func (p *Provider) Destruct() error {
	p.Stop()
	return nil
}

// Available says whether the provider can be used now, and if not why, in
// words for the log (an address, a status; never a secret). When the last
// proof that it answers is older than Recheck it asks for another, which
// runs in the background: the answer is today's, never a wait.
func (p *Provider) Available() (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down == "" && time.Since(p.checked) > p.opts.Recheck {
		p.nudgeLocked()
	}
	return p.down == "", p.down
}

// CheckNow reaches the provider once, now, and records the outcome, for a
// sign-in about to send a browser there: a provider that went down since
// the last proof is then shown as unavailable rather than left to fail in
// the browser. ctx bounds the wait.
func (p *Provider) CheckNow(ctx context.Context) error {
	err := p.check(ctx)
	if err != nil {
		// The loop, idle while the provider answered, retries from now on
		// and says when it is back.
		p.mu.Lock()
		p.nudgeLocked()
		p.mu.Unlock()
	}
	return err
}

func (p *Provider) nudgeLocked() {
	select {
	case p.nudge <- struct{}{}:
	default:
	}
}

// run reaches the provider, then again when asked to (nudge), or after a
// wait while it cannot be reached.
func (p *Provider) run(ctx context.Context) {
	defer close(p.done)
	wait := p.opts.RetryMin
	for {
		err := p.check(ctx)
		if ctx.Err() != nil {
			return
		}
		var retry <-chan time.Time
		nudge := p.nudge
		if err != nil {
			// While it fails, only the timer retries: a login page shown
			// often must not turn the backoff into a flood.
			nudge = nil
			retry = time.After(wait/2 + rand.N(wait/2+1))
			wait = min(2*wait, p.opts.RetryMax)
		} else {
			wait = p.opts.RetryMin
		}
		select {
		case <-ctx.Done():
			return
		case <-nudge:
		case <-retry:
		}
	}
}

// check reaches the provider once and records the outcome; a panic is an
// outcome too, rather than the end of the retries.
func (p *Provider) check(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
			p.record(err)
		}
	}()
	call, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	if p.cfg.GitHub {
		err = p.probeGitHub(call)
	} else {
		err = p.discover(call)
	}
	if err != nil && call.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w (no answer within %s)", err, p.opts.Timeout)
	}
	// A check cut short by Stop says nothing of the provider.
	if ctx.Err() == nil {
		p.record(err)
	}
	return err
}

// record notes whether the provider answered, logging each change.
func (p *Provider) record(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		if p.down != "" {
			p.logger.Load().Info("identity provider available", zap.String("provider", p.cfg.Name))
		}
		p.down, p.checked = "", time.Now()
		return
	}
	reason := p.redact(shorten(err.Error()))
	if p.down == "" || p.down == "not reached yet" {
		p.logger.Load().Warn("identity provider unavailable: it is shown as such on the login page, and tried again",
			zap.String("provider", p.cfg.Name), zap.String("reason", reason))
	} else {
		p.logger.Load().Debug("identity provider still unavailable", zap.String("provider", p.cfg.Name), zap.String("reason", reason))
	}
	p.down = reason
}

// unreachable records that a call during a sign-in found the provider out
// of reach, and asks for a check, which says when it is back; it returns
// the sign-in's error.
func (p *Provider) unreachable(detail string) error {
	p.record(errors.New(detail))
	p.mu.Lock()
	p.nudgeLocked()
	p.mu.Unlock()
	return p.fail(ErrUnavailable, "%s", detail)
}

// shorten keeps a reason to a line: a provider that is down may answer
// with a whole HTML page.
func shorten(s string) string {
	most := 300
	if len(s) <= most {
		return s
	}
	for !utf8.RuneStart(s[most]) {
		most--
	}
	return s[:most] + "…"
}
