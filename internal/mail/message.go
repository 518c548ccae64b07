package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// errHeaderInjection is a recipient or subject holding a line break: sent
// as is, the rest of the line would become a header of its own (a Bcc, a
// second body), so the message is refused rather than cleaned.
var errHeaderInjection = errors.New("a line break in the recipient or subject")

// message is one mail to send: its envelope, its kind for the metrics and
// the log, and its text, built once at Send so every retry sends the same
// Message-ID.
type message struct {
	kind     string
	to       string // the envelope recipient, a bare address
	domain   string // to's domain, the most of the address the log shows
	raw      []byte
	attempts int
	at       time.Time // when the next attempt may start
}

// ParseFrom reads a From address, "site@example.com" or "Example <site@example.com>".
func ParseFrom(from string) (*mail.Address, error) {
	addr, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("%q is not an address such as site@example.com or \"Example <site@example.com>\"", from)
	}
	return addr, nil
}

// build makes the message: a plain-text mail in UTF-8, quoted-printable so
// that any line length and any character survive every relay.
func build(from *mail.Address, kind, to, subject, body string, now time.Time) (*message, error) {
	if strings.ContainsAny(to, "\r\n") || strings.ContainsAny(subject, "\r\n") {
		return nil, errHeaderInjection
	}
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return nil, errors.New("the recipient is not an address")
	}
	_, domain, _ := strings.Cut(rcpt.Address, "@")
	_, fromDomain, _ := strings.Cut(from.Address, "@")
	var id [16]byte
	rand.Read(id[:])

	var b bytes.Buffer
	header := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	header("From", from.String())
	header("To", rcpt.String())
	header("Subject", mime.QEncoding.Encode("utf-8", subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+fromDomain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	// The writer turns each line break into CRLF, as SMTP wants, and a
	// bare CR would otherwise pass through as it came.
	qp.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\r", "\n")))
	qp.Close()
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return &message{kind: kind, to: rcpt.Address, domain: domain, raw: b.Bytes(), at: now}, nil
}
