package smtptest

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

const serverPackage = "github.com/pgsession/caddy-pgsession/internal/smtptest/server"

// Timeouts are generous for a loaded CI machine but bounded, so a broken
// server fails the test instead of hanging it.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// program is the server program, built at most once per test binary.
var program = caddyproc.Program{Package: serverPackage, Harness: "smtptest", What: "the test mail server", Modules: "github.com/emersion/go-smtp"}

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
