// Package control is the language of the test mail server's control API,
// shared by the server program (internal/smtptest/server) and the harness
// that drives it (internal/smtptest), so both sides agree on one shape.
package control

import "time"

// Message is one delivery the server accepted: the envelope as the client
// gave it, and the content as received, with its headers parsed so a test
// need not parse mail itself.
type Message struct {
	// From is the envelope sender (MAIL FROM), To the envelope recipients
	// (RCPT TO), which may differ from the headers of the same names.
	From string   `json:"from"`
	To   []string `json:"to"`
	// Subject is the Subject header with any RFC 2047 encoded words
	// decoded.
	Subject string `json:"subject"`
	// Headers are the message's headers, keyed in canonical form
	// (textproto.CanonicalMIMEHeaderKey); values are as received.
	Headers map[string][]string `json:"headers"`
	// Body is everything after the headers, transfer encoding untouched:
	// a test of a quoted-printable or multipart body decodes it itself.
	Body string `json:"body"`
	// Raw is the whole message as received.
	Raw string `json:"raw"`
	// Username is who signed in with AUTH, empty without it; TLS says the
	// message came over an encrypted connection, STARTTLS or implicit.
	Username string    `json:"username"`
	TLS      bool      `json:"tls"`
	Received time.Time `json:"received"`
}

// Fail refuses the next N deliveries with Code, a 4xx (temporary: a
// client should retry) or 5xx (permanent) reply to the end of DATA.
type Fail struct {
	N    int `json:"n"`
	Code int `json:"code"`
}

// Delay holds the reply to the end of DATA of the next N deliveries for
// Delay, a slow mail server that still accepts.
type Delay struct {
	N     int           `json:"n"`
	Delay time.Duration `json:"delay"`
}
