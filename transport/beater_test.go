package transport_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/transport"
)

// TestBeaterHeartbeats publishes to a stream of each transport while the
// heartbeats come every 5 ms, then lets it idle: every event arrives whole
// and in order among the heartbeats (on WebSocket, gorilla's reader fails
// on any frame cut by another), the heartbeats keep coming when idle, and,
// on Linux, where relay writes to the socket itself, the idle stream's
// heartbeats are the beater's own: none is handed to the stream's goroutine.
func TestBeaterHeartbeats(t *testing.T) {
	const events, idleBeats = 300, 20
	t.Run("sse", func(t *testing.T) {
		r := startRelay(t, withConfig(func(c *transport.Config) { c.Heartbeat = 5 * time.Millisecond }))
		s, resp := openSSE(t, r.url+"/events/projects/1/tickets?token="+alice(t), nil)
		if s == nil {
			t.Fatalf("got status %d, want 200", resp.StatusCode)
		}
		defer publishing(t, r, events)()
		seen := 0
		for seen < events {
			f := s.frame(t)
			if f.Comment || f.Event == "connection_established" || f.Retry != "" {
				continue
			}
			if !eventN(f.Data, seen) {
				t.Fatalf("event %d: got %q, want the data %d", seen, f.Data, seen)
			}
			seen++
		}
		idle(t, r.srv, func() {
			for comments := 0; comments < idleBeats; {
				if f := s.frame(t); f.Comment {
					comments++
				} else {
					t.Fatalf("idle stream: got %+v, want only heartbeats", f)
				}
			}
		})
	})
	t.Run("websocket", func(t *testing.T) {
		r := startRelay(t, withConfig(func(c *transport.Config) { c.Heartbeat = 5 * time.Millisecond }))
		c, _, err := wsDial(t, r.url+"/ws/projects/1/tickets/?token="+alice(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		pings := make(chan struct{}, 1000)
		c.SetPingHandler(func(data string) error {
			pings <- struct{}{}
			return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		msgs := make(chan string, events+10)
		go func() {
			defer close(msgs)
			for {
				_, m, err := c.ReadMessage()
				if err != nil {
					return
				}
				msgs <- string(m)
			}
		}()
		defer publishing(t, r, events)()
		for seen := 0; seen < events; {
			m, ok := <-msgs
			if !ok {
				t.Fatalf("the stream ended after %d events, want %d", seen, events)
			}
			if strings.Contains(m, `"connection_established"`) {
				continue
			}
			if !eventN(m, seen) {
				t.Fatalf("event %d: got %q, want the data %d", seen, m, seen)
			}
			seen++
		}
		idle(t, r.srv, func() {
			for range idleBeats {
				select {
				case <-pings:
				case m := <-msgs:
					t.Fatalf("idle stream: got %q, want only pings", m)
				case <-time.After(5 * time.Second):
					t.Fatal("no ping for 5 s")
				}
			}
		})
	})
}

// publishing publishes n events to project_1_tickets, their data 0 to
// n-1, from a goroutine; the function it returns waits for it.
func publishing(t *testing.T, r *relay, n int) (wait func()) {
	done := make(chan struct{})
	tok := publisher(t)
	go func() {
		defer close(done)
		for i := range n {
			status, out, err := r.publishErr(tok, fmt.Sprintf(`{"channel":"project_1_tickets","type":"n","data":%d}`, i))
			if err != nil || status != http.StatusOK {
				t.Errorf("publish %d: %d %v %v", i, status, out, err)
				return
			}
		}
	}()
	return func() { <-done }
}

// eventN reports whether msg is an event whose data is n.
func eventN(msg string, n int) bool {
	var ev struct{ Data *int }
	return json.Unmarshal([]byte(msg), &ev) == nil && ev.Data != nil && *ev.Data == n
}

// idle runs wait, for the heartbeats of an idle stream, and checks that on
// Linux the beater wrote every one of them.
func idle(t *testing.T, srv *transport.Server, wait func()) {
	t.Helper()
	before := transport.HandedBeats(srv)
	wait()
	if handed := transport.HandedBeats(srv) - before; runtime.GOOS == "linux" && handed > 0 {
		t.Errorf("%d heartbeats of an idle stream were handed to its goroutine, want 0 (the beater writes them)", handed)
	}
}

// TestBeaterHandsOverWithoutASocket opens SSE streams where relay does not
// hold the socket, behind TLS it terminates, over HTTP/2 (through net/http)
// and HTTP/1.1 (hijacked, but a *tls.Conn): the beater cannot write there,
// and every heartbeat is handed to the stream's goroutine, which sends it.
func TestBeaterHandsOverWithoutASocket(t *testing.T) {
	for _, tc := range []struct {
		name  string
		http2 bool
	}{{"http2", true}, {"http1 over tls", false}} {
		t.Run(tc.name, func(t *testing.T) {
			_, proc := buildRelay(t, withConfig(func(c *transport.Config) { c.Heartbeat = 10 * time.Millisecond }))
			ts := httptest.NewUnstartedServer(proc.Server)
			ts.EnableHTTP2 = tc.http2
			ts.StartTLS()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := proc.Server.Shutdown(ctx); err != nil {
					t.Errorf("shutdown: %v", err)
				}
				ts.CloseClientConnections()
				ts.Close()
				if err := proc.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/events/projects/1/tickets?token="+alice(t), nil)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || (resp.ProtoMajor == 2) != tc.http2 {
				t.Fatalf("got %s over %s, want 200 over HTTP/2: %v", resp.Status, resp.Proto, tc.http2)
			}
			lines := bufio.NewScanner(resp.Body)
			for lines.Scan() && !strings.HasPrefix(lines.Text(), "event: connection_established") {
			}
			before := transport.HandedBeats(proc.Server)
			for beats := 0; beats < 5; {
				if !lines.Scan() {
					t.Fatalf("the stream ended after %d heartbeats: %v", beats, lines.Err())
				}
				if lines.Text() == ":" {
					beats++
				}
			}
			if handed := transport.HandedBeats(proc.Server) - before; handed < 4 {
				t.Errorf("%d heartbeats handed to the stream's goroutine while 5 came, want at least 4: the beater cannot write here", handed)
			}
		})
	}
}
