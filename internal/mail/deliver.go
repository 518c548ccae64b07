package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"regexp"
	"strings"

	// go-smtp rather than net/smtp: net/smtp is frozen, has no implicit
	// TLS (port 465) of its own and no timeouts, while go-smtp is kept up,
	// speaks STARTTLS and implicit TLS, bounds each command, and types the
	// server's replies (SMTPError), which is how a 4xx is told from a 5xx.
	// go-sasl gives it AUTH PLAIN, which every submission server takes,
	// and only ever over TLS or to a loopback host (the app's rules).
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// attempt delivers m once, over a connection of its own: a mail is sent
// every few minutes at most, so a kept connection would mostly be one the
// server has closed.
func (s *Sender) attempt(m *message) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.AttemptTimeout)
	defer cancel()
	conn, err := new(net.Dialer).DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return err
	}
	// go-smtp bounds each command with its own deadline, which it clears
	// after; closing the connection is what bounds the whole attempt, and
	// what ends one in progress when the sender stops.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()

	var c *smtp.Client
	switch s.cfg.Mode() {
	case TLSImplicit:
		tc := tls.Client(conn, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		c = smtp.NewClient(tc)
	case TLSStart:
		// STARTTLS is required: a server that does not offer it gets no
		// password and no link in the clear.
		if c, err = smtp.NewClientStartTLS(conn, s.tls); err != nil {
			return err
		}
	default:
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = s.opts.AttemptTimeout, s.opts.AttemptTimeout
	if s.cfg.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", s.cfg.Username, s.cfg.Password)); err != nil {
			return err
		}
	}
	if err := c.SendMail(s.from.Address, []string{m.to}, bytes.NewReader(m.raw)); err != nil {
		return err
	}
	// The message is the server's once DATA was accepted; a failed QUIT
	// changes nothing of that.
	c.Quit()
	return nil
}

// permanent says whether err is the server's final refusal (a 5xx reply),
// which sending again would only repeat; anything else, a 4xx or a
// connection that failed, may pass later.
func permanent(err error) bool {
	var smtpErr *smtp.SMTPError
	return errors.As(err, &smtpErr) && smtpErr.Code/100 == 5
}

// describe is err as the log shows it: a server's reply often quotes the
// recipient, of which the log keeps only the domain.
func describe(err error, m *message) string {
	local, _, _ := strings.Cut(m.to, "@")
	if local == "" {
		return err.Error()
	}
	return regexp.MustCompile("(?i)"+regexp.QuoteMeta(local)+"@").ReplaceAllLiteralString(err.Error(), "…@")
}
