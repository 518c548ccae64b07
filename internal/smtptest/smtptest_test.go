package smtptest_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgsession/caddy-pgsession/internal/smtptest"
)

// send delivers one message with net/smtp as a plain client would, in the
// server's mode: STARTTLS or a TLS dial verified against the harness's CA
// pool, and AUTH PLAIN when a username is given.
func send(s *smtptest.Server, mode, username, password, to, subject string) error {
	tc := &tls.Config{RootCAs: s.CACertPool(), ServerName: s.Host(), MinVersion: tls.VersionTLS12}
	var conn net.Conn
	var err error
	if mode == "tls" {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Addr(), tc)
	} else {
		conn, err = net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	}
	if err != nil {
		return err
	}
	c, err := smtp.NewClient(conn, s.Host())
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if mode == "starttls" {
		if err := c.StartTLS(tc); err != nil {
			return err
		}
	}
	if username != "" {
		if err := c.Auth(smtp.PlainAuth("", username, password, s.Host())); err != nil {
			return err
		}
	}
	if err := c.Mail("app@example.com"); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	msg := "From: App <app@example.com>\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nX-Test: yes\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\nthis is " + subject + ".\r\n"
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// code is the SMTP reply code of err, 0 when err is no SMTP reply.
func code(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func TestSendInEachMode(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"off", "starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s := smtptest.Start(t, smtptest.Options{TLS: mode, Username: "app", Password: "s3cret"})
			if mode == "off" {
				assert.Nil(t, s.CACertPool())
			} else {
				require.NotNil(t, s.CACertPool())
			}
			assert.Equal(t, "127.0.0.1", s.Host())
			assert.NotZero(t, s.Port())
			require.NoError(t, send(s, mode, "app", "s3cret", "alice@example.com", "Hello in "+mode))

			m := s.WaitMessage(t, func(m smtptest.Message) bool { return m.Subject == "Hello in "+mode })
			assert.Equal(t, "app@example.com", m.From)
			assert.Equal(t, []string{"alice@example.com"}, m.To)
			assert.Equal(t, []string{"yes"}, m.Headers["X-Test"])
			assert.Equal(t, "Hello,\r\nthis is Hello in "+mode+".\r\n", m.Body)
			assert.Equal(t, "app", m.Username)
			assert.Equal(t, mode != "off", m.TLS)
			assert.Contains(t, m.Raw, "Subject: Hello in "+mode)

			s.Clear(t)
			assert.Empty(t, s.Messages(t))
		})
	}
}

func TestOpenServerTakesMailWithoutAuth(t *testing.T) {
	t.Parallel()
	s := smtptest.Start(t, smtptest.Options{})
	require.NoError(t, send(s, "off", "", "", "bob@example.com", "=?utf-8?q?Gr=C3=BC=C3=9Fe?="))
	m := s.WaitMessage(t, nil)
	assert.Equal(t, "Grüße", m.Subject, "encoded words are decoded")
	assert.Empty(t, m.Username)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	s := smtptest.Start(t, smtptest.Options{TLS: "starttls", Username: "app", Password: "s3cret"})

	err := send(s, "starttls", "app", "wrong", "alice@example.com", "Wrong password")
	assert.Equal(t, 535, code(err), "a wrong password is refused: %v", err)

	err = send(s, "starttls", "", "", "alice@example.com", "No auth")
	assert.Equal(t, 530, code(err), "MAIL without AUTH is refused: %v", err)

	// Before STARTTLS the server offers no AUTH, as a real submission port
	// does not take a password in the clear.
	c, err := smtp.Dial(s.Addr())
	require.NoError(t, err)
	defer c.Close()
	ok, _ := c.Extension("AUTH")
	assert.False(t, ok, "AUTH offered before STARTTLS")
	ok, _ = c.Extension("STARTTLS")
	assert.True(t, ok)

	assert.Empty(t, s.Messages(t))
}

func TestFailNext(t *testing.T) {
	t.Parallel()
	s := smtptest.Start(t, smtptest.Options{})
	s.FailNext(t, 2, 451)
	for i := range 2 {
		err := send(s, "off", "", "", "alice@example.com", "Try")
		assert.Equal(t, 451, code(err), "attempt %d: %v", i+1, err)
	}
	require.NoError(t, send(s, "off", "", "", "alice@example.com", "Try"), "the third attempt passes")
	assert.Len(t, s.Messages(t), 1, "refused deliveries are not kept")

	s.FailNext(t, 1, 554)
	assert.Equal(t, 554, code(send(s, "off", "", "", "alice@example.com", "Permanent")))
}

func TestDelayNext(t *testing.T) {
	t.Parallel()
	s := smtptest.Start(t, smtptest.Options{})
	s.DelayNext(t, 1, 700*time.Millisecond)
	start := time.Now()
	require.NoError(t, send(s, "off", "", "", "alice@example.com", "Slow"))
	assert.GreaterOrEqual(t, time.Since(start), 700*time.Millisecond)

	start = time.Now()
	require.NoError(t, send(s, "off", "", "", "alice@example.com", "Fast"))
	assert.Less(t, time.Since(start), 700*time.Millisecond, "only the next one is slow")
	assert.Len(t, s.Messages(t), 2)
}

func TestStopAndStart(t *testing.T) {
	t.Parallel()
	s := smtptest.Start(t, smtptest.Options{TLS: "tls", Username: "app", Password: "s3cret"})
	addr := s.Addr()
	require.NoError(t, send(s, "tls", "app", "s3cret", "alice@example.com", "Before"))
	s.FailNext(t, 1, 421)

	s.Stop()
	err := send(s, "tls", "app", "s3cret", "alice@example.com", "Down")
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "refused"), "a stopped server refuses connections: %v", err)

	s.Start()
	assert.Equal(t, addr, s.Addr(), "back on the same port")
	assert.Equal(t, 421, code(send(s, "tls", "app", "s3cret", "alice@example.com", "Knob kept")), "the pending knob survives")
	require.NoError(t, send(s, "tls", "app", "s3cret", "alice@example.com", "After"))
	var subjects []string
	for _, m := range s.Messages(t) {
		subjects = append(subjects, m.Subject)
	}
	assert.Equal(t, []string{"Before", "After"}, subjects, "messages survive a restart")
}

// The certificate is checked for real: a client that does not trust the
// harness's pool is refused, so a test of "TLS verified" means something.
func TestTLSNeedsTheCAPool(t *testing.T) {
	t.Parallel()
	s := smtptest.Start(t, smtptest.Options{TLS: "tls"})
	_, err := tls.Dial("tcp", s.Addr(), &tls.Config{ServerName: s.Host(), MinVersion: tls.VersionTLS12})
	var unknown x509.UnknownAuthorityError
	assert.ErrorAs(t, err, &unknown)

	// A plain client gets no greeting: the server waits for a TLS
	// handshake, as port 465 does, so only the client's deadline ends it.
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(300*time.Millisecond)))
	_, err = smtp.NewClient(conn, s.Host())
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "no greeting in the clear: %v", err)
}

func TestManyRecipients(t *testing.T) {
	t.Parallel()
	s := smtptest.Start(t, smtptest.Options{})
	require.NoError(t, smtp.SendMail(s.Addr(), nil, "app@example.com", []string{"a@example.com", "b@example.com"},
		[]byte("Subject: Both\r\n\r\nHi\r\n")))
	m := s.WaitMessage(t, func(m smtptest.Message) bool { return m.Subject == "Both" })
	assert.Equal(t, []string{"a@example.com", "b@example.com"}, m.To)
}
