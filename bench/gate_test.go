// Package bench measures what the gate costs a request, end to end: the
// development Caddy binary, a PostgreSQL from the test harness, and real
// HTTP over loopback. Run it with `make bench`.
package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// binary is built on first use, so `go test ./...` without -bench builds nothing.
var binary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "pgsession-bench-")
	if err != nil {
		return "", err
	}
	return caddyproc.Build(dir, false)
})

// BenchmarkGate compares a request to the same response with and without
// the gate in front of it.
func BenchmarkGate(b *testing.B) {
	bin, err := binary()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	s, err := store.New(pool, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	alice, err := s.CreateUser(ctx, "alice", "correct horse battery", false)
	if err != nil {
		b.Fatal(err)
	}
	token, _, err := s.CreateSession(ctx, store.SessionParams{User: *alice, Lifetime: time.Hour})
	if err != nil {
		b.Fatal(err)
	}

	open, gated := caddyproc.FreePort(b), caddyproc.FreePort(b)
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
	pg_session {
		database_url %s
	}
}
http://127.0.0.1:%d {
	respond "hello" 200
}
http://127.0.0.1:%d {
	pg_session
	respond "hello" 200
}
`, pool.Config().ConnString(), open, gated)
	caddyproc.Start(b, bin, caddyfile, fmt.Sprintf("http://127.0.0.1:%d/", open), 0)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	cases := []struct {
		name   string
		port   int
		cookie string
		want   int
	}{
		{"no_gate", open, "", http.StatusOK},
		{"valid_session", gated, token, http.StatusOK},
		{"no_cookie", gated, "", http.StatusUnauthorized},
		{"malformed_cookie", gated, "garbage", http.StatusUnauthorized},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			url := fmt.Sprintf("http://127.0.0.1:%d/page", bc.port)
			// 32 clients at once, as a busy site would have.
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodGet, url, nil)
					if bc.cookie != "" {
						req.AddCookie(&http.Cookie{Name: "session", Value: bc.cookie})
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != bc.want {
						b.Fatalf("status %d, want %d", resp.StatusCode, bc.want)
					}
				}
			})
		})
	}
}
