// Package caddyproc runs the development Caddy binary for end-to-end tests
// and benchmarks: build it once, start it with a Caddyfile, wait until it
// answers, reload it through the admin API, and stop it as Ctrl-C would.
package caddyproc

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Build compiles the development binary (cmd/caddy) into dir, with the race
// detector when race is set, and returns its path.
func Build(dir string, race bool) (string, error) {
	path := filepath.Join(dir, "caddy")
	args := []string{"build", "-o", path}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "github.com/pgsession/caddy-pgsession/cmd/caddy")
	cmd := exec.Command("go", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building cmd/caddy: %w\n%s", err, out.String())
	}
	return path, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Server is a running Caddy process.
type Server struct {
	tb        testing.TB
	binary    string
	args      []string
	dir       string
	caddyfile string // the Caddyfile's path, when started from one
	readyURL  string
	adminPort int
	cmd       *exec.Cmd
	log       *SyncBuffer
	waited    chan struct{}
}

// Start runs binary with caddyfile and returns once readyURL answers any
// HTTP response. adminPort is where reload sends new configs (0: none).
// The server is stopped when the test ends, and its log is shown if the
// test failed.
func Start(tb testing.TB, binary, caddyfile, readyURL string, adminPort int) *Server {
	tb.Helper()
	s := &Server{tb: tb, binary: binary, dir: tb.TempDir(), readyURL: readyURL, adminPort: adminPort, log: new(SyncBuffer)}
	s.caddyfile = filepath.Join(s.dir, "Caddyfile")
	if err := os.WriteFile(s.caddyfile, []byte(caddyfile), 0o600); err != nil {
		tb.Fatal(err)
	}
	s.args = []string{"run", "--config", s.caddyfile, "--adapter", "caddyfile"}
	return s.launch()
}

// StartWithArgs runs binary with args (e.g. run --config caddy.json) and
// returns once readyURL answers, like Start.
func StartWithArgs(tb testing.TB, binary, readyURL string, args ...string) *Server {
	tb.Helper()
	s := &Server{tb: tb, binary: binary, dir: tb.TempDir(), readyURL: readyURL, args: args, log: new(SyncBuffer)}
	return s.launch()
}

func (s *Server) launch() *Server {
	s.tb.Helper()
	s.start()
	tb := s.tb
	tb.Cleanup(func() {
		s.Stop()
		if tb.Failed() {
			tb.Logf("caddy (%s) logged:\n%s", s.readyURL, s.log.String())
		}
	})
	return s
}

func (s *Server) start() {
	s.tb.Helper()
	var err error
	if s.cmd, s.waited, err = launch(s.binary, s.args, s.dir, s.log); err != nil {
		s.tb.Fatal(err)
	}
	if err := waitReady(s.readyURL, s.waited, s.log); err != nil {
		s.tb.Fatal(err)
	}
}

// launch starts binary with args in dir, its output going to log, and
// returns the command and a channel closed once it has exited.
func launch(binary string, args []string, dir string, log *SyncBuffer) (*exec.Cmd, chan struct{}, error) {
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	// Caddy keeps its data under HOME; a folder of its own keeps runs apart.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting caddy: %w", err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	return cmd, waited, nil
}

// waitReady polls readyURL until it answers any HTTP response, for at most
// 60 s, and gives up at once if Caddy exits.
func waitReady(readyURL string, waited <-chan struct{}, log *SyncBuffer) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-waited:
			return fmt.Errorf("caddy exited at start:\n%s", log.String())
		default:
		}
		resp, err := readyClient.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("caddy did not answer %s within 60s:\n%s", readyURL, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// interrupt ends Caddy as Ctrl-C would and waits for it to exit, killing
// it if it has not after 20 seconds.
func interrupt(cmd *exec.Cmd, waited <-chan struct{}) {
	select {
	case <-waited:
		return
	default:
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-waited:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-waited
	}
}

// readyClient only asks whether Caddy answers, so it trusts any certificate,
// such as one from Caddy's internal CA.
var readyClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

// Stop ends Caddy as Ctrl-C would and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	interrupt(s.cmd, s.waited)
}

// Restart stops Caddy and starts it again with the same config.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.start()
}

// Reload loads caddyfile through the admin API, as `caddy reload` does.
func (s *Server) Reload(caddyfile string) {
	s.tb.Helper()
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/load", s.adminPort),
		strings.NewReader(caddyfile))
	if err != nil {
		s.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.tb.Fatalf("reloading caddy: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.tb.Fatalf("reloading caddy: %s: %s", resp.Status, body)
	}
	// A later Restart starts from what was loaded last.
	if s.caddyfile != "" {
		if err := os.WriteFile(s.caddyfile, []byte(caddyfile), 0o600); err != nil {
			s.tb.Fatal(err)
		}
	}
}

// Logs returns everything Caddy has printed so far.
func (s *Server) Logs() string { return s.log.String() }

// PID returns the process id of the running Caddy, e.g. to read its
// memory use from /proc; 0 before it started.
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// SyncBuffer collects a process's output while tests read it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
