// Package smtptest runs a real SMTP server for tests, as a process on a
// free port of 127.0.0.1: the program in server/, on
// github.com/emersion/go-smtp, built once per test binary with go build.
// A mail client under test speaks SMTP to it as it would to a provider's
// submission port: in the clear, with STARTTLS or with implicit TLS (a
// self-signed certificate the harness makes and hands to the client as a
// CA pool), with AUTH PLAIN required when a username is set. The test reads
// what was delivered, and refuses or slows the next deliveries, through an
// HTTP control API on a second port.
//
//	s := smtptest.Start(t, smtptest.Options{TLS: "starttls", Username: "app", Password: "secret"})
//	// ... configure the client with s.Host(), s.Port(), s.CACertPool()
//	m := s.WaitMessage(t, func(m smtptest.Message) bool { return m.Subject == "Reset your password" })
//
// A server is stopped when the test ends; Stop and Start take it down and
// bring it back on the same ports with the messages and pending knobs it
// had, for tests of a mail server that is down. If the test process dies,
// the server exits when its standard input closes.
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pgsession/caddy-pgsession/internal/smtptest/control"
)

// Options configure a server.
type Options struct {
	// TLS is "off" (the default when empty), "starttls" (plain at first,
	// STARTTLS offered; AUTH only after it) or "tls" (TLS from the first
	// byte, as on port 465).
	TLS string
	// Username and Password, when Username is set, are the one account
	// AUTH PLAIN accepts; MAIL is refused with 530 until the client signs
	// in. Without a Username the server offers no AUTH and takes mail
	// from anyone.
	Username, Password string
}

// Message is one delivery the server accepted; see control.Message.
type Message = control.Message

// WaitTimeout bounds WaitMessage: long enough for an asynchronous sender
// with a retry or two on a loaded machine, short enough to fail a test
// whose mail never comes.
const WaitTimeout = 15 * time.Second

// Server is a running SMTP server.
type Server struct {
	proc *process
	pool *x509.CertPool
}

// Start starts a server for the test, stopped when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	mode := opts.TLS
	if mode == "" {
		mode = "off"
	}
	args := []string{"-tls", mode, "-username", opts.Username, "-password", opts.Password}
	s := &Server{}
	switch mode {
	case "off":
	case "starttls", "tls":
		certFile, keyFile, pool := selfSigned(tb)
		args = append(args, "-cert", certFile, "-key", keyFile)
		s.pool = pool
	default:
		tb.Fatalf("smtptest: Options.TLS is %q: want off, starttls or tls", opts.TLS)
	}
	s.proc = startProcess(tb, args)
	return s
}

// selfSigned makes a certificate for 127.0.0.1 and localhost that is its
// own CA, so a client that trusts the returned pool verifies it as it
// would a real server's, with no verification turned off.
func selfSigned(tb testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// Addr is the SMTP address, 127.0.0.1:port.
func (s *Server) Addr() string { return s.proc.addr }

// Host is the host to dial and to verify the certificate against,
// 127.0.0.1.
func (s *Server) Host() string {
	host, _, _ := net.SplitHostPort(s.proc.addr)
	return host
}

// Port is the SMTP port.
func (s *Server) Port() int {
	_, port, _ := net.SplitHostPort(s.proc.addr)
	n, _ := strconv.Atoi(port)
	return n
}

// CACertPool holds the server's certificate, for the client's RootCAs;
// nil when TLS is off.
func (s *Server) CACertPool() *x509.CertPool { return s.pool }

// Messages are the deliveries accepted so far, oldest first, kept across
// Stop and Start.
func (s *Server) Messages(tb testing.TB) []Message {
	tb.Helper()
	var msgs []Message
	s.control(tb, http.MethodGet, "/messages", nil, &msgs)
	return msgs
}

// Clear forgets every delivered message.
func (s *Server) Clear(tb testing.TB) {
	tb.Helper()
	s.control(tb, http.MethodDelete, "/messages", nil, nil)
}

// WaitMessage returns the first delivered message that match accepts,
// polling the server until one comes or WaitTimeout passes, for a sender
// that delivers in the background. A nil match takes any message.
func (s *Server) WaitMessage(tb testing.TB, match func(Message) bool) Message {
	tb.Helper()
	deadline := time.Now().Add(WaitTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		msgs := s.Messages(tb)
		for _, m := range msgs {
			if match == nil || match(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("smtptest: no matching message within %s; delivered: %d", WaitTimeout, len(msgs))
		}
		<-tick.C
	}
}

// FailNext refuses the next n deliveries with code at the end of DATA: a
// 4xx is a temporary failure a sender should retry, a 5xx a permanent
// one. It replaces any FailNext still pending; n 0 ends it.
func (s *Server) FailNext(tb testing.TB, n, code int) {
	tb.Helper()
	s.control(tb, http.MethodPost, "/fail", control.Fail{N: n, Code: code}, nil)
}

// DelayNext holds the reply to the next n deliveries for d, a slow server
// that still accepts (unless FailNext refuses the same delivery, after
// the delay). It replaces any DelayNext still pending.
func (s *Server) DelayNext(tb testing.TB, n int, d time.Duration) {
	tb.Helper()
	s.control(tb, http.MethodPost, "/delay", control.Delay{N: n, Delay: d}, nil)
}

// Stop takes the server down: when it returns, its ports refuse
// connections. It does nothing if the server is down already.
func (s *Server) Stop() { s.proc.stop() }

// Start brings the server back on the same ports, with the messages and
// pending knobs it had. It does nothing if the server is running.
func (s *Server) Start() {
	s.proc.tb.Helper()
	if s.proc.running() {
		return
	}
	if err := s.proc.start(program.Binary(s.proc.tb)); err != nil {
		s.proc.tb.Fatal(err)
	}
}

// Logs is what the server has printed.
func (s *Server) Logs() string { return s.proc.log.String() }

var controlClient = &http.Client{Timeout: 10 * time.Second}

// control sends body as JSON to the control API and reads the answer into
// out, when out is not nil.
func (s *Server) control(tb testing.TB, method, path string, body, out any) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://"+s.proc.controlAddr+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := controlClient.Do(req)
	if err != nil {
		tb.Fatalf("smtptest: %s %s: %v (is the server stopped?)", method, path, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		tb.Fatalf("smtptest: %s %s: %s: %s", method, path, resp.Status, answer)
	}
	if out != nil {
		if err := json.Unmarshal(answer, out); err != nil {
			tb.Fatalf("smtptest: %s %s: reading %q: %v", method, path, answer, err)
		}
	}
}

// String names the server in a test's log.
func (s *Server) String() string { return fmt.Sprintf("smtptest server at %s", s.proc.addr) }
