package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseWrk(t *testing.T) {
	// The tail of a real run: wrk's own summary, then wrkScript's line.
	out := "  Non-2xx or 3xx responses: 1117\nRequests/sec:   1113.77\n" +
		"pgsession-bench 1117 1002897 580840 0 0 0 1117 0 1197 7118\n"
	got, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{requests: 1117, duration: 1002897 * time.Microsecond, bytes: 580840, errStatus: 1117,
		p50: 1197 * time.Microsecond, p99: 7118 * time.Microsecond}
	if got != want {
		t.Errorf("parseWrk = %+v, want %+v", got, want)
	}
	if _, err := parseWrk("Requests/sec: 1113.77\n"); err == nil {
		t.Error("parseWrk accepted output without the summary line")
	}
}

// TestCheck makes sure a run that did not serve the file every time cannot
// pass for speed.
func TestCheck(t *testing.T) {
	const size = 1300 // bytes of one full 200 on the wire
	ok := wrkResult{requests: 1000, bytes: 1000*size + 500}
	tests := []struct {
		name    string
		r       wrkResult
		wantErr string // "" when the run should pass
	}{
		{"every response the file", ok, ""},
		{"no requests", wrkResult{}, "no request"},
		{"401 flood", wrkResult{requests: 1000, bytes: 1000 * size, errStatus: 1000}, "status of 400"},
		{"one 503", wrkResult{requests: 1000, bytes: 1000 * size, errStatus: 1}, "status of 400"},
		{"redirect flood", wrkResult{requests: 1000, bytes: 1000 * 200}, "not the file"},
		{"some redirects", wrkResult{requests: 1000, bytes: 990*size + 10*200}, "not the file"},
		{"read errors", wrkResult{requests: 1000, bytes: 1000 * size, errRead: 3}, "socket errors"},
		{"timeouts", wrkResult{requests: 1000, bytes: 1000 * size, errTimeout: 1}, "socket errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.check(size)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("check = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("check = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRoundOrder(t *testing.T) {
	want := [][]int{{0, 1, 2}, {2, 1, 0}, {0, 1, 2}, {2, 1, 0}}
	for round, w := range want {
		for k := range w {
			if got := roundOrder(round, k, 3); got != w[k] {
				t.Errorf("roundOrder(%d, %d, 3) = %d, want %d", round, k, got, w[k])
			}
		}
	}
}
