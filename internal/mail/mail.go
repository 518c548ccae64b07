// Package mail sends the plugin's mail (password resets, address checks,
// invitations) through an SMTP server, in the background: Send queues a
// message and returns at once, and workers deliver it with retries, so a
// slow or down mail server never holds a request. Nothing it logs holds a
// message's body, which carries a link that is a credential, the
// recipient's address beyond its domain, or the password.
package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/mail"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// The TLS modes of Config.TLS.
const (
	TLSStart    = "starttls" // plain at first, then STARTTLS, which must be offered: port 587
	TLSImplicit = "tls"      // TLS from the first byte: port 465
	TLSOff      = "off"      // no TLS: a relay on the same host, port 25
)

// Kinds are the kinds of mail the plugin sends, as the metrics label them.
var Kinds = []string{"reset", "verify_email", "email_changed", "invitation"}

// The reasons a message is dropped without an attempt, as the metrics label them.
const (
	DropQueueFull  = "queue_full"  // the queue was full
	DropBadMessage = "bad_message" // a line break in the recipient or subject, or no address
	DropStopped    = "stopped"     // still queued when the sender stopped
)

// DropReasons are the reasons a message is dropped, in order.
var DropReasons = []string{DropQueueFull, DropBadMessage, DropStopped}

// Config is the smtp block of the pg_session global option, with its
// placeholders expanded.
type Config struct {
	// Host is the mail server's host name or address. Required.
	Host string `json:"host,omitempty"`
	// Port is the server's port. Default: 587 for starttls, 465 for tls,
	// 25 for off.
	Port int `json:"port,omitempty"`
	// Username and Password sign in with AUTH PLAIN; without a username
	// the server must take mail without signing in. Default: none.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// From is the sender, "site@example.com" or "Example <site@example.com>".
	// Required.
	From string `json:"from,omitempty"`
	// TLS is starttls, tls or off. Default: starttls.
	TLS string `json:"tls,omitempty"`
}

// Mode is the TLS mode, starttls unless set.
func (c Config) Mode() string {
	if c.TLS == "" {
		return TLSStart
	}
	return c.TLS
}

// PortOrDefault is the port, or the usual one for the TLS mode.
func (c Config) PortOrDefault() int {
	if c.Port != 0 {
		return c.Port
	}
	return map[string]int{TLSStart: 587, TLSImplicit: 465, TLSOff: 25}[c.Mode()]
}

// Metrics are the sender's counters; New makes any left nil, uncounted.
type Metrics struct {
	Sent    *prometheus.CounterVec // delivered, by kind
	Failed  *prometheus.CounterVec // given up on, by kind
	Retries prometheus.Counter     // attempts after a message's first
	Dropped *prometheus.CounterVec // never tried or not finished, by reason
	Queued  prometheus.Gauge       // messages waiting, for a first attempt or a retry
}

// Options are how the sender runs; the zero value is the default.
type Options struct {
	// RootCAs verify the server's certificate; nil is the system's.
	RootCAs *x509.CertPool
	// QueueSize bounds the messages waiting. Default: 1000.
	QueueSize int
	// Workers deliver at once. Default: 2.
	Workers int
	// Backoff is the wait before each retry: its length is how many
	// retries a message gets. Default: 6 attempts over about two minutes.
	Backoff []time.Duration
	// AttemptTimeout bounds one attempt, connection to QUIT. Default: 1m.
	AttemptTimeout time.Duration
	// StopDeadline is how long Stop gives the queued messages. Default: 5s.
	StopDeadline time.Duration
	Metrics      Metrics
}

// DefaultBackoff is 5 retries after the first attempt, over two minutes:
// long enough for a server's restart or a greylisting, short enough that
// a reset link still works when it comes.
var DefaultBackoff = []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second, 55 * time.Second}

// Sender is a queue of messages and the workers that deliver them; it
// implements routes.Mailer.
type Sender struct {
	cfg  Config
	from *mail.Address
	addr string
	tls  *tls.Config
	opts Options
	m    Metrics

	// ctx ends attempts in progress: when Stop's deadline passes.
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{} // a message is ready, or the sender drains
	done   chan struct{} // closed when Stop begins
	wg     sync.WaitGroup

	mu       sync.Mutex
	logger   *zap.Logger
	queue    []*message // waiting, each until its at
	state    state
	full     bool // a drop for a full queue was logged, and the queue has had no room since
	unfinish int  // messages given up on while stopping
}

type state int

const (
	created state = iota
	running
	stopping
	stopped
)

// New makes a sender of cfg, whose rules (a host, a From address) the app
// has checked; it connects to nothing until a message is sent.
func New(cfg Config, opts Options) (*Sender, error) {
	from, err := ParseFrom(cfg.From)
	if err != nil {
		return nil, err
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1000
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = time.Minute
	}
	if opts.StopDeadline <= 0 {
		opts.StopDeadline = 5 * time.Second
	}
	m := &opts.Metrics
	for _, vec := range []**prometheus.CounterVec{&m.Sent, &m.Failed, &m.Dropped} {
		if *vec == nil {
			*vec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "uncounted"}, []string{"label"})
		}
	}
	if m.Retries == nil {
		m.Retries = prometheus.NewCounter(prometheus.CounterOpts{Name: "uncounted"})
	}
	if m.Queued == nil {
		m.Queued = prometheus.NewGauge(prometheus.GaugeOpts{Name: "uncounted"})
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Sender{cfg: cfg, from: from, addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.PortOrDefault())),
		// Verification is never off: a test hands its CA in RootCAs.
		tls:  &tls.Config{ServerName: cfg.Host, RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
		opts: opts, m: *m, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1), done: make(chan struct{}),
		logger: zap.NewNop()}, nil
}

// Start starts the workers, which log to logger. Messages sent before
// wait in the queue. Started again, as by the next config of a reload that
// keeps the sender, it logs to the new logger from then on.
func (s *Sender) Start(logger *zap.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case running:
		s.logger = logger
		return
	case stopping, stopped:
		return
	}
	s.logger, s.state = logger, running
	for range s.opts.Workers {
		s.wg.Go(s.work)
	}
	s.signal()
}

// Send queues a message to one address and returns at once. A message
// that cannot be sent as given (a line break in to or subject, which
// would add headers of the caller's choosing), or that finds the queue
// full, is dropped, counted and logged.
func (s *Sender) Send(kind, to, subject, body string) {
	m, err := build(s.from, kind, to, subject, body, time.Now())
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		s.m.Dropped.WithLabelValues(DropBadMessage).Inc()
		s.logger.Warn("mail refused before sending", zap.String("kind", kind), zap.String("reason", err.Error()))
	case s.state >= stopping:
		s.m.Dropped.WithLabelValues(DropStopped).Inc()
		s.logger.Warn("mail dropped: the sender has stopped", zap.String("kind", kind))
	case len(s.queue) >= s.opts.QueueSize:
		s.m.Dropped.WithLabelValues(DropQueueFull).Inc()
		// One line for a run of drops: a flood must not flood the log too.
		if !s.full {
			s.full = true
			s.logger.Warn("mail dropped: the queue is full; further drops are counted, not logged, until it has room",
				zap.String("kind", kind), zap.Int("queue_size", s.opts.QueueSize))
		}
	default:
		s.full = false
		s.queue = append(s.queue, m)
		s.m.Queued.Inc()
		s.signal()
	}
}

// signal wakes a worker; called with mu held.
func (s *Sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// work delivers messages until the sender stops.
func (s *Sender) work() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m, wait, done := s.next()
		switch {
		case done:
			return
		case m != nil:
			s.finish(m, s.attempt(m))
			continue
		}
		timer.Reset(wait)
		select {
		case <-s.wake:
		case <-timer.C:
		case <-s.done:
		case <-s.ctx.Done():
		}
	}
}

// next takes the message due first, or says how long until one is due,
// or that the worker is done. While stopping, every message is due.
func (s *Sender) next() (m *message, wait time.Duration, done bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return nil, 0, true
	}
	first := -1
	for i, q := range s.queue {
		if first < 0 || q.at.Before(s.queue[first].at) {
			first = i
		}
	}
	switch {
	case first < 0 && s.state == stopping:
		return nil, 0, true
	case first < 0:
		return nil, time.Hour, false
	}
	if wait := time.Until(s.queue[first].at); wait > 0 && s.state != stopping {
		return nil, wait, false
	}
	m = s.queue[first]
	s.queue = append(s.queue[:first], s.queue[first+1:]...)
	s.m.Queued.Dec()
	m.attempts++
	if m.attempts > 1 {
		s.m.Retries.Inc()
	}
	if len(s.queue) > 0 {
		s.signal() // another worker may take the next
	}
	return m, 0, false
}

// finish counts an attempt's outcome, and queues a retry after a failure
// that may pass. A message given up on is logged once.
func (s *Sender) finish(m *message, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.m.Sent.WithLabelValues(m.kind).Inc()
	case s.state == stopping && !permanent(err):
		s.unfinish++ // counted and logged with the rest by Stop
	case !permanent(err) && m.attempts <= len(s.opts.Backoff):
		m.at = time.Now().Add(s.opts.Backoff[m.attempts-1])
		s.queue = append(s.queue, m)
		s.m.Queued.Inc()
		s.signal()
	default:
		s.m.Failed.WithLabelValues(m.kind).Inc()
		s.logger.Warn("mail not delivered", zap.String("kind", m.kind), zap.Int("attempts", m.attempts),
			zap.Bool("permanent", permanent(err)), zap.String("recipient_domain", m.domain),
			zap.String("error", describe(err, m)))
	}
}

// Stop gives the queued messages StopDeadline to go, each one attempt,
// then ends the attempts in progress and drops the rest, logging how many.
func (s *Sender) Stop() {
	s.mu.Lock()
	if s.state >= stopping {
		s.mu.Unlock()
		return
	}
	started := s.state == running
	s.state = stopping
	close(s.done)
	s.mu.Unlock()
	if started {
		deadline := time.AfterFunc(s.opts.StopDeadline, s.cancel)
		s.wg.Wait()
		deadline.Stop()
	}
	s.cancel()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = stopped
	dropped := len(s.queue) + s.unfinish
	s.m.Queued.Sub(float64(len(s.queue)))
	s.queue, s.unfinish = nil, 0
	if dropped > 0 {
		s.m.Dropped.WithLabelValues(DropStopped).Add(float64(dropped))
		s.logger.Warn("mail dropped at stop: not delivered within the deadline", zap.Int("messages", dropped),
			zap.Duration("deadline", s.opts.StopDeadline))
	}
}
