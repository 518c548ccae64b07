package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pgsession/caddy-pgsession/store"
)

// passwordSource is where a new password comes from: a line of stdin, or
// the terminal. A password from stdin is read and checked at once, before any
// database work; one from the terminal only when asked for.
type passwordSource struct {
	password string // read from stdin
	prompt   func() (string, error)
}

func (p *passwordSource) get() (string, error) {
	if p.prompt != nil {
		return p.prompt()
	}
	return p.password, nil
}

func newPasswordSource(cmd *cobra.Command, fromStdin bool, name string) (*passwordSource, error) {
	in := cmd.InOrStdin()
	if fromStdin {
		pw, err := readPasswordLine(in)
		if err != nil {
			return nil, err
		}
		return &passwordSource{password: pw}, nil
	}
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, errors.New("stdin is not a terminal, so the password cannot be asked for: " +
			"pass --password-stdin and write the password as one line on stdin")
	}
	fd := int(f.Fd())
	return &passwordSource{prompt: func() (string, error) {
		restore := restoreTerminalOnInterrupt(fd, cmd.ErrOrStderr())
		defer restore()
		return promptPassword(cmd.ErrOrStderr(), name, func() ([]byte, error) { return term.ReadPassword(fd) })
	}}, nil
}

// readPasswordLine reads one line from r as the password, without its line
// ending (\n or \r\n), and checks it. It reads no more than the longest
// password allowed and its line ending, plus one byte to notice a longer one.
func readPasswordLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, store.MaxPasswordLength+3)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	if line == "" {
		return "", errors.New("no password on stdin: write it as one line")
	}
	if trimmed, ok := strings.CutSuffix(line, "\n"); ok {
		line = strings.TrimSuffix(trimmed, "\r")
	}
	if err := store.ValidatePassword(line); err != nil {
		return "", err
	}
	return line, nil
}

// promptPassword asks for a password twice through read, with the prompts
// on w, and checks it before asking the second time.
func promptPassword(w io.Writer, name string, read func() ([]byte, error)) (string, error) {
	fmt.Fprintf(w, "Password for %q: ", name)
	first, err := read()
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if err := store.ValidatePassword(string(first)); err != nil {
		return "", err
	}
	fmt.Fprint(w, "Repeat the password: ")
	second, err := read()
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if !bytes.Equal(first, second) {
		return "", errors.New("the passwords do not match")
	}
	return string(first), nil
}

// restoreTerminalOnInterrupt puts the terminal back in its state (echo on)
// and exits if Ctrl-C is pressed at a password prompt, which would otherwise
// leave the shell without echo. It returns the function that stops watching.
func restoreTerminalOnInterrupt(fd int, w io.Writer) (stop func()) {
	saved, err := term.GetState(fd)
	if err != nil {
		return func() {}
	}
	sig := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sig, os.Interrupt)
	go func() {
		select {
		case <-sig:
			_ = term.Restore(fd, saved)
			fmt.Fprintln(w)
			os.Exit(130) // the shell's status for a command ended by SIGINT
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sig)
		close(done)
	}
}
