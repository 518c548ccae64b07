package smtptest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
)

const serverPackage = "github.com/pgsession/caddy-pgsession/internal/smtptest/server"

// Timeouts are generous for a loaded CI machine but bounded, so a broken
// server fails the test instead of hanging it.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// built is the server binary, built at most once per test binary.
var built struct {
	once sync.Once
	path string
	err  error
	// cleanup is the write end of the pipe the folder's remover waits
	// on; it is never closed, so it closes when the process exits.
	cleanup *os.File
}

func binary(tb testing.TB) string {
	tb.Helper()
	built.once.Do(func() { built.path, built.err = build() })
	if built.err != nil {
		tb.Fatal(built.err)
	}
	return built.path
}

func build() (string, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return "", errors.New("smtptest: the test mail server is built with the go command, which is not on PATH: install Go (go.dev/dl) or put its bin folder on PATH")
	}
	dir, err := os.MkdirTemp("", "smtptest-")
	if err != nil {
		return "", fmt.Errorf("smtptest: %w", err)
	}
	if err := removeAtExit(dir); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	path := filepath.Join(dir, "server")
	out, err := exec.Command("go", "build", "-o", path, serverPackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("smtptest: go build %s failed (its modules, github.com/emersion/go-smtp among them, come through the Go module proxy: go mod download): %s",
			serverPackage, strings.Join(strings.Fields(string(out)), " "))
	}
	return path, nil
}

// removeAtExit starts a shell that removes dir once the test process has
// exited, however it exits: it waits for the end of a pipe only this
// process holds open. Its own process group keeps a Ctrl-C meant for go
// test from ending it first.
func removeAtExit(dir string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("smtptest: %w", err)
	}
	cmd := exec.Command("/bin/sh", "-c", `read -r _; rm -rf "$1"`, "smtptest-cleanup", dir)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("smtptest: starting the shell that removes the server binary: %w", err)
	}
	r.Close()
	built.cleanup = w
	return nil
}

// process is one server program, started again on the same ports after a
// Stop.
type process struct {
	tb          testing.TB
	args        []string
	addr        string // SMTP, 127.0.0.1:port, once first started
	controlAddr string // the control API's, likewise
	log         *caddyproc.SyncBuffer

	cmd    *exec.Cmd
	stdin  *os.File
	exited chan struct{}
}

// startProcess runs the server with args on ports the kernel picks, so no
// other process can take them between choosing and binding, and stops it
// when the test ends.
func startProcess(tb testing.TB, args []string) *process {
	tb.Helper()
	p := &process{tb: tb, args: args, addr: "127.0.0.1:0", controlAddr: "127.0.0.1:0", log: new(caddyproc.SyncBuffer)}
	p.args = append(p.args, "-state", filepath.Join(tb.TempDir(), "state.json"))
	tb.Cleanup(func() {
		p.stop()
		if tb.Failed() {
			tb.Logf("the test mail server (%s) logged:\n%s", p.addr, p.log.String())
		}
	})
	if err := p.start(binary(tb)); err != nil {
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
	args := append([]string{"-addr", p.addr, "-control-addr", p.controlAddr, "-exit-with-stdin"}, p.args...)
	cmd := exec.Command(bin, args...)
	childStdin, stdin, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("smtptest: %w", err)
	}
	cmd.Stdin = childStdin
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("smtptest: starting the server: %w", err)
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
		// "listening SMTP CONTROL": the two addresses it listens on.
		p.addr, p.controlAddr, _ = strings.Cut(line, " ")
		return nil
	case <-p.exited:
		return fmt.Errorf("smtptest: the server exited at start:\n%s", p.log.String())
	case <-time.After(readyTimeout):
		p.stop()
		return fmt.Errorf("smtptest: the server did not listen within %s:\n%s", readyTimeout, p.log.String())
	}
}

// stop ends the program and waits until it has exited, so its ports are
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
