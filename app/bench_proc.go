package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/auth"
)

// benchTarget is the server under measurement: relay, or the bare
// broadcaster (bare: no tokens, no log, so no catch-up).
type benchTarget struct {
	name, url, secret string
	bare              bool
	redis             *redis.Client // the redis store's Redis, for its CPU time (nil: none)
	cmd               *exec.Cmd
	waited            chan struct{}
}

// startBenchTarget starts this binary as `relay serve` on a free port.
func startBenchTarget(ctx context.Context, store, redisURL string) (*benchTarget, error) {
	t := &benchTarget{name: store + " store", secret: randomSecret()}
	env := append(os.Environ(), "RELAY_ADDR=127.0.0.1:0", "RELAY_JWT_SECRET="+t.secret,
		"RELAY_LOG_LEVEL=warn", "RELAY_HISTORY_MAX_AGE=15m", "REDIS_URL=",
		// bench opens every stream as one user from a few addresses, as fast as it can.
		"RELAY_MAX_CONNS_PER_USER=1000000", "RELAY_MAX_CONNS_PER_IP=1000000",
		"RELAY_CONNECT_RATE=1000000", "RELAY_CONNECT_BURST=1000000")
	if store == "redis" {
		env = append(env, "REDIS_URL="+redisURL, "RELAY_REDIS_PREFIX=relaybench:"+randomSecret()[:8]+":")
		if opt, err := redis.ParseURL(redisURL); err == nil {
			t.redis = redis.NewClient(opt)
		}
	}
	return t, t.start(ctx, []string{"serve"}, env)
}

// startBareTarget starts this binary as `relay bench bare`.
func startBareTarget(ctx context.Context) (*benchTarget, error) {
	t := &benchTarget{name: "bare broadcaster", bare: true}
	return t, t.start(ctx, []string{"bench", "bare"}, os.Environ())
}

// start runs this binary with args and reads its URL from the first line
// it prints ("… listening on http://…"). The child inherits the bench's
// raised file limit (and a Go child raises its own soft limit anyway).
func (t *benchTarget) start(ctx context.Context, args, env []string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: find relay binary: %w", err)
	}
	t.waited = make(chan struct{})
	t.cmd = exec.CommandContext(ctx, exe, args...)
	t.cmd.Env = env
	t.cmd.Stderr = os.Stderr
	out, err := t.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := t.cmd.Start(); err != nil {
		return fmt.Errorf("bench: start %s: %w", t.name, err)
	}
	go func() { _ = t.cmd.Wait(); close(t.waited) }()
	line, err := bufio.NewReader(out).ReadString('\n')
	_, url, ok := strings.Cut(line, "listening on ")
	if err != nil || !ok {
		t.stop()
		return fmt.Errorf("bench: %s did not start: %q %v", t.name, line, err)
	}
	t.url, _, _ = strings.Cut(strings.TrimSpace(url), " ")
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return nil
}

func (t *benchTarget) stop() {
	if t.redis != nil {
		_ = t.redis.Close()
	}
	if t.cmd == nil {
		return
	}
	_ = t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.waited:
	case <-time.After(10 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.waited
	}
}

func (t *benchTarget) token(id auth.Identity) string {
	if t.bare {
		return "bare"
	}
	tok, err := auth.Mint([]byte(t.secret), id, time.Hour)
	if err != nil {
		panic(err) // only on a bad secret, which bench itself made
	}
	return tok
}

func (t *benchTarget) procFile(name string) string {
	if t.cmd == nil {
		return ""
	}
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", t.cmd.Process.Pid, name))
	return string(raw)
}

// rss is the target's resident memory in bytes, or 0 when unknown.
func (t *benchTarget) rss() int64 { return statusKiB(t.procFile("status"), "VmRSS:") << 10 }

// fileLimit is the target's soft limit on open files, or 0 when unknown.
func (t *benchTarget) fileLimit() uint64 {
	for line := range strings.Lines(t.procFile("limits")) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				n, _ := strconv.ParseUint(fields[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// statusKiB reads a "Key:  123 kB" (or "Key: 123") line of
// /proc/<pid>/status.
func statusKiB(status, key string) int64 {
	for line := range strings.Lines(status) {
		if rest, ok := strings.CutPrefix(line, key); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				n, _ := strconv.ParseInt(fields[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// statTimes is utime and stime of a /proc/<pid>/stat line, in clock
// ticks, or -1, -1. The command name (field 2) is in parentheses and may
// hold spaces and ')', so fields are counted after its last ')': utime and
// stime are fields 14 and 15.
func statTimes(stat string) (user, sys int64) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return -1, -1
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return -1, -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1, -1
	}
	return u, s
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo).
const clockTicks = 100
