package transport_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/transport"
)

// receiver is an app's webhook endpoint: it fails the first failFirst
// requests with 503, then records each signed body.
type receiver struct {
	*httptest.Server
	mu        sync.Mutex
	failFirst int
	attempts  int
	got       chan map[string]any
}

func newReceiver(t *testing.T, secretKey string, failFirst int) *receiver {
	rc := &receiver{failFirst: failFirst, got: make(chan map[string]any, 16)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.attempts++
		fail := rc.attempts <= rc.failFirst
		rc.mu.Unlock()
		if r.Header.Get(transport.HeaderSignature) != transport.Sign(secretKey, body) {
			t.Errorf("signature %q does not match the body", r.Header.Get(transport.HeaderSignature))
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("webhook body %q: %v", body, err)
		}
		rc.got <- m
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case m := <-rc.got:
		return m
	case <-time.After(wait):
		t.Fatalf("no webhook within %v", wait)
		return nil
	}
}

func TestWebhookMarkRead(t *testing.T) {
	const key = "whsec-0123456789abcdef"
	rc := newReceiver(t, key, 2) // two failures: delivered on the third try
	r := startRelay(t, withConfig(func(c *transport.Config) {
		c.Webhook = transport.Webhook{URL: rc.URL, Secret: key, Backoff: 20 * time.Millisecond}
	}))

	status, _ := r.post(t, alice(t), "/api/notifications/read", `{"ids":["uuid-1","uuid-2"]}`)
	if status >= 500 {
		t.Fatalf("mark read: %d", status)
	}
	m := rc.next(t)
	ts, _ := m["ts"].(string)
	if _, err := time.Parse(time.RFC3339, ts); err != nil || m["type"] != "mark_read" || m["user_id"] != "1" || m["all"] != false {
		t.Fatalf("webhook %v, want mark_read of user 1 with an RFC 3339 ts", m)
	}
	if ids, _ := m["ids"].([]any); len(ids) != 2 || ids[0] != "uuid-1" {
		t.Errorf("ids %v, want [uuid-1 uuid-2]", m["ids"])
	}

	// From a WebSocket, while the stream goes on.
	conn, _, err := websocket.DefaultDialer.Dial(wsURL(r.url)+"/ws/notifications/?token="+alice(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteJSON(map[string]any{"type": "mark_read", "id": "uuid-3"}); err != nil {
		t.Fatal(err)
	}
	if m := rc.next(t); m["ids"].([]any)[0] != "uuid-3" {
		t.Errorf("ws webhook %v, want ids [uuid-3]", m)
	}
}

// TestWebhookNeverBlocks: an app that never answers slows no client.
func TestWebhookNeverBlocks(t *testing.T) {
	stuck := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(app.Close)
	r := startRelay(t, withConfig(func(c *transport.Config) {
		c.Webhook = transport.Webhook{URL: app.URL, Secret: "whsec-0123456789abcdef", Timeout: time.Minute}
	}))
	t.Cleanup(func() { close(stuck) }) // first: the relay's shutdown then delivers the queue at once
	start := time.Now()
	for range 50 {
		if status, _ := r.post(t, alice(t), "/api/notifications/read", `{"all":true}`); status != http.StatusOK {
			t.Fatalf("mark read: %d", status)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("50 mark_reads took %v with a stuck webhook, want them unaffected", took)
	}
}

// TestWebhookDrainedAtShutdown: actions still queued when the server shuts
// down are delivered before Shutdown returns, within its deadline.
func TestWebhookDrainedAtShutdown(t *testing.T) {
	const key = "whsec-0123456789abcdef"
	rc := newReceiver(t, key, 0)
	gate := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-gate // the app is slow: the queue fills behind the first action
		rc.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	r := startRelay(t, withConfig(func(c *transport.Config) {
		c.Webhook = transport.Webhook{URL: slow.URL, Secret: key, Timeout: 10 * time.Second}
	}))
	const n = 5
	for i := range n {
		body, _ := json.Marshal(map[string]any{"ids": []string{string(rune('a' + i))}})
		if status, _ := r.post(t, alice(t), "/api/notifications/read", string(body)); status >= 500 {
			t.Fatalf("mark read: %d", status)
		}
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- r.srv.Shutdown(ctx)
	}()
	close(gate)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i := range n {
		select {
		case m := <-rc.got:
			if ids := m["ids"].([]any); ids[0] != string(rune('a'+i)) {
				t.Errorf("webhook %d: ids %v, want [%c] (in order)", i, ids, 'a'+i)
			}
		default:
			t.Fatalf("%d of %d actions delivered by the time Shutdown returned", i, n)
		}
	}
}
