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
