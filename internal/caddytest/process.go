package caddytest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Process is a running Caddy for programs that are not tests, such as the
// benchmark harness: they have no testing.TB to fail or clean up with, so
// errors are returned and the caller stops the process.
type Process struct {
	cmd    *exec.Cmd
	dir    string
	log    *syncBuffer
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
	p := &Process{dir: dir, log: new(syncBuffer), waited: make(chan struct{})}
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(caddyfile), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p.cmd = exec.Command(binary, "run", "--config", config, "--adapter", "caddyfile")
	p.cmd.Dir = dir
	// Caddy keeps its data under HOME; a folder of its own keeps runs apart.
	p.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting caddy: %w", err)
	}
	go func() { p.cmd.Wait(); close(p.waited) }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.waited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("caddy exited at start:\n%s", p.log.String())
		default:
		}
		resp, err := readyClient.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			return p, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.Join(fmt.Errorf("caddy did not answer %s within 60s:\n%s", readyURL, p.log.String()), p.Stop())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends Caddy as Ctrl-C would, kills it if it has not exited after 20
// seconds, and removes its folder; calling it again does nothing more.
func (p *Process) Stop() error {
	select {
	case <-p.waited:
	default:
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.waited:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.waited
		}
	}
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
