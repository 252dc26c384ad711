package transport_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/transport"
)

// wsLive dials path as alice and reads up to connection_established.
func wsLive(t *testing.T, r *relay, path string) *websocket.Conn {
	t.Helper()
	conn, resp, err := wsDial(t, q(r.url+path, "token", alice(t)), nil)
	if err != nil {
		t.Fatalf("dial: %v (status %d)", err, statusOf(resp))
	}
	if m := wsNext(t, conn); m["type"] != "connection_established" {
		t.Fatalf("first message: got %v, want connection_established", m)
	}
	return conn
}

// TestWSClientMessages checks the app-level messages today's clients send:
// ping is answered with pong and its timestamp; malformed or unknown
// messages get an error message and the connection stays open.
func TestWSClientMessages(t *testing.T) {
	r := startRelay(t)
	conn := wsLive(t, r, "/ws/notifications/")
	for _, tc := range []struct {
		name, send string
		want       map[string]any // members the answer must have
	}{
		{"ping", `{"type":"ping","timestamp":123}`, map[string]any{"type": "pong", "timestamp": 123.0}},
		{"ping with a string timestamp", `{"type":"ping","timestamp":"2024-01-01T00:00:00Z"}`,
			map[string]any{"type": "pong", "timestamp": "2024-01-01T00:00:00Z"}},
		{"ping without timestamp", `{"type":"ping"}`, map[string]any{"type": "pong"}},
		{"not JSON", `{"type":`, map[string]any{"type": "error", "error": "bad_request"}},
		{"no type", `{"timestamp":1}`, map[string]any{"type": "error", "error": "bad_request"}},
		{"JSON array", `[1,2]`, map[string]any{"type": "error", "error": "bad_request"}},
		{"unknown type", `{"type":"subscribe"}`, map[string]any{"type": "error", "error": "unknown_type"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(tc.send)); err != nil {
				t.Fatal(err)
			}
			got := wsNext(t, conn)
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("answer %v: got %s=%v, want %v", got, k, got[k], v)
				}
			}
			if got["type"] == "error" && got["message"] == "" {
				t.Errorf("error answer %v has no message", got)
			}
		})
	}
	// Still open: events flow.
	id := r.mustPublish(t, "user_1_notifications", "still open", nil)
	if m := wsNext(t, conn); m["id"] != id {
		t.Errorf("event after errors: got %v, want id %s", m, id)
	}
}

// TestWSTooLargeMessage closes a client that sends more than
// MaxClientMessage with 1009.
func TestWSTooLargeMessage(t *testing.T) {
	r := startRelay(t)
	conn := wsLive(t, r, "/events/notifications")
	big := `{"type":"ping","timestamp":"` + strings.Repeat("x", transport.MaxClientMessage) + `"}`
	if err := conn.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if code, _ := wsCloseCode(t, conn); code != websocket.CloseMessageTooBig {
		t.Errorf("close code: got %d, want %d", code, websocket.CloseMessageTooBig)
	}
}

// TestWSControlPing checks ping/pong control frames both ways: the server
// pings every Heartbeat, and answers a client's ping with a pong.
func TestWSControlPing(t *testing.T) {
	r := startRelay(t, withConfig(func(c *transport.Config) { c.Heartbeat = 30 * time.Millisecond }))
	conn := wsLive(t, r, "/events/projects/1/tickets")

	pings := make(chan string, 16)
	conn.SetPingHandler(func(data string) error {
		select {
		case pings <- data:
		default:
		}
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	pongs := make(chan string, 1)
	conn.SetPongHandler(func(data string) error {
		select {
		case pongs <- data:
		default:
		}
		return nil
	})
	if err := conn.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// Control frames are handled while reading; nothing else is sent, so
	// read until the reads time out.
	readErr := make(chan error, 1)
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(10 * wsPingWindow))
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				readErr <- err
				return
			}
		}
	}()
	deadline := time.After(wait)
	for n := 0; n < 3; {
		select {
		case <-pings:
			n++
		case <-deadline:
			t.Fatalf("got %d server pings within %v, want 3 (one per 30 ms heartbeat)", n, wait)
		}
	}
	select {
	case got := <-pongs:
		if got != "hello" {
			t.Errorf("pong: got %q, want hello", got)
		}
	case <-deadline:
		t.Fatal("no pong for the client's ping")
	}
	conn.Close()
	<-readErr
}

const wsPingWindow = 100 * time.Millisecond

// TestWSDeadPeer drops a client that answers no ping: the server notices
// within two heartbeats and a write timeout.
func TestWSDeadPeer(t *testing.T) {
	r := startRelay(t, withConfig(func(c *transport.Config) {
		c.Heartbeat = 30 * time.Millisecond
		c.WriteTimeout = 50 * time.Millisecond
	}))
	conn := wsLive(t, r, "/events/projects/1/tickets")
	// Answer no ping: read nothing, so gorilla never sends a pong.
	waitFor(t, "the server to drop the silent client", func() bool { return r.hub.Subscribers() == 0 })
	conn.Close()
}

// waitFor polls cond until it holds, failing after wait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWSFrames: relay writes its WebSocket frames itself, several to a
// write: a standard client reads payloads of each length encoding (7-bit,
// 16-bit, 64-bit) whole, live and in a catch-up, and a burst in order, with
// pings answered in between.
func TestWSFrames(t *testing.T) {
	const ch = "project_1_tickets"
	r := startRelay(t)
	conn := wsLive(t, r, "/events/projects/1/tickets")
	var drafts []events.Draft
	for _, n := range []int{1, 100, 1000, 65000, 65470} {
		d, err := events.NewDraft(ch, "sized", strings.Repeat("x", n))
		if err != nil {
			t.Fatal(err)
		}
		drafts = append(drafts, d)
	}
	for i := range 1000 {
		d, _ := events.NewDraft(ch, "burst", i)
		drafts = append(drafts, d)
	}
	evs, err := r.hub.Publish(context.Background(), drafts...)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(evs[4].JSON()); n <= 0xffff {
		t.Fatalf("the largest event is %d bytes: no 64-bit length to test", n)
	}
	if n := len(evs[3].JSON()); n < 126 || n > 0xffff {
		t.Fatalf("event 3 is %d bytes: no 16-bit length to test", n)
	}
	read := func(conn *websocket.Conn, what string) {
		t.Helper()
		for i, ev := range evs {
			if i%100 == 0 { // the client's ping is answered between frames
				if err := conn.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(wait)); err != nil {
					t.Fatal(err)
				}
			}
			_ = conn.SetReadDeadline(time.Now().Add(wait))
			kind, raw, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("%s: read event %d: %v", what, i, err)
			}
			if kind != websocket.TextMessage || string(raw) != string(ev.JSON()) {
				t.Fatalf("%s: event %d: got a %d-byte message of kind %d, want event %s's %d bytes of text", what, i, len(raw), kind, ev.ID(), len(ev.JSON()))
			}
		}
	}
	read(conn, "live")

	// The same events again, as a catch-up from the start.
	conn2, resp, err := wsDial(t, q(r.url+"/events/projects/1/tickets", "token", alice(t), "last_event_id", "0"), nil)
	if err != nil {
		t.Fatalf("dial: %v (status %d)", err, statusOf(resp))
	}
	read(conn2, "catch-up")
	if m := wsNext(t, conn2); m["type"] != "connection_established" {
		t.Fatalf("after the catch-up: got %v, want connection_established", m)
	}
}
