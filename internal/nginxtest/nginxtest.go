// Package nginxtest runs a real nginx (Debian's, apt-get install nginx) as
// a process of the test, so the nginx recipes of the docs are tested as
// users run them: a config of the test's server blocks in a temporary
// folder of its own, on a free port of 127.0.0.1, stopped when the test
// ends.
//
//	n := nginxtest.Start(t, func(port int) string {
//		return fmt.Sprintf("server { listen 127.0.0.1:%d; return 200 hi; }", port)
//	})
//	http.Get(n.URL("/"))
//
// nginx runs in the foreground as one process (daemon off, master_process
// off), so the test holds it as a child it can signal and wait for, and
// it writes its pid, logs and temporary files in its own folder, never
// under /var. Nothing in the config switches user: as root it stays root,
// which its own folder allows.
package nginxtest

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
)

// errNoNginx is one line, so the reason a test failed is plain in go test's output.
var errNoNginx = errors.New("nginx not found: apt-get install nginx")

// Timeouts are generous for a loaded CI machine but bounded, so a broken
// nginx fails the test instead of hanging it.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	// startAttempts is how often another port is tried when some other
	// process took the chosen one before nginx could bind it.
	startAttempts = 3
)

// mainConfig is everything of nginx.conf but the test's server blocks:
// every path nginx writes is in the folder, so runs never share a file.
const mainConfig = `# Written by nginxtest: one nginx process in the foreground, for a test.
daemon off;
master_process off;
pid %[1]s/nginx.pid;
lock_file %[1]s/nginx.lock;
error_log stderr info;

events {
	worker_connections 256;
}

http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;

%[2]s
}
`

// Server is a running nginx.
type Server struct {
	// Port is the port of 127.0.0.1 the test's server blocks listen on.
	Port int

	dir    string
	log    *caddyproc.SyncBuffer
	cmd    *exec.Cmd
	exited chan struct{}
}

// Find returns the nginx binary: the one on PATH, so a developer can pick
// a build, else Debian's in /usr/sbin, which is not on a normal user's PATH.
func Find() (string, error) {
	if path, err := exec.LookPath("nginx"); err == nil {
		return path, nil
	}
	if info, err := os.Stat("/usr/sbin/nginx"); err == nil && info.Mode()&0o111 != 0 {
		return "/usr/sbin/nginx", nil
	}
	return "", errNoNginx
}

// Start runs nginx with the server blocks that servers writes for a free
// port of 127.0.0.1 (the http block's content: they must listen on
// 127.0.0.1:port) and returns once it answers there. nginx is stopped
// when the test ends, and its logs are shown if the test failed.
func Start(tb testing.TB, servers func(port int) string) *Server {
	tb.Helper()
	bin, err := Find()
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{dir: tb.TempDir(), log: new(caddyproc.SyncBuffer)}
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			tb.Error(err)
		}
		if tb.Failed() {
			access, _ := os.ReadFile(filepath.Join(s.dir, "access.log"))
			tb.Logf("nginx logged:\n%s\nnginx access log:\n%s", s.log.String(), access)
		}
	})
	for attempt := 1; ; attempt++ {
		ports, err := caddyproc.FreePorts(1)
		if err != nil {
			tb.Fatal(err)
		}
		err = s.start(bin, ports[0], servers(ports[0]))
		if err == nil {
			return s
		}
		if !strings.Contains(s.log.String(), "Address already in use") || attempt == startAttempts {
			tb.Fatal(err)
		}
	}
}

// URL returns http://127.0.0.1:PORT followed by path.
func (s *Server) URL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", s.Port, path)
}

// Logs returns what nginx has written to its error log so far.
func (s *Server) Logs() string { return s.log.String() }

// start writes nginx.conf for port, runs nginx and waits until it answers.
func (s *Server) start(bin string, port int, servers string) error {
	conf := filepath.Join(s.dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, mainConfig, s.dir, servers), 0o600); err != nil {
		return fmt.Errorf("nginxtest: writing nginx.conf: %w", err)
	}
	// Each attempt's log is its own, so an old bind error is not read as new.
	s.log = new(caddyproc.SyncBuffer)
	// -e: the error log before the config is read goes to stderr too, not
	// to a file under /var/log that a normal user cannot open.
	cmd := exec.Command(bin, "-p", s.dir, "-c", conf, "-e", "stderr")
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("nginxtest: starting %s: %w", bin, err)
	}
	s.cmd, s.exited, s.Port = cmd, make(chan struct{}), port
	go func() { cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(); err != nil {
		return errors.Join(err, s.stop())
	}
	return nil
}

// readyClient asks only whether nginx answers; it neither follows
// redirects nor waits long for an answer.
var readyClient = &http.Client{
	Timeout:       2 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// waitReady polls until nginx answers any HTTP response naming itself
// (whatever else took the port would not), and gives up at once if it exits.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("nginxtest: nginx exited at start:\n%s", s.log.String())
		default:
		}
		resp, err := readyClient.Get(s.URL("/"))
		if err == nil {
			resp.Body.Close()
			if strings.HasPrefix(resp.Header.Get("Server"), "nginx") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginxtest: nginx did not answer on port %d within %v:\n%s", s.Port, readyTimeout, s.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends nginx with SIGTERM (fast shutdown: the test is done with its
// connections) and waits for it, killing it if it takes too long; it
// reports an nginx that died on its own, since the test then ran without it.
func (s *Server) stop() error {
	if s.cmd == nil {
		return nil
	}
	cmd := s.cmd
	s.cmd = nil
	select {
	case <-s.exited:
		return fmt.Errorf("nginxtest: nginx exited before it was stopped: %v", cmd.ProcessState)
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("nginxtest: nginx did not exit within %v of SIGTERM and was killed", stopTimeout)
	}
}
