package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkScript only defines done(), which wrk calls once after the run: a
// response() callback would cost the client work on every response and
// shift the ratios. It prints wrk's exact counts on one line, so the
// harness never scrapes the human-readable summary.
const wrkScript = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("pgsession-bench %d %d %d %d %d %d %d %d %d %d\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    math.floor(latency:percentile(50)), math.floor(latency:percentile(99))))
end
`

// wrkResult is one wrk run.
type wrkResult struct {
	requests, bytes                                      int64
	duration                                             time.Duration
	errConnect, errRead, errWrite, errStatus, errTimeout int64
	p50, p99                                             time.Duration
	// clientCPU is the CPU time wrk itself used, the share of the machine
	// the load took from the servers.
	clientCPU time.Duration
}

func (r wrkResult) rate() float64 { return float64(r.requests) / r.duration.Seconds() }

// check refuses a run whose speed could come from anything but serving the
// file. wrk counts every status of 400 and above as an error, so a 401
// flood shows there; a 3xx it counts as success, so the bytes read must
// also add up to a full response for every request.
func (r wrkResult) check(responseSize int64) error {
	switch {
	case r.requests == 0:
		return errors.New("wrk completed no request")
	case r.errStatus > 0:
		return fmt.Errorf("%d of %d responses had a status of 400 or above", r.errStatus, r.requests)
	case r.errConnect+r.errRead+r.errWrite+r.errTimeout > 0:
		return fmt.Errorf("socket errors: connect %d, read %d, write %d, timeout %d",
			r.errConnect, r.errRead, r.errWrite, r.errTimeout)
	case r.bytes < r.requests*responseSize:
		return fmt.Errorf("read %d bytes for %d responses, fewer than %d bytes each of a full 200: some answers were not the file",
			r.bytes, r.requests, responseSize)
	}
	return nil
}

// writeWrkScript writes wrkScript into dir and returns its path.
func writeWrkScript(dir string) (string, error) {
	path := filepath.Join(dir, "done.lua")
	return path, os.WriteFile(path, []byte(wrkScript), 0o644)
}

// writeManyScript writes a script that sends each request with the next
// of tokens as the session cookie, then reports as wrkScript does, and
// returns its path.
func writeManyScript(dir string, tokens []string) (string, error) {
	var b strings.Builder
	b.WriteString("local cookies = {\n")
	for _, t := range tokens {
		fmt.Fprintf(&b, "  %q,\n", "session="+t)
	}
	b.WriteString(`}
local i = 0
request = function()
  i = i % #cookies + 1
  wrk.headers["Cookie"] = cookies[i]
  return wrk.format()
end
`)
	b.WriteString(wrkScript)
	path := filepath.Join(dir, "many.lua")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// runWrk loads url for d with wrk, sending header ("Name: value") if set,
// with script (wrkScript or a script that builds on it).
func (env *environment) runWrk(ctx context.Context, url, header, script string, d time.Duration) (wrkResult, error) {
	args := []string{
		"-t" + strconv.Itoa(env.cfg.threads), "-c" + strconv.Itoa(env.cfg.connections),
		"-d" + strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s", "--latency", "-s", script,
	}
	if header != "" {
		args = append(args, "-H", header)
	}
	args = append(args, url)
	cmd := exec.CommandContext(ctx, "wrk", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return wrkResult{}, ctx.Err()
		}
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	r, err := parseWrk(out.String())
	if err != nil {
		return wrkResult{}, fmt.Errorf("%w\n%s", err, out.String())
	}
	r.clientCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return r, nil
}

// parseWrk reads the line wrkScript prints.
func parseWrk(out string) (wrkResult, error) {
	for line := range strings.SplitSeq(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) != 11 || fields[0] != "pgsession-bench" {
			continue
		}
		var n [10]int64
		for i := range n {
			v, err := strconv.ParseInt(fields[i+1], 10, 64)
			if err != nil {
				return wrkResult{}, fmt.Errorf("parsing wrk's summary line %q: %w", line, err)
			}
			n[i] = v
		}
		return wrkResult{
			requests: n[0], duration: time.Duration(n[1]) * time.Microsecond, bytes: n[2],
			errConnect: n[3], errRead: n[4], errWrite: n[5], errStatus: n[6], errTimeout: n[7],
			p50: time.Duration(n[8]) * time.Microsecond, p99: time.Duration(n[9]) * time.Microsecond,
		}, nil
	}
	return wrkResult{}, errors.New("wrk printed no summary line; is it built with Lua (wrk 4)?")
}
