package transport_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/transport"
)

// TestTokenExpiry ends a stream when its token expires, with a distinct
// event (SSE token_expired) or close code (WebSocket 4002); a reconnect with
// a fresh token and the cursor gets what was published meanwhile. Real
// expiry: a token's exp has one-second precision.
// Over both stores.
func TestTokenExpiry(t *testing.T) {
	const ch = "project_1_tickets"
	// Each store's and transport's case waits a second or two for the real
	// expiry: they all wait at once.
	eachStore(t, func(t *testing.T, st string) {
		t.Parallel()
		for _, kind := range kinds {
			t.Run(kind, func(t *testing.T) {
				t.Parallel()
				r := startRelay(t, withStore(st))
				id := auth.Identity{UserID: "1", Projects: []string{"1"}}
				short := token(t, id, 2*time.Second) // expires in 1 to 2 s
				url := r.url + "/events/projects/1/tickets"
				c := mustConnect(t, kind, q(url, "token", short), nil)
				c.live(t)
				first := r.mustPublish(t, ch, "before", nil)
				if m := c.event(t); m.envID() != first {
					t.Fatalf("event: got %s, want %s", m.envID(), first)
				}

				rest := c.ended(t)
				switch kind {
				case sseKind:
					if len(rest) == 0 || rest[len(rest)-1].Kind != "token_expired" {
						t.Fatalf("end of stream: got %v, want a token_expired event", rest)
					}
					if m := rest[len(rest)-1]; m.Env["type"] != "token_expired" || m.Env["message"] == "" {
						t.Errorf("token_expired data: got %v", m.Env)
					}
				case wsKind:
					if c.code != transport.CloseTokenExpired || c.reason == "" {
						t.Errorf("close: got %d %q, want %d with a reason", c.code, c.reason, transport.CloseTokenExpired)
					}
				}
				missed := r.publishN(t, ch, 3)

				// The old token is refused now, as expired.
				old, resp, err := connect(t, kind, q(url, "token", short), nil)
				switch {
				case err != nil:
					t.Fatal(err)
				case kind == sseKind:
					if old != nil || resp.StatusCode != http.StatusUnauthorized || errorJSON(t, resp) != "token_expired" {
						t.Errorf("reconnect with the expired token: got status %d, want 401 token_expired", statusOf(resp))
					}
				default:
					old.ended(t)
					if old.code != transport.CloseUnauthorized {
						t.Errorf("reconnect with the expired token: got close %d, want %d", old.code, transport.CloseUnauthorized)
					}
				}

				fresh := token(t, id, time.Hour)
				c = mustConnect(t, kind, q(url, "token", fresh, "last_event_id", c.resumeCursor()), nil)
				var got []string
				for _, m := range c.live(t) {
					got = append(got, m.envID())
				}
				if !slices.Equal(got, missed) {
					t.Errorf("after a fresh token: got %v, want %v", got, missed)
				}
			})
		}
	})
}

// TestShutdown tells every stream to reconnect: SSE gets a shutdown event
// with a retry hint and the stream ends; WebSocket closes with 1001; and
// Shutdown returns promptly.
func TestShutdown(t *testing.T) {
	r := startRelay(t)
	var clients []*client
	for _, kind := range kinds {
		for _, path := range []string{"/events/notifications", "/events?channel=project_1_tickets&channel=project_2_tickets"} {
			c := mustConnect(t, kind, q(r.url+path, "token", alice(t)), nil)
			c.live(t)
			clients = append(clients, c)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := r.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown took %v, want well under a second", d)
	}
	for _, c := range clients {
		rest := c.ended(t)
		switch c.kind {
		case sseKind:
			if len(rest) != 1 || rest[0].Kind != "shutdown" {
				t.Fatalf("sse: got %v, want one shutdown event then the end", rest)
			}
			if ms, err := strconv.Atoi(rest[0].Retry); err != nil || ms < int(transport.DefaultRetry.Milliseconds()) {
				t.Errorf("sse shutdown retry: got %q, want at least %v in ms", rest[0].Retry, transport.DefaultRetry)
			}
		case wsKind:
			if c.code != transport.CloseGoingAway {
				t.Errorf("ws close: got %d %q, want 1001", c.code, c.reason)
			}
		}
	}
	if err := r.srv.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v, want nil (idempotent)", err)
	}
	resp, err := http.Get(r.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: got %d, want 503", resp.StatusCode)
	}
}

// TestShutdownWhileConnecting shuts down while WebSocket clients keep
// connecting: every client is told to go away, none is left behind, and
// Shutdown waits for the streams it started.
func TestShutdownWhileConnecting(t *testing.T) {
	r := startRelay(t)
	url := q(r.url+"/events/notifications", "token", alice(t))
	stop := make(chan struct{})
	errs := make(chan error, 4)
	var connected atomic.Int64
	for range 4 {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				c, resp, err := connect(t, wsKind, url, nil)
				if err != nil || c == nil {
					errs <- fmt.Errorf("dial: %v (status %d)", err, statusOf(resp))
					return
				}
				connected.Add(1)
				c.close()
			}
		}()
	}
	waitFor(t, "clients to connect", func() bool { return connected.Load() >= 8 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	close(stop)
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// A client arriving after Shutdown is told to go away at once.
	c := mustConnect(t, wsKind, url, nil)
	c.ended(t)
	if c.code != transport.CloseGoingAway {
		t.Errorf("connect after Shutdown: got close %d, want 1001", c.code)
	}
	waitFor(t, "every subscription to end", func() bool { return r.hub.Subscribers() == 0 })
}

// TestStalledClient floods a client that reads nothing: with a short
// WriteTimeout (and a queue that never ends the subscription first) the
// server drops the stream (its handler ends and its subscription is gone)
// instead of holding it, and resets the connection:
// the client, reading again, gets what its receive buffer holds and then
// the reset, not the megabytes still queued at the server and a FIN after
// them (see resetOnClose).
func TestStalledClient(t *testing.T) {
	const ch = "project_1_tickets"
	big := strings.Repeat("x", 32<<10)
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			r := startRelay(t, withMaxEvents(64), withQueue(events.QueueLimits{Bytes: 64 << 20, Age: time.Hour}),
				withConfig(func(c *transport.Config) { c.WriteTimeout = 100 * time.Millisecond }))
			conn := stalledClient(t, r, kind, "/events/projects/1/tickets?token="+alice(t))
			d, err := events.NewDraft(ch, "flood", big)
			if err != nil {
				t.Fatal(err)
			}
			// 12 MiB: more than the socket buffers of both ends hold
			// (tcp_wmem's 4 MiB at most, and the client's receive buffer,
			// which does not grow while it reads nothing), less than the
			// queue: only the write timeout can end the stream.
			for range 400 {
				if _, err := r.hub.Publish(context.Background(), d); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "the stalled client's stream to end", func() bool { return r.hub.Subscribers() == 0 })
			_ = conn.SetReadDeadline(time.Now().Add(wait))
			n, err := io.Copy(io.Discard, conn)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the stalled %s client, reading again, read %d bytes then %v; want a reset", kind, n, err)
			}
			conn.Close()
		})
	}
}

// stalledClient opens a stream on a raw connection, reads its response
// headers, then never reads again. It returns once the server subscribed.
func stalledClient(t *testing.T, r *relay, kind, path string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", r.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: " + r.ts.Listener.Addr().String() + "\r\n"
	if kind == sseKind {
		req += "Accept: text/event-stream\r\n"
	} else {
		req += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{sseKind: 200, wsKind: 101}[kind]; resp.StatusCode != want {
		t.Fatalf("status: got %d, want %d", resp.StatusCode, want)
	}
	waitFor(t, "the subscription", func() bool { return r.hub.Subscribers() == 1 })
	return conn
}

// TestClientGone ends a stream's handler and subscription when its client
// disconnects.
func TestClientGone(t *testing.T) {
	r := startRelay(t)
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			c := mustConnect(t, kind, q(r.url+"/events", "channel", "project_1_tickets", "channel", "project_2_tickets", "token", alice(t)), nil)
			c.live(t)
			if n := r.hub.Subscribers(); n != 1 {
				t.Fatalf("subscribers: got %d, want 1", n)
			}
			c.close()
			waitFor(t, "the subscription to end", func() bool { return r.hub.Subscribers() == 0 })
		})
	}
}
