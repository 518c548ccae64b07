package main

import (
	"bytes"
	"crypto/subtle"
	"io"
	"log"
	"mime"
	"net/mail"
	"net/textproto"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/pgsession/caddy-pgsession/internal/smtptest/control"
)

type backend struct {
	cfg config
	st  *store
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{b: b, tls: isTLS}, nil
}

// session is one SMTP connection's transaction.
type session struct {
	b        *backend
	tls      bool
	username string
	from     string
	to       []string
}

func (s *session) AuthMechanisms() []string {
	if s.b.cfg.username == "" {
		return nil // no AUTH offered: the server is open, as a relay on localhost is
	}
	return []string{sasl.Plain}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || s.b.cfg.username == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, username, password string) error {
		userOK := subtle.ConstantTimeCompare([]byte(username), []byte(s.b.cfg.username)) == 1
		passOK := subtle.ConstantTimeCompare([]byte(password), []byte(s.b.cfg.password)) == 1
		if !userOK || !passOK {
			log.Printf("AUTH PLAIN refused for %q", username)
			return smtp.ErrAuthFailed
		}
		s.username = username
		return nil
	}), nil
}

// authorized says whether the client may send; a server with a username
// refuses MAIL until AUTH, as providers' submission ports do.
func (s *session) authorized() error {
	if s.b.cfg.username != "" && s.username == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	return nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if err := s.authorized(); err != nil {
		return err
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := s.authorized(); err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

// Data reads the whole message before a knob may refuse it, so a refused
// delivery costs the client what a real server's refusal costs.
func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	fail, delay := s.b.st.knobs()
	if delay > 0 {
		time.Sleep(delay)
	}
	if fail != 0 {
		log.Printf("refusing a delivery from %s with %d, as a knob asked", s.from, fail)
		return &smtp.SMTPError{Code: fail, EnhancedCode: smtp.EnhancedCode{fail / 100, 3, 0}, Message: "Refused by smtptest's FailNext"}
	}
	m := control.Message{From: s.from, To: s.to, Raw: string(raw), Username: s.username, TLS: s.tls, Received: time.Now().UTC()}
	if err := parse(&m, raw); err != nil {
		// Kept anyway, Raw shows what came; a client's malformed message
		// is for the test to see, not for the server to hide.
		log.Printf("parsing a message from %s: %v", s.from, err)
	}
	s.b.st.deliver(m)
	log.Printf("delivered a message from %s to %v", s.from, s.to)
	return nil
}

func parse(m *control.Message, raw []byte) error {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	m.Headers = map[string][]string{}
	for k, v := range msg.Header {
		m.Headers[textproto.CanonicalMIMEHeaderKey(k)] = v
	}
	subject := msg.Header.Get("Subject")
	if dec, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
		subject = dec
	}
	m.Subject = subject
	body, err := io.ReadAll(msg.Body)
	m.Body = string(body)
	return err
}

func (s *session) Reset() { s.from, s.to = "", nil }

func (s *session) Logout() error { return nil }
