package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// variantRuns are one variant's runs, one per round.
type variantRuns struct {
	name string
	runs []loadRun
}

// loadRun is one wrk run and the CPU Caddy and PostgreSQL used during it.
type loadRun struct {
	wrkResult
	cpu cpuSample
}

// cpuPerRequest returns the CPU per request of Caddy, PostgreSQL and both.
func (r loadRun) cpuPerRequest() (caddy, postgres, total float64) {
	n := float64(r.requests)
	return float64(r.cpu.caddy) / n, float64(r.cpu.postgres) / n, float64(r.cpu.caddy+r.cpu.postgres) / n
}

// measureThroughput checks every variant, warms them up, then runs the
// rounds, each of which runs every variant once.
func (env *environment) measureThroughput(ctx context.Context) ([]variantRuns, error) {
	cfg := env.cfg
	sizes := make(map[string]int64, len(cfg.variants))
	headers := make(map[string]string, len(cfg.variants))
	scripts := make(map[string]string, len(cfg.variants))
	for _, name := range cfg.variants {
		v, _ := variantByName(name)
		size, err := env.preflight(v)
		if err != nil {
			return nil, err
		}
		sizes[name], headers[name], scripts[name] = size, v.header(env), env.wrkScript
		if v.manySessions {
			headers[name], scripts[name] = "", env.manyScript
		}
	}
	load := func(name string, d time.Duration, profile string) (loadRun, error) {
		env.meter.caddyPID = env.pids[name]
		before, err := env.meter.sample()
		if err != nil {
			return loadRun{}, err
		}
		profiled := make(chan error, 1)
		if profile != "" {
			go func() { profiled <- env.profileCaddy(ctx, name, d-time.Second, profile) }()
		} else {
			profiled <- nil
		}
		r, err := env.runWrk(ctx, siteURL(env.ports[name]), headers[name], scripts[name], d)
		if err := errors.Join(err, <-profiled); err != nil {
			return loadRun{}, fmt.Errorf("%s: %w", name, err)
		}
		after, err := env.meter.sample()
		if err != nil {
			return loadRun{}, err
		}
		if err := r.check(sizes[name]); err != nil {
			return loadRun{}, fmt.Errorf("%s: %w", name, err)
		}
		return loadRun{wrkResult: r, cpu: after.sub(before)}, nil
	}

	if cfg.warmup > 0 {
		progress("warming up each variant for %s", cfg.warmup)
		for _, name := range cfg.variants {
			if _, err := load(name, cfg.warmup, ""); err != nil {
				return nil, err
			}
		}
	}
	results := make([]variantRuns, len(cfg.variants))
	for i, name := range cfg.variants {
		results[i].name = name
	}
	n := len(cfg.variants)
	for round := range cfg.rounds {
		for k := range n {
			i := roundOrder(round, k, n)
			var profile string
			if cfg.profile != "" {
				profile = filepath.Join(cfg.profile, fmt.Sprintf("%s-%d.pprof", results[i].name, round+1))
			}
			r, err := load(results[i].name, cfg.duration, profile)
			if err != nil {
				return nil, err
			}
			results[i].runs = append(results[i].runs, r)
			_, _, cpu := r.cpuPerRequest()
			progress("round %d/%d  %-19s %8s req/s  p50 %-9s p99 %-10s CPU %s/req", round+1, cfg.rounds, results[i].name,
				thousands(r.rate()), latency(r.p50), latency(r.p99), latency(time.Duration(cpu)))
		}
	}
	if cfg.profile != "" {
		progress("CPU profiles in %s; compare two variants with go tool pprof -top -normalize -diff_base=%s %s",
			cfg.profile, filepath.Join(cfg.profile, "basic_auth-1.pprof"), filepath.Join(cfg.profile, "gate_cache_on-1.pprof"))
	}
	return results, nil
}

// profileCaddy writes a CPU profile of the Caddy serving the variant, taken
// for d from its admin endpoint while wrk loads it, to path.
func (env *environment) profileCaddy(ctx context.Context, name string, d time.Duration, path string) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", env.admins[name], int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profiling: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profiling: %s from %s", resp.Status, url)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profiling: %w", err)
	}
	return f.Close()
}

// roundOrder returns the variant that runs k-th in a round of n: every
// other round runs backwards (A B C, C B A, A B C, ...), so a steady drift
// in the machine's speed during the run evens out over each pair of rounds,
// and each variant follows each of its neighbours in turn, whose garbage or
// database work it might inherit.
func roundOrder(round, k, n int) int {
	if round%2 == 1 {
		return n - 1 - k
	}
	return k
}

// printThroughput prints the table: medians across rounds, and each
// variant's ratio to plain taken within each round, since only runs a few
// seconds apart saw the same machine.
func printThroughput(w io.Writer, cfg config, machine, loadBefore string, results []variantRuns) {
	var plain, plainCPU []float64
	for _, vr := range results {
		if vr.name == "plain" {
			for _, r := range vr.runs {
				_, _, cpu := r.cpuPerRequest()
				plain, plainCPU = append(plain, r.rate()), append(plainCPU, cpu)
			}
		}
	}
	fmt.Fprintf(w, "Gate throughput: a %d-byte file over HTTP/1.1 keep-alive on loopback, wrk -t%d -c%d,\n",
		fileSize, cfg.threads, cfg.connections)
	fmt.Fprintf(w, "%d interleaved rounds of %s per variant; client, Caddy and PostgreSQL share the machine.\n",
		cfg.rounds, cfg.duration)
	fmt.Fprintf(w, "machine: %s\n", machine)
	// Other work on a shared machine shows in its load average and explains
	// a wide range; the figure at the end includes the run's own load.
	fmt.Fprintf(w, "load average (1 min): %s when the run started, %s at the end\n\n", loadBefore, loadAverage())
	const row = "%-20s %9s %10s %10s %9s %12s\n"
	fmt.Fprintf(w, row, "variant", "req/s", "p50", "p99", "vs plain", "min–max")
	for _, vr := range results {
		var rates, p50s, p99s, ratios []float64
		for i, r := range vr.runs {
			rates = append(rates, r.rate())
			p50s = append(p50s, float64(r.p50))
			p99s = append(p99s, float64(r.p99))
			ratios = append(ratios, r.rate()/plain[i])
		}
		fmt.Fprintf(w, row, vr.name, thousands(median(rates)),
			latency(time.Duration(median(p50s))), latency(time.Duration(median(p99s))),
			fmt.Sprintf("%.2f", median(ratios)), fmt.Sprintf("%.2f–%.2f", slices.Min(ratios), slices.Max(ratios)))
	}
	fmt.Fprintln(w, "(req/s, p50 and p99: medians across rounds; vs plain: median of the per-round ratios, with their range)")

	// CPU per request barely moves when other work shares the cores, so it
	// is the steadier figure of what each variant costs.
	fmt.Fprintln(w, "\nCPU time per request: Caddy, the whole PostgreSQL cluster, their total, and the load generator:")
	const cpuRow = "%-20s %9s %11s %9s %9s %12s %9s\n"
	fmt.Fprintf(w, cpuRow, "variant", "Caddy", "PostgreSQL", "total", "vs plain", "min–max", "wrk")
	for _, vr := range results {
		var caddy, pg, total, ratios, client []float64
		for i, r := range vr.runs {
			c, p, t := r.cpuPerRequest()
			caddy, pg, total = append(caddy, c), append(pg, p), append(total, t)
			ratios = append(ratios, t/plainCPU[i])
			client = append(client, float64(r.clientCPU)/float64(r.requests))
		}
		fmt.Fprintf(w, cpuRow, vr.name, latency(time.Duration(median(caddy))), latency(time.Duration(median(pg))),
			latency(time.Duration(median(total))), fmt.Sprintf("%.2f", median(ratios)),
			fmt.Sprintf("%.2f–%.2f", slices.Min(ratios), slices.Max(ratios)), latency(time.Duration(median(client))))
	}
	fmt.Fprintln(w, "(medians across rounds; vs plain: median of the per-round ratios of the total, with their range)")
}

// median returns the middle value, or the mean of the two middle ones.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile returns the nearest-rank p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(float64(len(sorted))*p/100)) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// latency prints microseconds below a millisecond and milliseconds above,
// so short and long latencies both keep three significant digits.
func latency(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// thousands formats a count with thousands separators, for reading at a glance.
func thousands(x float64) string {
	s := fmt.Sprintf("%d", int64(x+0.5))
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
