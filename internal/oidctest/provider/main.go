// Command provider is a real identity provider for the tests of
// caddy-pgsession, run as a process of its own: an OpenID provider built on
// github.com/oauth2-proxy/mockoidc (-mode oidc), or a stand-in for GitHub's
// OAuth web flow and REST API (-mode github). Package internal/oidctest
// builds and starts it; tests drive it over HTTP, a person through its login
// page and the test through its control API under /control/.
//
// Once it listens it prints one line, "listening URL ADDRESS": the base URL
// of its pages (the issuer, in oidc mode) and the address it listens on.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pgsession/caddy-pgsession/internal/oidctest/control"
)

// config is what the flags say.
type config struct {
	addr         string
	mode         string
	host         string
	clientID     string
	clientSecret string
	redirectURIs listFlag
	statePath    string
	requirePKCE  bool
	exitOnEOF    bool
}

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:0", "address to listen on")
	flag.StringVar(&cfg.mode, "mode", "oidc", "oidc (an OpenID provider) or github (a GitHub stand-in)")
	flag.StringVar(&cfg.host, "host", "", "host name of the URLs it hands out (default: the address listened on)")
	flag.StringVar(&cfg.clientID, "client-id", "test-client", "the one client's id")
	flag.StringVar(&cfg.clientSecret, "client-secret", "test-secret", "the one client's secret")
	flag.Var(&cfg.redirectURIs, "redirect-uri", "a redirect URI the client may use (repeatable)")
	flag.StringVar(&cfg.statePath, "state", "", "file that keeps users, keys and knobs across restarts")
	flag.BoolVar(&cfg.requirePKCE, "require-pkce", false, "refuse an authorization request without a PKCE challenge")
	flag.BoolVar(&cfg.exitOnEOF, "exit-with-stdin", false, "exit when standard input ends, as it does when the parent process dies")
	flag.Parse()
	if err := run(cfg); err != nil {
		log.Fatal(err)
	}
}

func run(cfg config) error {
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if cfg.host != "" {
		host = cfg.host
	}
	s := &server{cfg: cfg, base: "http://" + net.JoinHostPort(host, port), counts: map[string]int{}}
	if err := s.load(); err != nil {
		return err
	}
	mux := http.NewServeMux()
	s.handle(mux, "control users", "POST /control/users", s.addUser)
	s.handle(mux, "control redirect-uris", "POST /control/redirect-uris", s.allowRedirectURI)
	mux.HandleFunc("GET /control/requests", s.requests)
	switch cfg.mode {
	case "oidc":
		err = s.setUpOIDC(mux, ln.Addr().String())
	case "github":
		s.setUpGitHub(mux)
	default:
		err = fmt.Errorf("unknown -mode %q: oidc or github", cfg.mode)
	}
	if err != nil {
		return err
	}
	if cfg.exitOnEOF {
		// A test that dies without stopping the provider closes the
		// provider's stdin, so no orphan keeps the port.
		go func() {
			io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening %s %s\n", s.base, ln.Addr())
	return srv.Serve(ln)
}

// server is the provider's state; mu serialises every request, because
// mockoidc's session store is a plain map and a test provider needs no
// parallelism.
type server struct {
	mu     sync.Mutex
	cfg    config
	base   string
	st     state
	counts map[string]int
	oidc   *oidcProvider
	github *githubStandIn
}

// handle registers h under pattern, counted as name and run under the lock.
func (s *server) handle(mux *http.ServeMux, name, pattern string, h http.HandlerFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.counts[name]++
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h(rec, r)
		// The harness shows this log when a test fails.
		log.Printf("%s %s %d", r.Method, r.URL.Path, rec.status)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// requests answers how often each endpoint was asked since the start, so a
// test can see that a client fetched keys again or retried discovery.
func (s *server) requests(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.counts)
}

func (s *server) addUser(w http.ResponseWriter, r *http.Request) {
	var err error
	if s.cfg.mode == "github" {
		var u control.GitHubUser
		if err = decodeJSON(r, &u); err == nil {
			err = s.st.addGitHubUser(u)
		}
	} else {
		var u control.User
		if err = decodeJSON(r, &u); err == nil {
			err = s.st.addOIDCUser(u)
		}
	}
	s.answerControl(w, err)
}

func (s *server) allowRedirectURI(w http.ResponseWriter, r *http.Request) {
	var body control.RedirectURI
	err := decodeJSON(r, &body)
	if err == nil && body.URI == "" {
		err = fmt.Errorf("uri is empty")
	}
	if err == nil {
		s.st.RedirectURIs = append(s.st.RedirectURIs, body.URI)
	}
	s.answerControl(w, err)
}

// answerControl saves the state after a control request changed it, so a
// restarted provider has it, and answers 204 or the error.
func (s *server) answerControl(w http.ResponseWriter, err error) {
	if err == nil {
		err = s.save()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// redirectAllowed reports whether uri is one the client registered.
func (s *server) redirectAllowed(uri string) bool {
	return slices.Contains(s.st.RedirectURIs, uri)
}

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("reading the JSON body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
