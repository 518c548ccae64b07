// Command gate measures what the pg_session gate costs, side by side with a
// plain site in one run, because on a shared, noisy machine only ratios
// taken in the same minute mean anything. Run it with `make bench-gate` or
// `go run ./bench/gate -h` for the flags.
//
// It starts a throwaway PostgreSQL and one Caddy (the development binary,
// without -race) serving the same 1 KiB file on one port per variant, then
// loads each variant with wrk in interleaved rounds and prints the median
// throughput, latencies and ratio to the plain site. Then it starts a second
// Caddy on the same database to time how long a logout on one server takes
// to reach the other, and measures the resident memory of a Caddy that has
// served 100,000 distinct sessions.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
	"github.com/pgsession/caddy-pgsession/internal/pgtest"
	"github.com/pgsession/caddy-pgsession/store"
)

// config is what the flags set.
type config struct {
	variants         []string
	rounds           int
	duration         time.Duration
	warmup           time.Duration
	threads          int
	connections      int
	revocationTrials int
	sessions         int
	// profile is the folder for CPU profiles of each loaded run ("": none).
	profile string
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-gate:", err)
		os.Exit(2)
	}
	// Ctrl-C cancels the run so the deferred cleanup stops Caddy and
	// PostgreSQL instead of leaving them behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-gate:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("bench-gate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: go run ./bench/gate [flags], or make bench-gate ARGS='[flags]'")
		fs.PrintDefaults()
	}
	var cfg config
	variants := fs.String("variants", strings.Join(variantNames(), ","),
		"comma-separated variants to load; plain is required, as every ratio is to it")
	fs.IntVar(&cfg.rounds, "rounds", 5, "interleaved rounds; each runs every variant once")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long wrk loads one variant in one round")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "load on each variant before the first round, not counted (0: none)")
	fs.IntVar(&cfg.threads, "threads", 1, "wrk threads (-t)")
	fs.IntVar(&cfg.connections, "connections", 32, "wrk connections (-c)")
	fs.IntVar(&cfg.revocationTrials, "revocation-trials", 100, "logouts timed across two servers (0: skip)")
	fs.IntVar(&cfg.sessions, "sessions", 100_000, "distinct sessions served before measuring memory (0: skip)")
	fs.StringVar(&cfg.profile, "profile", "",
		"folder to write a CPU profile of Caddy for each variant and round into, to compare with go tool pprof -diff_base (\"\": none)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for name := range strings.SplitSeq(*variants, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, ok := variantByName(name); !ok {
			return cfg, fmt.Errorf("unknown variant %q; known: %s", name, strings.Join(variantNames(), ", "))
		}
		if slices.Contains(cfg.variants, name) {
			return cfg, fmt.Errorf("variant %q named twice", name)
		}
		cfg.variants = append(cfg.variants, name)
	}
	if !slices.Contains(cfg.variants, "plain") {
		return cfg, errors.New("-variants must include plain: every ratio is to it")
	}
	if cfg.rounds < 1 || cfg.duration < time.Second || cfg.threads < 1 || cfg.connections < cfg.threads {
		return cfg, errors.New("need -rounds ≥ 1, -duration ≥ 1s and -connections ≥ -threads ≥ 1")
	}
	// wrk counts its duration in whole seconds.
	if cfg.duration%time.Second != 0 || cfg.warmup%time.Second != 0 || cfg.warmup < 0 {
		return cfg, errors.New("-duration and -warmup must be whole seconds")
	}
	if cfg.profile != "" && cfg.duration < 2*time.Second {
		return cfg, errors.New("-profile needs -duration ≥ 2s")
	}
	if cfg.revocationTrials < 0 || cfg.sessions < 0 {
		return cfg, errors.New("-revocation-trials and -sessions cannot be negative")
	}
	return cfg, nil
}

func run(ctx context.Context, cfg config) (err error) {
	// Checked first, so a missing wrk costs no build and no database.
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found on PATH; install it with: apt-get install wrk")
	}
	// Read before this run adds load of its own, so it shows what else the
	// machine is doing.
	loadBefore := loadAverage()
	work, err := os.MkdirTemp("", "pgsession-bench-gate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	progress("building cmd/caddy and starting PostgreSQL")
	binary, err := caddyproc.Build(work, false)
	if err != nil {
		return err
	}
	cluster, err := pgtest.StartCluster()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cluster.Close()) }()
	dbURL, err := cluster.CreateDatabase("bench")
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	st, err := store.New(pool, store.Options{})
	if err != nil {
		return err
	}
	if _, err := st.Migrate(ctx); err != nil {
		return err
	}
	user, err := st.CreateUser(ctx, "bench", "correct horse battery staple", false)
	if err != nil {
		return err
	}
	token, _, err := st.CreateSession(ctx, store.SessionParams{User: *user, Lifetime: 24 * time.Hour})
	if err != nil {
		return err
	}
	// Autovacuum would otherwise visit the catalogs the migrations changed
	// during the first rounds, and its CPU would count against whichever
	// variant was running.
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return err
	}

	root := filepath.Join(work, "site")
	if err := writeSite(root); err != nil {
		return err
	}
	env := &environment{cfg: cfg, binary: binary, root: root, dbURL: dbURL, store: st, pool: pool, user: user, token: token}
	for _, g := range benchGroups {
		if _, err := st.CreateGroup(ctx, g); err != nil {
			return err
		}
	}
	if err := st.AddToGroups(ctx, user.ID, benchGroups...); err != nil {
		return err
	}
	if env.apiToken, _, err = st.CreateAPIToken(ctx, user.ID, "bench", time.Time{}, nil, false); err != nil {
		return err
	}
	if env.wrkScript, err = writeWrkScript(work); err != nil {
		return err
	}
	if slices.ContainsFunc(cfg.variants, func(name string) bool { v, _ := variantByName(name); return v.manySessions }) {
		progress("inserting %d sessions for the variants that rotate them", manySessionCount)
		tokens, err := env.insertSessions(ctx, manySessionCount)
		if err != nil {
			return err
		}
		if env.manyScript, err = writeManyScript(work, tokens); err != nil {
			return err
		}
	}
	if env.basicAuth, err = newBasicAuth(); err != nil {
		return err
	}
	machine := describeMachine(ctx, pool)

	// Server A serves every variant; its gated site also takes the logouts
	// of the revocation trials, so it is there even when not loaded.
	sites := slices.Clone(cfg.variants)
	if cfg.revocationTrials > 0 && !slices.Contains(sites, "gate_cache_on") {
		sites = append(sites, "gate_cache_on")
	}
	procs, err := env.startServerA(sites)
	if err != nil {
		return err
	}
	defer func() {
		for _, p := range procs {
			err = errors.Join(err, p.Stop())
		}
	}()
	if env.meter.postmasterPID, err = cluster.ServerPID(); err != nil {
		return err
	}

	results, err := env.measureThroughput(ctx)
	if err != nil {
		return err
	}
	var rev *revocationResult
	var mem *memoryResult
	if cfg.revocationTrials > 0 || cfg.sessions > 0 {
		var b *serverB
		if b, err = env.startServerB(); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, b.Stop()) }()
		if cfg.revocationTrials > 0 {
			if rev, err = env.measureRevocation(ctx, b); err != nil {
				return err
			}
		}
		if cfg.sessions > 0 {
			if mem, err = env.measureMemory(ctx, b); err != nil {
				return err
			}
		}
	}

	fmt.Println()
	printThroughput(os.Stdout, cfg, machine, loadBefore, results)
	if rev != nil {
		fmt.Println()
		rev.print(os.Stdout)
	}
	if mem != nil {
		fmt.Println()
		mem.print(os.Stdout)
	}
	return nil
}

// progress reports what the harness is doing on stderr, so the results on
// stdout stay clean for pasting.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "# "+format+"\n", args...)
}
