package caddyproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
)

// Process is a running Caddy for programs that are not tests, such as the
// benchmark harness: they have no testing.TB to fail or clean up with, so
// errors are returned and the caller stops the process.
type Process struct {
	cmd    *exec.Cmd
	dir    string
	log    *SyncBuffer
	waited chan struct{}
}

// StartProcess runs binary with caddyfile in a temporary folder of its own
// and returns once readyURL answers any HTTP response. The caller must call
// Stop, which also removes the folder.
func StartProcess(binary, caddyfile, readyURL string) (*Process, error) {
	dir, err := os.MkdirTemp("", "pgsession-caddy-")
	if err != nil {
		return nil, fmt.Errorf("creating a folder for caddy: %w", err)
	}
	p := &Process{dir: dir, log: new(SyncBuffer)}
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(caddyfile), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := []string{"run", "--config", config, "--adapter", "caddyfile"}
	if p.cmd, p.waited, err = launch(binary, args, dir, p.log); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := waitReady(readyURL, p.waited, p.log); err != nil {
		return nil, errors.Join(err, p.Stop())
	}
	return p, nil
}

// Stop ends Caddy as Ctrl-C would, kills it if it has not exited after 20
// seconds, and removes its folder; calling it again does nothing more.
func (p *Process) Stop() error {
	interrupt(p.cmd, p.waited)
	if err := os.RemoveAll(p.dir); err != nil {
		return fmt.Errorf("removing caddy's folder: %w", err)
	}
	return nil
}

// PID returns the process id, e.g. to read its memory use from /proc.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Logs returns everything Caddy has printed so far.
func (p *Process) Logs() string { return p.log.String() }

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago; all n are held open until the last is found, so none is
// handed out twice.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
