package main

import (
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBenchAgainstRunningRelay runs every scenario, on both transports, with
// tiny numbers against a relay started through run (--url: no child
// processes, so no memory or server CPU figures: the bench's own CPU only). It checks what the run reports,
// not how fast: nothing lost at a rate any machine keeps up with.
func TestBenchAgainstRunningRelay(t *testing.T) {
	r := start(t, map[string]string{"RELAY_JWT_SECRET": testSecret, "RELAY_LOG_LEVEL": "warn"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	err := benchCmd(ctx, []string{"--url", r.url, "--jwt-secret", testSecret, "--transport", "both",
		"--subscribers", "3", "--rate", "50", "--duration", "200ms",
		"--publishers", "2", "--publish-subscribers", "2", "--publish-duration", "100ms",
		"--catchup", "20", "--connections", "4", "--idle-cpu", "1ms"}, func(string) string { return "" }, &out, io.Discard)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?s)SSE .*deliveries/s to 3 subscribers: +\d+ \(offered \d+/s; 0 lost\).*` +
			`2 publishers, one channel, 2 subscribers: \d+ accepted/s, [\d.]+% delivered.*` +
			`CPU per event: bench [\d.]+ µs \([\d.]+ in the kernel\).*` +
			`catch-up over 20 missed events.*` +
			`4 idle streams from 1 source addresses.*one event to every stream \(median of 5\): [\d.]+ ms; p99 per stream [\d.]+ ms; 0 receipts missing` +
			`\s+CPU per event and stream: bench [\d.]+ µs`),
		regexp.MustCompile(`(?s)WebSocket .*deliveries/s to 3 subscribers: +\d+ \(offered \d+/s; 0 lost\).*` +
			`catch-up over 20 missed events.*0 receipts missing`),
	} {
		if !want.MatchString(got) {
			t.Errorf("bench printed:\n%s\nwant it to match %s", got, want)
		}
	}
}

// TestPrintScaleRatios: the scale run prints relay's memory and its time to
// every stream against the bare broadcaster's of the same run, and no ratio
// when the bare broadcaster was not measured.
func TestPrintScaleRatios(t *testing.T) {
	s := scaleResult{streams: 18000, addrs: 4, perConn: idleResult{rss: 9 * 1024}, idle: spent{server: -1},
		toAll: 150 * time.Millisecond, p99: 120 * time.Millisecond, spent: spent{server: -1, bench: -1, redis: -1}}
	cases := []struct {
		name string
		bare figures
		want []string
	}{
		{"with the bare broadcaster", figures{scalePerConn: 18 * 1024, scaleToAll: 200 * time.Millisecond},
			[]string{"9.0 KiB (0.50x bare)", "150.00 ms (0.75x bare); p99 per stream 120.00 ms"}},
		{"without", figures{}, []string{"9.0 KiB\n", "150.00 ms; p99 per stream 120.00 ms"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out strings.Builder
			(&benchOpts{out: &out}).printScale(s, c.bare)
			if strings.Contains(out.String(), "kernel's time alone") {
				t.Errorf("printed a kernel floor without the CPU figures:\n%s", out.String())
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("printed:\n%s\nwant it to contain %q", out.String(), w)
				}
			}
		})
	}
}

// TestScaleKernelFloor: the floor is the server's and the bench's kernel
// time per stream, for every stream, over the cores.
func TestScaleKernelFloor(t *testing.T) {
	s := scaleResult{streams: 18000, spent: spent{server: 13, kernel: 8.5, bench: 8, benchK: 4.5, redis: -1}}
	got, ok := s.kernelFloor(2)
	if want := 117 * time.Millisecond; !ok || got != want {
		t.Errorf("got %v, %v, want %v", got, ok, want)
	}
	s.spent.bench = -1
	if _, ok := s.kernelFloor(2); ok {
		t.Error("a floor without the bench's CPU")
	}
}
