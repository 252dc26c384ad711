package main

import (
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBenchFlags(t *testing.T) {
	env := func(k string) string { return map[string]string{"RELAY_JWT_SECRET": "from-env"}[k] }
	tests := []struct {
		name       string
		args       []string
		transports []string
		stores     []string
		conns      int
		err        string
	}{
		{name: "defaults", transports: []string{"sse", "ws"}, stores: []string{"memory", "redis"}},
		{name: "sse only", args: []string{"--transport", "sse"}, transports: []string{"sse"}, stores: []string{"memory", "redis"}},
		{name: "ws, one store", args: []string{"--transport=ws", "--stores=redis"}, transports: []string{"ws"}, stores: []string{"redis"}},
		{name: "listed", args: []string{"--transport", "ws,sse"}, transports: []string{"ws", "sse"}, stores: []string{"memory", "redis"}},
		{name: "scale", args: []string{"--connections", "18000"}, transports: []string{"sse", "ws"}, stores: []string{"memory", "redis"}, conns: 18000},
		{name: "url takes the secret from env", args: []string{"--url", "http://x"}, transports: []string{"sse", "ws"}, stores: []string{"memory", "redis"}},
		{name: "unknown transport", args: []string{"--transport", "sse,quic"}, err: `unknown transport "quic"`},
		{name: "empty transport", args: []string{"--transport", ""}, err: "need at least one value"},
		{name: "unknown store", args: []string{"--stores", "mysql"}, err: `unknown store "mysql"`},
		{name: "negative connections", args: []string{"--connections", "-1"}, err: "--connections"},
		{name: "no subscribers", args: []string{"--subscribers", "0"}, err: "must be positive"},
		{name: "no publishers", args: []string{"--publishers", "0"}, err: "must be positive"},
		{name: "publish batch beyond relay's", args: []string{"--publish-batch", "1001", "--bare=false"}, err: "--publish-batch"},
		{name: "publish batch against the bare broadcaster", args: []string{"--publish-batch", "50"}, err: "--bare=false"},
		{name: "catch-up beyond a batch", args: []string{"--catchup", "1001"}, err: "--catchup"},
		{name: "stray argument", args: []string{"memory"}, err: `unexpected argument "memory"`},
		{name: "bad duration", args: []string{"--duration", "ten"}, err: "invalid value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseBenchFlags(tc.args, env, io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.transports, tc.transports) || !slices.Equal(o.stores, tc.stores) || o.connections != tc.conns {
				t.Errorf("got transports %q, stores %q, connections %d; want %q, %q, %d",
					o.transports, o.stores, o.connections, tc.transports, tc.stores, tc.conns)
			}
		})
	}
}

func TestBenchURLNeedsSecret(t *testing.T) {
	_, err := parseBenchFlags([]string{"--url", "http://x"}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--jwt-secret") {
		t.Fatalf("got %v, want an error naming --jwt-secret", err)
	}
}

func TestBenchDefaultsAreQuick(t *testing.T) {
	o, err := parseBenchFlags(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Per target and transport: connecting, settling, fan-out, publishers,
	// catch-up; three targets (bare, memory, redis) and two transports.
	per := settle + o.duration + o.pubDuration + 2*time.Second
	if total := 6 * per; total > 2*time.Minute || o.connections != 0 {
		t.Errorf("defaults take about %s with --connections %d, want under 2m and no scale run", total, o.connections)
	}
}

func TestStatTimes(t *testing.T) {
	tests := []struct {
		name, stat string
		user, sys  int64
	}{
		{"plain", "42 (relay) S 1 42 42 0 -1 4194560 900 0 0 0 7 3 0 0 20 0 9", 7, 3},
		{"name with spaces and parentheses", "42 (a) b (c) R 1 42 42 0 -1 4194560 900 0 0 0 120 35 0 0", 120, 35},
		{"truncated", "42 (relay) S 1 42 42", -1, -1},
		{"no name", "garbage", -1, -1},
		{"not numbers", "42 (relay) S 1 42 42 0 -1 4194560 900 0 0 0 x y 0 0", -1, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if u, s := statTimes(tc.stat); u != tc.user || s != tc.sys {
				t.Errorf("statTimes(%q) = %d, %d, want %d, %d", tc.stat, u, s, tc.user, tc.sys)
			}
		})
	}
}

func TestProcReadings(t *testing.T) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	if u, s := statTimes(string(stat)); u < 0 || s < 0 {
		t.Errorf("statTimes of this process = %d, %d, want ≥ 0", u, s)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if got := statusKiB(string(status), "VmRSS:"); got <= 0 {
		t.Errorf("VmRSS of this process = %d KiB, want > 0", got)
	}
	got, err := raiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if got != lim.Max || lim.Cur != lim.Max {
		t.Errorf("raiseFileLimit = %d, soft limit now %d; want both the hard limit %d", got, lim.Cur, lim.Max)
	}
}
