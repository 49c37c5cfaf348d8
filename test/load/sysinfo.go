package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// The machine is shared: other processes (the database, and anything else
// running) take CPU from the benchmark. Each phase therefore records how
// many cores this process, the database server and everything else used,
// read from /proc, so that a result taken on a busy machine says so.

// userHZ is the unit of the CPU times in /proc (USER_HZ, 100 on Linux).
const userHZ = 100

// dbPID is the local database server's process, 0 when unknown (a remote
// database, or SQLite inside this process).
var dbPID int

type cpuSample struct {
	wall       time.Time
	machine    uint64 // busy ticks of all CPUs (/proc/stat)
	self, db   uint64 // ticks of this process and of dbPID
	okMachine  bool
	okSelf     bool
	okDatabase bool
}

// CPUShare is CPU use during a phase, in cores (1.0 = one core busy the
// whole time); the machine has Cores of them.
type CPUShare struct {
	Self  float64 `json:"self_cores"`
	DB    float64 `json:"db_cores"`
	Other float64 `json:"other_cores"`
	Cores int     `json:"machine_cores"`
	wall  time.Duration
}

func readCPU() cpuSample {
	s := cpuSample{wall: time.Now()}
	s.machine, s.okMachine = machineBusy()
	s.self, s.okSelf = processTicks("self")
	if dbPID > 0 {
		s.db, s.okDatabase = processTicks(strconv.Itoa(dbPID))
	}
	return s
}

func (s cpuSample) since(from cpuSample) CPUShare {
	wall := s.wall.Sub(from.wall)
	c := CPUShare{Cores: runtime.NumCPU(), wall: wall}
	if wall <= 0 {
		return c
	}
	cores := func(t1, t0 uint64) float64 {
		if t1 < t0 {
			return 0
		}
		return float64(t1-t0) / userHZ / wall.Seconds()
	}
	if s.okSelf && from.okSelf {
		c.Self = cores(s.self, from.self)
	}
	if s.okDatabase && from.okDatabase {
		c.DB = cores(s.db, from.db)
	}
	if s.okMachine && from.okMachine {
		c.Other = max(cores(s.machine, from.machine)-c.Self-c.DB, 0)
	}
	return c
}

// add combines two phases' shares weighted by their durations.
func (c CPUShare) add(o CPUShare) CPUShare {
	w := c.wall + o.wall
	if w <= 0 {
		return o
	}
	f := func(a, b float64) float64 {
		return (a*c.wall.Seconds() + b*o.wall.Seconds()) / w.Seconds()
	}
	return CPUShare{Self: f(c.Self, o.Self), DB: f(c.DB, o.DB), Other: f(c.Other, o.Other), Cores: max(c.Cores, o.Cores), wall: w}
}

func (c CPUShare) String() string {
	return fmt.Sprintf("%.1f/%.1f/%.1f", c.Self, c.DB, c.Other)
}

// machineBusy sums the non-idle time of every CPU.
func machineBusy() (uint64, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0, false
	}
	var busy uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, false
		}
		// Fields: user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already inside user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return busy, true
}

// processTicks is utime+stime of /proc/<pid>/stat.
func processTicks(pid string) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces: fields count from after its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	return u + s, err1 == nil && err2 == nil
}

// listenerPID returns the pid of the process listening on the TCP port
// (the local database server), 0 if none is found: the socket's inode from
// /proc/net/tcp{,6}, then the process holding it among /proc/*/fd.
func listenerPID(port int) int {
	inodes := map[string]bool{}
	for _, inode := range tcpSockets(port, tcpListen) {
		inodes["socket:["+inode+"]"] = true
	}
	if len(inodes) == 0 {
		return 0
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && inodes[target] {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return pid
		}
	}
	return 0
}

// TCP states as /proc/net/tcp writes them.
const (
	tcpEstablished = "01"
	tcpListen      = "0A"
)

// tcpSockets returns the inodes of the TCP sockets (IPv4 and IPv6) whose
// local port is port and whose state is state.
func tcpSockets(port int, state string) []string {
	var inodes []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != state {
				continue
			}
			_, hexPort, ok := strings.Cut(f[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
				inodes = append(inodes, f[9])
			}
		}
	}
	return inodes
}

// statusBytes reads a "kB" line (VmHWM, VmRSS) of /proc/<pid>/status;
// pid "self" is this process.
func statusBytes(pid, field string) (int64, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", field, err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%s/status has no %s", pid, field)
}

// Machine describes where the numbers were taken.
type Machine struct {
	CPUModel   string   `json:"cpu_model"`
	Cores      int      `json:"cores"`
	MemoryMiB  int64    `json:"memory_mib"`
	Kernel     string   `json:"kernel"`
	GoVersion  string   `json:"go_version"`
	Database   string   `json:"database"`
	LoadBefore []string `json:"loadavg_before"`
	LoadAfter  []string `json:"loadavg_after,omitempty"`
}

func describeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				m.MemoryMiB = kb >> 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func loadAvg() []string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b))
	return f[:min(3, len(f))]
}

// mib renders bytes as MiB with one decimal.
func mib(b int64) string {
	return strconv.FormatFloat(math.Round(float64(b)/(1<<20)*10)/10, 'f', 1, 64)
}
