package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// usage is what the machine has spent so far, read before and after a
// measurement: the server's CPU time (and how much of it in the kernel)
// and context switches, the bench's own CPU time (bench and server share
// the cores), Redis's CPU time for the redis store, and the machine's CPU
// time with the hypervisor's steal: time other tenants of the host took
// from this machine's cores. Steal lowers every rate and lengthens every
// latency; CPU time per event moves less, so it is what compares across
// runs. -1 is unknown.
type usage struct {
	user, sys      int64         // the server's, clock ticks
	switches       int64         // the server's, voluntary and involuntary, all threads
	benchUser      time.Duration // this process's
	benchSys       time.Duration
	redis          time.Duration // INFO cpu: used_cpu_user + used_cpu_sys
	machine, steal int64         // /proc/stat: all CPUs' ticks, and steal's
}

// usage reads what t, this process, t's Redis and the machine have spent.
func (t *benchTarget) usage(ctx context.Context) usage {
	u := usage{switches: -1, redis: -1, machine: -1, steal: -1}
	u.user, u.sys = statTimes(t.procFile("stat"))
	if t.cmd != nil {
		u.switches = taskSwitches(fmt.Sprintf("/proc/%d/task", t.cmd.Process.Pid))
	}
	u.benchUser, u.benchSys = selfCPU()
	u.redis = t.redisCPU(ctx)
	if raw, err := os.ReadFile("/proc/stat"); err == nil {
		u.machine, u.steal = machineTicks(string(raw))
	}
	return u
}

// taskSwitches sums the context switches of every thread under dir
// (/proc/<pid>/task): each thread's status counts only its own.
func taskSwitches(dir string) int64 {
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	var n int64
	for _, task := range tasks {
		raw, err := os.ReadFile(filepath.Join(dir, task.Name(), "status"))
		if err != nil {
			continue // the thread has ended
		}
		n += statusKiB(string(raw), "voluntary_ctxt_switches:") + statusKiB(string(raw), "nonvoluntary_ctxt_switches:")
	}
	return n
}

// machineTicks is the total and the steal of /proc/stat's "cpu" line
// (user nice system idle iowait irq softirq steal …; guest time is
// already in user), or -1, -1.
func machineTicks(stat string) (total, steal int64) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1, -1
	}
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return -1, -1
		}
		total += n
		if i == 7 {
			steal = n
		}
	}
	return total, steal
}

// redisCPU is the CPU time of t's Redis (INFO cpu), or -1.
func (t *benchTarget) redisCPU(ctx context.Context) time.Duration {
	if t.redis == nil {
		return -1
	}
	info, err := t.redis.Info(ctx, "cpu").Result()
	if err != nil {
		return -1
	}
	var sec float64
	for _, key := range []string{"used_cpu_user:", "used_cpu_sys:"} {
		i := strings.Index(info, key)
		if i < 0 {
			return -1
		}
		v, _, _ := strings.Cut(info[i+len(key):], "\r\n")
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return -1
		}
		sec += f
	}
	return time.Duration(sec * float64(time.Second))
}

// spent is what one measurement cost, per unit (an event, or an event's
// delivery to one stream).
type spent struct {
	server, kernel float64 // the server's CPU µs, and of that in the kernel (-1: unknown)
	switches       float64 // the server's context switches (-1: unknown)
	bench, benchK  float64 // the bench's CPU µs, and of that in the kernel (-1: unknown)
	redis          float64 // CPU µs (-1: unknown)
	steal          float64 // share of the machine's CPU time (-1: unknown)
}

// per is what was spent from before to u, per one of n units.
func (u usage) per(before usage, n float64) spent {
	s := spent{server: -1, kernel: -1, switches: -1, bench: -1, benchK: -1, redis: -1, steal: -1}
	if n <= 0 {
		return s
	}
	const tick = 1e6 / clockTicks // µs
	if before.user >= 0 && u.user >= before.user {
		s.server = float64(u.user-before.user+u.sys-before.sys) * tick / n
		s.kernel = float64(u.sys-before.sys) * tick / n
	}
	if before.switches >= 0 && u.switches >= before.switches {
		s.switches = float64(u.switches-before.switches) / n
	}
	if before.benchUser >= 0 && u.benchUser >= before.benchUser {
		s.bench = float64(u.benchUser-before.benchUser+u.benchSys-before.benchSys) / 1e3 / n
		s.benchK = float64(u.benchSys-before.benchSys) / 1e3 / n
	}
	if before.redis >= 0 && u.redis >= before.redis {
		s.redis = float64(u.redis-before.redis) / 1e3 / n
	}
	if d := u.machine - before.machine; before.machine >= 0 && d > 0 {
		s.steal = float64(u.steal-before.steal) / float64(d)
	}
	return s
}

// stealShown is the share of CPU above which the bench says its figures
// are low: a few percent is the usual noise of a shared host.
const stealShown = 0.05

// String is "server 65.0 µs (41.0 in the kernel), 2.40 context switches;
// bench 40.0 µs (20.0 in the kernel); Redis 14.0 µs", with what is known, and the steal when above
// stealShown.
func (s spent) String() string {
	var parts []string
	if s.server >= 0 {
		p := fmt.Sprintf("server %.1f µs (%.1f in the kernel)", s.server, s.kernel)
		if s.switches >= 0 {
			p += fmt.Sprintf(", %.2f context switches", s.switches)
		}
		parts = append(parts, p)
	}
	if s.bench >= 0 {
		parts = append(parts, fmt.Sprintf("bench %.1f µs (%.1f in the kernel)", s.bench, s.benchK))
	}
	if s.redis >= 0 {
		parts = append(parts, fmt.Sprintf("Redis %.1f µs", s.redis))
	}
	return strings.Join(parts, "; ") + s.stealNote()
}

// stealNote is " (the hypervisor stole …)" when it took over stealShown.
func (s spent) stealNote() string {
	if s.steal <= stealShown {
		return ""
	}
	return fmt.Sprintf(" (the hypervisor stole %.0f%% of this machine's CPU meanwhile: rates and latencies are below what it gives when quiet)", 100*s.steal)
}
