package mail

import (
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgsession/caddy-pgsession/internal/smtptest"
)

// The sender against a real SMTP server (internal/smtptest), each test
// with a server and a sender of its own, with retries a few milliseconds
// apart so a test of a retry takes no longer than the retry.

// testSender is a running sender, what it logged and its counters.
type testSender struct {
	*Sender
	logs *observer.ObservedLogs
}

// fastBackoff retries often enough for a server to come back within a test.
var fastBackoff = []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond,
	160 * time.Millisecond, 320 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond,
	500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond}

// value reads a counter or a gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

func newMetrics() Metrics {
	return Metrics{
		Sent:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sent"}, []string{"kind"}),
		Failed:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "failed"}, []string{"kind"}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "retries"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dropped"}, []string{"reason"}),
		Queued:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "queued"}),
	}
}

// startSender starts a sender of cfg to srv, stopped when the test ends;
// opts.Backoff defaults to fastBackoff.
func startSender(t *testing.T, srv *smtptest.Server, cfg Config, opts Options) *testSender {
	t.Helper()
	cfg.Host, cfg.Port = srv.Host(), srv.Port()
	if cfg.From == "" {
		cfg.From = "Example Site <site@example.com>"
	}
	if opts.Backoff == nil {
		opts.Backoff = fastBackoff
	}
	opts.RootCAs = srv.CACertPool()
	opts.Metrics = newMetrics()
	s, err := New(cfg, opts)
	require.NoError(t, err)
	core, logs := observer.New(zapcore.DebugLevel)
	s.Start(zap.New(core))
	t.Cleanup(s.Stop)
	return &testSender{s, logs}
}

func (s *testSender) sent(kind string) float64   { return value(s.m.Sent.WithLabelValues(kind)) }
func (s *testSender) failed(kind string) float64 { return value(s.m.Failed.WithLabelValues(kind)) }
func (s *testSender) dropped(why string) float64 { return value(s.m.Dropped.WithLabelValues(why)) }
func (s *testSender) retries() float64           { return value(s.m.Retries) }
func (s *testSender) queued() float64            { return value(s.m.Queued) }

// waitFor polls cond, as a delivery in the background comes when it comes.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	require.Eventually(t, cond, smtptest.WaitTimeout, 5*time.Millisecond, what)
}

const resetBody = "Someone asked to reset the password of alice.\nOpen https://example.com/login/reset?token=SECRET-TOKEN within 30 minutes.\n"

func TestDeliversInEachTLSModeWithAuth(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{TLSStart, TLSImplicit, TLSOff} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := smtptest.Start(t, smtptest.Options{TLS: mode, Username: "app", Password: "s3cret"})
			s := startSender(t, srv, Config{TLS: mode, Username: "app", Password: "s3cret"}, Options{})
			s.Send("reset", "Alice <alice@example.org>", "Réinitialiser le mot de passe", resetBody)

			m := srv.WaitMessage(t, nil)
			assert.Equal(t, "app", m.Username, "signed in with AUTH PLAIN")
			assert.Equal(t, mode != TLSOff, m.TLS, "encrypted unless tls off")
			assert.Equal(t, "site@example.com", m.From)
			assert.Equal(t, []string{"alice@example.org"}, m.To)
			assert.Equal(t, "Réinitialiser le mot de passe", m.Subject, "the subject, Q-encoded and decoded")
			assert.True(t, strings.HasPrefix(m.Headers["Subject"][0], "=?utf-8?q?"), "non-ASCII is Q-encoded: %q", m.Headers["Subject"])
			assert.Equal(t, []string{`"Example Site" <site@example.com>`}, m.Headers["From"])
			assert.Equal(t, []string{`"Alice" <alice@example.org>`}, m.Headers["To"])
			assert.Equal(t, []string{"1.0"}, m.Headers["Mime-Version"])
			assert.Equal(t, []string{"text/plain; charset=utf-8"}, m.Headers["Content-Type"])
			assert.Equal(t, []string{"quoted-printable"}, m.Headers["Content-Transfer-Encoding"])
			assert.Regexp(t, `^<[0-9a-f]{32}@example\.com>$`, m.Headers["Message-Id"][0])
			date, err := time.Parse(time.RFC1123Z, m.Headers["Date"][0])
			require.NoError(t, err)
			assert.WithinDuration(t, time.Now(), date, time.Minute)
			body, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(m.Body)))
			require.NoError(t, err)
			assert.Equal(t, strings.ReplaceAll(resetBody, "\n", "\r\n"), string(body))
			waitFor(t, func() bool { return s.sent("reset") == 1 }, "counted as sent")
		})
	}
}

// Verification is on: a server whose certificate the sender cannot verify
// gets nothing, not even the password.
func TestRefusesAServerItCannotVerify(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{TLS: TLSStart, Username: "app", Password: "s3cret"})
	s, err := New(Config{Host: srv.Host(), Port: srv.Port(), Username: "app", Password: "s3cret", From: "site@example.com"},
		Options{Backoff: []time.Duration{}, Metrics: newMetrics()})
	require.NoError(t, err)
	core, logs := observer.New(zapcore.DebugLevel)
	s.Start(zap.New(core))
	t.Cleanup(s.Stop)
	s.Send("reset", "alice@example.org", "Reset", resetBody)
	waitFor(t, func() bool { return value(s.m.Failed.WithLabelValues("reset")) == 1 }, "given up")
	require.Equal(t, 1, logs.FilterMessage("mail not delivered").Len())
	assert.Contains(t, logs.All()[0].ContextMap()["error"], "certificate")
	assert.Empty(t, srv.Messages(t))
}

// A server that holds its reply holds a worker, never the request that
// sent the mail.
func TestSlowServerDoesNotHoldSend(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{})
	s := startSender(t, srv, Config{TLS: TLSOff}, Options{Workers: 1})
	srv.DelayNext(t, 1, 3*time.Second)
	s.Send("reset", "alice@example.org", "First", resetBody)
	waitFor(t, func() bool { return s.queued() == 0 }, "the first message in flight, its reply held")

	began := time.Now()
	for range 100 {
		s.Send("verify_email", "bob@example.org", "Second", "Confirm your address.")
	}
	assert.Less(t, time.Since(began), time.Second, "100 sends while the server is stuck")
	assert.Equal(t, 100.0, s.queued(), "all waiting behind the stuck delivery")
	assert.Empty(t, srv.Messages(t), "the server still holds the first")
	waitFor(t, func() bool { return s.sent("verify_email") == 100 }, "all delivered once the server answers")
	assert.Equal(t, 1.0, s.sent("reset"))
}

// A server that is down gets the message once it is back, after retries.
func TestDownServerGetsTheMessageWhenBack(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{})
	s := startSender(t, srv, Config{TLS: TLSOff}, Options{})
	srv.Stop()
	s.Send("reset", "alice@example.org", "Reset", resetBody)
	waitFor(t, func() bool { return s.retries() >= 2 }, "retried while the server is down")
	srv.Start()
	m := srv.WaitMessage(t, nil)
	assert.Equal(t, "Reset", m.Subject)
	waitFor(t, func() bool { return s.sent("reset") == 1 }, "counted as sent")
	assert.Zero(t, s.failed("reset"))
	assert.Zero(t, s.logs.FilterMessage("mail not delivered").Len())
}

// A 4xx is a temporary refusal, retried; a 5xx is final, and logged once.
func TestTemporaryRefusalRetried(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{})
	s := startSender(t, srv, Config{TLS: TLSOff}, Options{})
	srv.FailNext(t, 2, 451)
	s.Send("invitation", "carol@example.org", "You are invited", "Join us.")
	srv.WaitMessage(t, nil)
	waitFor(t, func() bool { return s.sent("invitation") == 1 }, "counted as sent")
	assert.Equal(t, 2.0, s.retries())
	assert.Len(t, srv.Messages(t), 1, "delivered once")
}

func TestPermanentRefusalNotRetriedAndLoggedOnce(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{TLS: TLSStart, Username: "app", Password: "pa55word-never-logged"})
	s := startSender(t, srv, Config{Username: "app", Password: "pa55word-never-logged"}, Options{})
	srv.FailNext(t, 1, 550)
	s.Send("reset", "alice.private@example.org", "Reset", resetBody)
	waitFor(t, func() bool { return s.failed("reset") == 1 }, "given up")

	// A second message gets through: the first was not retried after it.
	s.Send("reset", "bob@example.org", "Reset", resetBody)
	srv.WaitMessage(t, nil)
	waitFor(t, func() bool { return s.sent("reset") == 1 }, "the second sent")
	assert.Zero(t, s.retries())
	assert.Len(t, srv.Messages(t), 1)

	failures := s.logs.FilterMessage("mail not delivered").All()
	require.Len(t, failures, 1, "logged once")
	fields := failures[0].ContextMap()
	assert.Equal(t, zapcore.WarnLevel, failures[0].Level)
	assert.Equal(t, "reset", fields["kind"])
	assert.Equal(t, int64(1), fields["attempts"])
	assert.Equal(t, true, fields["permanent"])
	assert.Equal(t, "example.org", fields["recipient_domain"])
	assert.Contains(t, fields["error"], "550")
	for _, e := range s.logs.All() {
		line := e.Message + " " + strings.Join(stringValues(e.ContextMap()), " ")
		for _, secret := range []string{"SECRET-TOKEN", "reset?token", "pa55word", "alice.private"} {
			assert.NotContains(t, line, secret, "the log never holds the body, the password or the address")
		}
	}
}

func stringValues(m map[string]any) []string {
	var out []string
	for k, v := range m {
		s, _ := v.(string)
		out = append(out, k+"="+s)
	}
	return out
}

// A line break in the recipient or the subject would let a caller add
// headers (a Bcc) or a body of its own: the message is refused.
func TestHeaderInjectionRefused(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{})
	s := startSender(t, srv, Config{TLS: TLSOff}, Options{})
	s.Send("reset", "alice@example.org\r\nBcc: mallory@evil.example", "Reset", resetBody)
	s.Send("reset", "alice@example.org", "Reset\nBcc: mallory@evil.example", resetBody)
	s.Send("reset", "alice@example.org", "Reset\r\n\r\nA body of mine", resetBody)
	s.Send("reset", "not an address", "Reset", resetBody)
	assert.Equal(t, 4.0, s.dropped(DropBadMessage))
	assert.Equal(t, 4, s.logs.FilterMessage("mail refused before sending").Len())

	s.Send("reset", "alice@example.org", "Reset", resetBody)
	m := srv.WaitMessage(t, nil)
	assert.Equal(t, "Reset", m.Subject)
	waitFor(t, func() bool { return s.sent("reset") == 1 }, "the good one sent")
	assert.Len(t, srv.Messages(t), 1, "only the good one")
	assert.NotContains(t, m.Raw, "mallory")
}

// The queue is bounded: past it a message is dropped, counted, and a run
// of drops logged once.
func TestFullQueueDrops(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Host: "127.0.0.1", TLS: TLSOff, From: "site@example.com"}, Options{QueueSize: 2, Metrics: newMetrics()})
	require.NoError(t, err)
	core, logs := observer.New(zapcore.DebugLevel)
	s.logger = zap.New(core) // not started: nothing leaves the queue
	for range 5 {
		s.Send("reset", "alice@example.org", "Reset", resetBody)
	}
	assert.Equal(t, 2.0, value(s.m.Queued))
	assert.Equal(t, 3.0, value(s.m.Dropped.WithLabelValues(DropQueueFull)))
	assert.Equal(t, 1, logs.FilterMessage("mail dropped: the queue is full; further drops are counted, not logged, until it has room").Len())

	s.Stop()
	assert.Equal(t, 2.0, value(s.m.Dropped.WithLabelValues(DropStopped)), "the queued ones, at stop")
	assert.Zero(t, value(s.m.Queued))
	stopLog := logs.FilterMessage("mail dropped at stop: not delivered within the deadline").All()
	require.Len(t, stopLog, 1)
	assert.Equal(t, int64(2), stopLog[0].ContextMap()["messages"])
}

// Stop gives the queue a short deadline, then ends what is in progress.
func TestStopEndsWithADeadline(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, smtptest.Options{})
	s := startSender(t, srv, Config{TLS: TLSOff}, Options{Workers: 1, StopDeadline: 300 * time.Millisecond})
	s.Send("reset", "alice@example.org", "Quick", resetBody)
	srv.WaitMessage(t, nil)
	srv.DelayNext(t, 1, time.Minute)
	s.Send("reset", "alice@example.org", "Held", resetBody)
	waitFor(t, func() bool { return s.queued() == 0 }, "in flight")
	s.Send("reset", "alice@example.org", "Behind", resetBody)

	began := time.Now()
	s.Stop()
	assert.Less(t, time.Since(began), 10*time.Second, "Stop does not wait for the server")
	assert.Equal(t, 2.0, s.dropped(DropStopped))
	assert.Equal(t, 1, s.logs.FilterMessage("mail dropped at stop: not delivered within the deadline").Len())
	s.Send("reset", "alice@example.org", "After", resetBody)
	assert.Equal(t, 3.0, s.dropped(DropStopped), "a message after Stop")
}

func TestNewRefusesABadFrom(t *testing.T) {
	t.Parallel()
	for _, from := range []string{"", "site", "Example <site@example.com", "a@b\r\nBcc: c@d"} {
		_, err := New(Config{Host: "127.0.0.1", From: from}, Options{})
		assert.Error(t, err, "%q", from)
	}
}
