package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// get answers GET url: its status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestMetricsListener: /metrics is on the main listener by default; with
// RELAY_METRICS_ADDR it is on that address only, and a bad one fails the
// start, naming the setting.
func TestMetricsListener(t *testing.T) {
	t.Run("main", func(t *testing.T) {
		inst := start(t, map[string]string{"RELAY_JWT_SECRET": testSecret})
		if code, body := get(t, inst.url+"/metrics"); code != http.StatusOK || !strings.Contains(body, "relay_connections{") {
			t.Errorf("GET /metrics: got %d, want 200 with relay_connections; body:\n%.300s", code, body)
		}
	})
	t.Run("separate", func(t *testing.T) {
		inst := start(t, map[string]string{"RELAY_JWT_SECRET": testSecret, "RELAY_METRICS_ADDR": "127.0.0.1:0"})
		_, rest, ok := strings.Cut(inst.out.String(), "relay metrics on ")
		if !ok {
			t.Fatalf("no metrics URL printed; output:\n%s", inst.out.String())
		}
		url, _, _ := strings.Cut(rest, "\n")
		if code, body := get(t, url); code != http.StatusOK || !strings.Contains(body, "relay_events_published_total") {
			t.Errorf("GET %s: got %d, want 200 with relay_events_published_total", url, code)
		}
		if code, _ := get(t, inst.url+"/metrics"); code != http.StatusNotFound {
			t.Errorf("GET /metrics on the main listener: got %d, want 404", code)
		}
	})
	t.Run("bind error", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		env := map[string]string{"RELAY_ADDR": "127.0.0.1:0", "RELAY_JWT_SECRET": testSecret, "RELAY_METRICS_ADDR": ln.Addr().String()}
		err = run(context.Background(), []string{"relay"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "RELAY_METRICS_ADDR") {
			t.Errorf("got %v, want a listen error that names RELAY_METRICS_ADDR", err)
		}
	})
}
