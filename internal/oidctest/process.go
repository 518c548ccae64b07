// Package oidctest runs real identity providers for tests, as processes on
// free ports of 127.0.0.1: an OpenID provider (StartProvider) and a
// stand-in for GitHub's OAuth web flow and REST API (StartGitHub). Both are
// the program in provider/, built once per test binary with go build; the
// OpenID provider is github.com/oauth2-proxy/mockoidc with a login page,
// registered redirect URIs, key rotation and knobs that spoil the next ID
// token in front of it. Tests speak to them over real HTTP: a client as it
// would to Google or GitHub, a person through the login page (SignIn plays
// one with net/http; a Chromium test clicks "Sign in"), and the test
// itself through a control API (AddUser, Next, RotateKeys).
//
//	p := oidctest.StartProvider(t, oidctest.Options{RedirectURIs: []string{callback}})
//	p.AddUser(t, oidctest.User{Subject: "alice-1", Email: "alice@example.com", EmailVerified: true})
//	// ... configure the client with p.Issuer(), p.ClientID(), p.ClientSecret()
//	back := oidctest.SignIn(t, nil, authorizeURL, "alice-1") // the callback, with code and state
//
// A provider is stopped when the test ends; Stop and Start take it down and
// bring it back on the same port with the same users and keys, for tests
// of a provider that is down. If the test process dies, each provider
// exits when its standard input closes, and the built binary's folder is
// removed by a shell waiting on a pipe in the same way.
package oidctest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
)

const providerPackage = "github.com/pgsession/caddy-pgsession/internal/oidctest/provider"

// Timeouts are generous for a loaded CI machine but bounded, so a broken
// provider fails the test instead of hanging it.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// program is the provider program, built at most once per test binary.
var program = caddyproc.Program{Package: providerPackage, Harness: "oidctest", What: "the test provider", Modules: "github.com/oauth2-proxy/mockoidc"}

// process is one provider program, started again on the same port after
// a Stop.
type process struct {
	tb   testing.TB
	args []string
	addr string // 127.0.0.1:port, once first started
	url  string // the base URL it printed, with the host name of -host
	log  *caddyproc.SyncBuffer

	cmd    *exec.Cmd
	stdin  *os.File
	exited chan struct{}
}

// startProcess runs the provider with args on a port the kernel picks, so
// no other process can take it between choosing and binding, and stops it
// when the test ends.
func startProcess(tb testing.TB, args []string) *process {
	tb.Helper()
	p := &process{tb: tb, args: args, addr: "127.0.0.1:0", log: new(caddyproc.SyncBuffer)}
	p.args = append(p.args, "-state", filepath.Join(tb.TempDir(), "state.json"))
	tb.Cleanup(func() {
		p.stop()
		if tb.Failed() {
			tb.Logf("the test provider (%s) logged:\n%s", p.url, p.log.String())
		}
	})
	if err := p.start(program.Binary(tb)); err != nil {
		tb.Fatal(err)
	}
	return p
}

func (p *process) running() bool {
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// start runs the program and waits for the line that says it listens.
func (p *process) start(bin string) error {
	args := append([]string{"-addr", p.addr, "-exit-with-stdin"}, p.args...)
	cmd := exec.Command(bin, args...)
	childStdin, stdin, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("oidctest: %w", err)
	}
	cmd.Stdin = childStdin
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("oidctest: starting the provider: %w", err)
	}
	childStdin.Close()
	p.cmd, p.stdin, p.exited = cmd, stdin, make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if line, ok := strings.CutPrefix(lines.Text(), "listening "); ok {
				select {
				case ready <- line:
				default: // it says so once; a second line must not stop the reading
				}
			}
			fmt.Fprintln(p.log, lines.Text())
		}
		cmd.Wait()
		close(p.exited)
	}()
	select {
	case line := <-ready:
		// "listening URL ADDRESS": the URL may name a host of the test's
		// choosing; the address is where it listens.
		p.url, p.addr, _ = strings.Cut(line, " ")
		return nil
	case <-p.exited:
		return fmt.Errorf("oidctest: the provider exited at start:\n%s", p.log.String())
	case <-time.After(readyTimeout):
		p.stop()
		return fmt.Errorf("oidctest: the provider did not listen within %s:\n%s", readyTimeout, p.log.String())
	}
}

// stop ends the program and waits until it has exited, so its port is
// closed when stop returns.
func (p *process) stop() {
	if !p.running() {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.exited
	}
	p.stdin.Close()
}
