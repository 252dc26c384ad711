package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/relaydev/relay/auth"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" { // a relay process of its own (startChild)
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		if err := run(ctx, []string{"relay"}, os.Getenv, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) { buildCleanup(); os.Exit(code) }))
}

const testSecret = "app-test-secret-0123456789"

// instance is relay started through run, as main starts it.
type instance struct {
	url    string
	cancel context.CancelFunc
	done   chan error
	out    *syncBuffer
}

// syncBuffer is an io.Writer tests can read while run writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
	ch chan string
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	for line := range strings.Lines(string(p)) {
		select {
		case s.ch <- line:
		default:
		}
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs relay with env (RELAY_ADDR defaults to 127.0.0.1:0) and waits
// for its URL. Cleanup stops it and checks it shut down cleanly.
func start(t *testing.T, env map[string]string, args ...string) *instance {
	t.Helper()
	if _, ok := env["RELAY_ADDR"]; !ok {
		env["RELAY_ADDR"] = "127.0.0.1:0"
	}
	// Room for a loaded CI machine (the race detector, Chromium): stop still
	// fails the test if streams do not end cleanly.
	if _, ok := env["RELAY_SHUTDOWN_TIMEOUT"]; !ok {
		env["RELAY_SHUTDOWN_TIMEOUT"] = "15s"
	}
	ctx, cancel := context.WithCancel(context.Background())
	inst := &instance{cancel: cancel, done: make(chan error, 1), out: &syncBuffer{ch: make(chan string, 64)}}
	getenv := func(k string) string { return env[k] }
	go func() { inst.done <- run(ctx, append([]string{"relay"}, args...), getenv, inst.out, io.Discard) }()
	deadline := time.After(10 * time.Second)
	for inst.url == "" {
		select {
		case line := <-inst.out.ch:
			if _, rest, ok := strings.Cut(line, "listening on "); ok {
				inst.url, _, _ = strings.Cut(rest, " ")
			}
		case err := <-inst.done:
			t.Fatalf("relay exited before listening: %v", err)
		case <-deadline:
			t.Fatal("relay did not print its URL within 10s")
		}
	}
	t.Cleanup(func() { inst.stop(t) })
	return inst
}

// stop cancels run's context, as SIGTERM does, and waits for it.
func (i *instance) stop(t *testing.T) {
	t.Helper()
	i.cancel()
	select {
	case err, ok := <-i.done:
		if ok && err != nil {
			t.Errorf("run returned %v, want nil after a clean shutdown", err)
		}
		if ok {
			close(i.done)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("relay did not shut down within 20s")
	}
}

func mint(t *testing.T, id auth.Identity) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func publish(t *testing.T, url, channel string, n int) string {
	t.Helper()
	body := `{"channel":"` + channel + `","type":"test","data":{"n":` + itoa(n) + `}}`
	req, _ := http.NewRequest(http.MethodPost, url+"/api/publish", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+mint(t, auth.Identity{UserID: "backend", Publish: []string{"*"}}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("publish: got %d, %v", resp.StatusCode, err)
	}
	return out.ID
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// stream is an SSE client that collects data lines and stream-end.
type stream struct {
	data  chan string
	ended chan struct{}
	names chan string // named events (event: lines)
}

func openStream(t *testing.T, url string) *stream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("stream %s: got status %d, want 200", url, resp.StatusCode)
	}
	s := &stream{data: make(chan string, 10000), ended: make(chan struct{}), names: make(chan string, 16)}
	ready := make(chan struct{})
	go func() {
		defer close(s.ended)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		readyOnce := sync.OnceFunc(func() { close(ready) })
		defer readyOnce()
		named := false // this frame is a named (control) event, not a message
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				named = false
			case strings.HasPrefix(line, "event: connection_established"):
				named = true
				readyOnce()
			case strings.HasPrefix(line, "event: "):
				named = true
				s.names <- strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && !named:
				s.data <- strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(func() {
		resp.Body.Close()
		<-s.ended
	})
	<-ready
	return s
}

func (s *stream) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case d := <-s.data:
		var m map[string]any
		if err := json.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("data %q: %v", d, err)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return nil
	}
}
