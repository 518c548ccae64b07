package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgsession/caddy-pgsession/store"
)

// memoryWorkers is how many requests for distinct sessions are in flight
// at once, as many as wrk's connections in the throughput rounds.
const memoryWorkers = 32

// memoryResult is server B's memory before and after serving the sessions.
type memoryResult struct {
	sessions              int
	rssBefore, rssAfter   int64 // bytes
	heapBefore, heapAfter int64 // bytes of live Go heap after a forced GC
	took                  time.Duration
}

// measureMemory inserts cfg.sessions sessions straight into the table,
// requests server B once with each, and reads B's resident memory before
// and after, to see what a session costs a server that has served it.
func (env *environment) measureMemory(ctx context.Context, b *serverB) (*memoryResult, error) {
	n := env.cfg.sessions
	progress("inserting %s sessions", thousands(float64(n)))
	tokens, err := env.insertSessions(ctx, n)
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: memoryWorkers}}
	url := siteURL(b.port)
	// The same load with one session first, so "before" already includes
	// the connections, pools and buffers any busy server has.
	warm := make([]string, 20*memoryWorkers)
	for i := range warm {
		warm[i] = env.token
	}
	if err := serveEach(ctx, client, url, warm); err != nil {
		return nil, err
	}
	res := &memoryResult{sessions: n}
	if res.rssBefore, err = vmRSS(b.PID()); err != nil {
		return nil, err
	}
	if res.heapBefore, err = b.heapAfterGC(); err != nil {
		return nil, err
	}

	progress("requesting server B once with each session, %d at a time", memoryWorkers)
	start := time.Now()
	if err := serveEach(ctx, client, url, tokens); err != nil {
		return nil, err
	}
	res.took = time.Since(start)
	if res.rssAfter, err = vmRSS(b.PID()); err != nil {
		return nil, err
	}
	if res.heapAfter, err = b.heapAfterGC(); err != nil {
		return nil, err
	}
	return res, nil
}

// serveEach requests url once with each token, memoryWorkers at a time, and
// fails unless every answer is 200.
func serveEach(ctx context.Context, client *http.Client, url string, tokens []string) error {
	var next atomic.Int64
	var failure atomic.Value
	var wg sync.WaitGroup
	for range memoryWorkers {
		wg.Go(func() {
			for ctx.Err() == nil && failure.Load() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(tokens)) {
					return
				}
				status, err := get(client, url, "session="+tokens[i])
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("server B answered session %d with %d, want 200", i, status)
				}
				if err != nil {
					failure.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failure.Load().(error); err != nil {
		return err
	}
	return ctx.Err()
}

// insertSessions writes n live sessions of the bench user with one COPY,
// which takes a second where n calls to CreateSession would take a minute,
// and returns their tokens.
func (env *environment) insertSessions(ctx context.Context, n int) ([]string, error) {
	tokens := make([]string, n)
	raw := make([]byte, 32)
	for i := range tokens {
		rand.Read(raw)
		tokens[i] = base64.RawURLEncoding.EncodeToString(raw)
		if !store.ValidToken(tokens[i]) {
			return nil, fmt.Errorf("generated token %q is not one the store accepts", tokens[i])
		}
	}
	expires := time.Now().Add(24 * time.Hour)
	table := pgx.Identifier{env.store.Schema(), "sessions"}
	copied, err := env.pool.CopyFrom(ctx, table, []string{"id", "user_id", "expires_at"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			return []any{store.HashToken(tokens[i]), env.user.ID, expires}, nil
		}))
	if err != nil {
		return nil, fmt.Errorf("copying sessions: %w", err)
	}
	if copied != int64(n) {
		return nil, fmt.Errorf("copied %d sessions, want %d", copied, n)
	}
	// Fresh statistics, so the lookups plan as they would on a table that
	// grew over time.
	if _, err := env.pool.Exec(ctx, "ANALYZE "+table.Sanitize()); err != nil {
		return nil, err
	}
	return tokens, nil
}

// vmRSS reads a process's resident set size from /proc, in bytes.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing VmRSS %q: %w", rest, err)
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// heapAfterGC asks Caddy's admin endpoint for a heap profile with gc=1,
// which runs a garbage collection first, and then reads the live heap from
// expvar: unlike RSS, it does not include garbage the runtime has yet to
// collect or memory it has yet to return.
func (b *serverB) heapAfterGC() (int64, error) {
	admin := fmt.Sprintf("http://127.0.0.1:%d", b.adminPort)
	resp, err := http.Get(admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		return 0, fmt.Errorf("forcing a GC in server B: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = http.Get(admin + "/debug/vars")
	if err != nil {
		return 0, fmt.Errorf("reading server B's memstats: %w", err)
	}
	defer resp.Body.Close()
	var vars struct {
		Memstats struct{ HeapAlloc int64 } `json:"memstats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		return 0, fmt.Errorf("decoding server B's memstats: %w", err)
	}
	return vars.Memstats.HeapAlloc, nil
}

func (r *memoryResult) print(w io.Writer) {
	fmt.Fprintf(w, "Memory of server B (gate_cache_on, cache_size 200000) serving %s distinct sessions once each\n",
		thousands(float64(r.sessions)))
	fmt.Fprintf(w, "(%d at a time, %s, %s req/s):\n", memoryWorkers, r.took.Round(100*time.Millisecond),
		thousands(float64(r.sessions)/r.took.Seconds()))
	perSession := func(before, after int64) string {
		return fmt.Sprintf("%s → %s, %+.1f MiB, %+.0f bytes per session", mib(before), mib(after),
			float64(after-before)/(1<<20), float64(after-before)/float64(r.sessions))
	}
	fmt.Fprintf(w, "  VmRSS:               %s\n", perSession(r.rssBefore, r.rssAfter))
	fmt.Fprintf(w, "  Go heap after a GC:  %s\n", perSession(r.heapBefore, r.heapAfter))
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
