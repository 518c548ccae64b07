// Command server is a real SMTP server for the tests of caddy-pgsession,
// run as a process of its own on github.com/emersion/go-smtp. Package
// internal/smtptest builds and starts it; a mail client under test speaks
// SMTP to it (plain, STARTTLS or implicit TLS, with AUTH PLAIN when a
// username is set), and the test reads what was delivered and sets knobs
// that refuse or slow the next deliveries through an HTTP control API.
//
// Once both ports listen it prints one line, "listening SMTP CONTROL": the
// two addresses.
package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/pgsession/caddy-pgsession/internal/smtptest/control"
)

// config is what the flags say.
type config struct {
	addr        string
	controlAddr string
	tlsMode     string
	certFile    string
	keyFile     string
	username    string
	password    string
	statePath   string
	exitOnEOF   bool
}

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:0", "SMTP address to listen on")
	flag.StringVar(&cfg.controlAddr, "control-addr", "127.0.0.1:0", "address of the HTTP control API")
	flag.StringVar(&cfg.tlsMode, "tls", "off", "off, starttls or tls (implicit TLS from the first byte)")
	flag.StringVar(&cfg.certFile, "cert", "", "PEM certificate, for -tls starttls or tls")
	flag.StringVar(&cfg.keyFile, "key", "", "PEM private key of -cert")
	flag.StringVar(&cfg.username, "username", "", "require AUTH PLAIN with this username before MAIL")
	flag.StringVar(&cfg.password, "password", "", "the password of -username")
	flag.StringVar(&cfg.statePath, "state", "", "file that keeps messages and knobs across restarts")
	flag.BoolVar(&cfg.exitOnEOF, "exit-with-stdin", false, "exit when standard input ends, as it does when the parent process dies")
	flag.Parse()
	if err := run(cfg); err != nil {
		log.Fatal(err)
	}
}

func run(cfg config) error {
	st := &store{path: cfg.statePath}
	if err := st.load(); err != nil {
		return err
	}
	srv := smtp.NewServer(&backend{cfg: cfg, st: st})
	srv.Domain = "smtptest.localhost"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 10 << 20
	srv.ErrorLog = log.New(os.Stderr, "smtp ", log.LstdFlags)
	// Without TLS, AUTH must still be offered, or a plain-mode test could
	// not sign in; net/smtp itself sends PLAIN in the clear only to
	// 127.0.0.1 or localhost.
	srv.AllowInsecureAuth = cfg.tlsMode == "off"
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	switch cfg.tlsMode {
	case "off":
	case "starttls", "tls":
		cert, err := tls.LoadX509KeyPair(cfg.certFile, cfg.keyFile)
		if err != nil {
			return fmt.Errorf("-tls %s needs -cert and -key: %w", cfg.tlsMode, err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if cfg.tlsMode == "tls" {
			// go-smtp sees a *tls.Conn and so offers no STARTTLS.
			ln = tls.NewListener(ln, tc)
		} else {
			srv.TLSConfig = tc
		}
	default:
		return fmt.Errorf("unknown -tls %q: off, starttls or tls", cfg.tlsMode)
	}
	cln, err := net.Listen("tcp", cfg.controlAddr)
	if err != nil {
		return err
	}
	if cfg.exitOnEOF {
		// A test that dies without stopping the server closes its stdin,
		// so no orphan keeps the ports.
		go func() {
			io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
	}
	hs := &http.Server{Handler: st.mux(), ReadHeaderTimeout: 10 * time.Second}
	go func() { log.Fatal(hs.Serve(cln)) }()
	fmt.Printf("listening %s %s\n", ln.Addr(), cln.Addr())
	return srv.Serve(ln)
}

// store holds the delivered messages and the pending knobs, written to
// path after every change so a Stop and Start keep them, as a real mail
// server keeps its spool.
type store struct {
	path string

	mu       sync.Mutex
	Messages []control.Message `json:"messages"`
	Fail     control.Fail      `json:"fail"`
	Delay    control.Delay     `json:"delay"`
}

func (s *store) load() error {
	if s.path == "" {
		return nil
	}
	data, err := os.ReadFile(s.path)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return err
	}
	return json.Unmarshal(data, s)
}

// save must be called with mu held. It writes a new file and renames it,
// so a kill in between never leaves half a state.
func (s *store) save() {
	if s.path == "" {
		return
	}
	data, err := json.Marshal(s)
	if err == nil {
		err = os.WriteFile(s.path+".new", data, 0o600)
	}
	if err == nil {
		err = os.Rename(s.path+".new", s.path)
	}
	if err != nil {
		log.Printf("saving the state: %v", err)
	}
}

// knobs takes one turn of each pending knob for a delivery.
func (s *store) knobs() (fail int, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Fail.N > 0 {
		s.Fail.N--
		fail = s.Fail.Code
	}
	if s.Delay.N > 0 {
		s.Delay.N--
		delay = s.Delay.Delay
	}
	s.save()
	return fail, delay
}

func (s *store) deliver(m control.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Messages = append(s.Messages, m)
	s.save()
}

func (s *store) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /messages", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		msgs := s.Messages
		if msgs == nil {
			msgs = []control.Message{} // a JSON list, never null
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(msgs)
	})
	mux.HandleFunc("DELETE /messages", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.Messages = nil
		s.save()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /fail", func(w http.ResponseWriter, r *http.Request) {
		var f control.Fail
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil || f.N < 0 || f.Code < 400 || f.Code > 599 {
			http.Error(w, "want {n >= 0, code 400-599}", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.Fail = f
		s.save()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /delay", func(w http.ResponseWriter, r *http.Request) {
		var d control.Delay
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil || d.N < 0 || d.Delay < 0 {
			http.Error(w, "want {n >= 0, delay >= 0}", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.Delay = d
		s.save()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
