package caddyproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Program is a Go program of this module that a test harness builds at
// most once per test binary and runs as a child process (the OpenID
// provider of oidctest, the mail server of smtptest). The folder it is
// built in is removed once the test process exits, however it exits.
type Program struct {
	Package string // the import path go build is given
	Harness string // the harness's name, which starts its errors and names its folder
	What    string // what the program is, for errors: "the test mail server"
	Modules string // a module its build needs, for the hint of a failed build

	once sync.Once
	path string
	err  error
	// cleanup is the write end of the pipe the folder's remover waits
	// on; it is never closed, so it closes when the process exits.
	cleanup *os.File
}

// Binary is the built program's path; a failed build fails tb.
func (p *Program) Binary(tb testing.TB) string {
	tb.Helper()
	p.once.Do(func() { p.path, p.err = p.build() })
	if p.err != nil {
		tb.Fatal(p.err)
	}
	return p.path
}

func (p *Program) build() (string, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return "", fmt.Errorf("%s: %s is built with the go command, which is not on PATH: install Go (go.dev/dl) or put its bin folder on PATH", p.Harness, p.What)
	}
	dir, err := os.MkdirTemp("", p.Harness+"-")
	if err != nil {
		return "", fmt.Errorf("%s: %w", p.Harness, err)
	}
	if err := p.removeAtExit(dir); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	path := filepath.Join(dir, filepath.Base(p.Package))
	out, err := exec.Command("go", "build", "-o", path, p.Package).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: go build %s failed (its modules, %s among them, come through the Go module proxy: go mod download): %s",
			p.Harness, p.Package, p.Modules, strings.Join(strings.Fields(string(out)), " "))
	}
	return path, nil
}

// removeAtExit starts a shell that removes dir once the test process has
// exited, however it exits: it waits for the end of a pipe only this
// process holds open. Its own process group keeps a Ctrl-C meant for go
// test from ending it first.
func (p *Program) removeAtExit(dir string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("%s: %w", p.Harness, err)
	}
	cmd := exec.Command("/bin/sh", "-c", `read -r _; rm -rf "$1"`, p.Harness+"-cleanup", dir)
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return errors.Join(fmt.Errorf("%s: starting the shell that removes %s's binary", p.Harness, p.What), err)
	}
	r.Close()
	p.cleanup = w
	return nil
}
