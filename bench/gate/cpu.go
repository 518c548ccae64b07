package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: Linux reports
// them in hundredths of a second whatever the kernel's own tick rate.
const userHZ = 100

// cpuMeter reads how much CPU Caddy and PostgreSQL have used, because CPU
// time per request is what a request costs, and unlike throughput it hardly
// changes when other work on a shared machine takes turns on the cores.
type cpuMeter struct {
	caddyPID, postmasterPID int
}

// cpuSample is the CPU time used so far by Caddy and by the whole
// PostgreSQL cluster.
type cpuSample struct {
	caddy, postgres time.Duration
}

func (m cpuMeter) sample() (cpuSample, error) {
	caddy, err := processCPU(m.caddyPID)
	if err != nil {
		return cpuSample{}, err
	}
	pg, err := clusterCPU(m.postmasterPID)
	if err != nil {
		return cpuSample{}, err
	}
	return cpuSample{caddy: caddy, postgres: pg}, nil
}

func (s cpuSample) sub(t cpuSample) cpuSample {
	return cpuSample{caddy: s.caddy - t.caddy, postgres: s.postgres - t.postgres}
}

// procStat holds the fields of /proc/<pid>/stat the meter needs.
type procStat struct {
	ppid int
	// own is the process's user and system time; children that of its
	// children that have exited and been waited for.
	own, children time.Duration
}

func readProcStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// The command name may hold spaces and parentheses; the fields after
	// its closing parenthesis start with the state (field 3).
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(f))
	}
	var n [5]int64 // ppid, utime, stime, cutime, cstime: fields 4, 14-17
	for k, idx := range []int{1, 11, 12, 13, 14} {
		if n[k], err = strconv.ParseInt(f[idx], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
		}
	}
	tick := time.Second / userHZ
	return procStat{ppid: int(n[0]), own: time.Duration(n[1]+n[2]) * tick, children: time.Duration(n[3]+n[4]) * tick}, nil
}

func processCPU(pid int) (time.Duration, error) {
	st, err := readProcStat(pid)
	return st.own, err
}

// clusterCPU adds up the postmaster, its running children (backends,
// writers, autovacuum) and, through the postmaster's children time, those
// that have exited.
func clusterCPU(postmaster int) (time.Duration, error) {
	st, err := readProcStat(postmaster)
	if err != nil {
		return 0, err
	}
	total := st.own + st.children
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil || pid == postmaster {
			continue
		}
		// A process may exit between the listing and the read; it then
		// counts in the postmaster's children time.
		child, err := readProcStat(pid)
		if err == nil && child.ppid == postmaster {
			total += child.own + child.children
		}
	}
	return total, nil
}
