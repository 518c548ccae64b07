package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// describeMachine names what the figures were measured on, in one line,
// since they only mean something next to it.
func describeMachine(ctx context.Context, pool *pgxpool.Pool) string {
	parts := []string{
		fmt.Sprintf("%s, %d cores", procField("/proc/cpuinfo", "model name", runtime.GOARCH), runtime.NumCPU()),
	}
	if kb, err := strconv.ParseInt(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal", ""), " kB"), 10, 64); err == nil {
		parts = append(parts, fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20)))
	}
	parts = append(parts, runtime.Version())
	var pg string
	if err := pool.QueryRow(ctx, "SHOW server_version").Scan(&pg); err != nil {
		pg = "unknown"
	}
	parts = append(parts, "PostgreSQL "+pg)
	// wrk -v prints its version and exits with status 1.
	out, _ := exec.CommandContext(ctx, "wrk", "-v").CombinedOutput()
	if f := strings.Fields(string(out)); len(f) >= 2 {
		parts = append(parts, f[0]+" "+f[1])
	}
	parts = append(parts, time.Now().Format("2006-01-02 15:04 MST"))
	return strings.Join(parts, "; ")
}

// procField returns the value of the first "key: value" line of a /proc
// file, or fallback where there is none (not Linux).
func procField(path, key, fallback string) string {
	f, err := os.Open(path)
	if err != nil {
		return fallback
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return fallback
}

// loadAverage returns the one-minute load average, or "?" where /proc has none.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
