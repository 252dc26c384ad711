package transport_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/transport"
)

// headGate is a log whose Head waits until the gate is opened, or until
// hold has passed: a store slow to answer where a stream's start position
// is taken.
type headGate struct {
	events.Log
	hold time.Duration
	gate chan struct{}
	once sync.Once
}

func (g *headGate) wrap(l events.Log) events.Log { g.Log = l; return g }

func (g *headGate) open() { g.once.Do(func() { close(g.gate) }) }

func (g *headGate) Head(ctx context.Context, ch string) (events.Position, error) {
	select {
	case <-g.gate:
	case <-time.After(g.hold):
	case <-ctx.Done():
		return events.Position{}, ctx.Err()
	}
	return g.Log.Head(ctx, ch)
}

// TestLiveOnlyConnectRace: once a client without a cursor has its 200 (SSE)
// or 101 (WebSocket), every event published afterwards reaches it. The
// test publishes the moment the answer arrives, and only then lets the
// store answer Head: a relay that takes the stream's start position after
// answering counts the event in it and drops it as already sent; one that
// takes it before answering has waited out the hold already.
// Over both stores.
func TestLiveOnlyConnectRace(t *testing.T) {
	const ch = "project_1_tickets"
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		g := &headGate{hold: 300 * time.Millisecond, gate: make(chan struct{})}
		r := startRelay(t, withStore(st), withLog(g.wrap))
		old := r.publishN(t, ch, 2) // live only: these must not be sent
		c := mustConnect(t, kind, q(r.url+"/events/projects/1/tickets", "token", alice(t)), nil)
		id := r.mustPublish(t, ch, "right after the answer", nil)
		g.open()
		if h := c.live(t); len(h) != 0 {
			t.Errorf("history of a live-only stream: got %v, want none", h)
		}
		if got := c.resumeCursor(); got != old[1] {
			t.Errorf("cursor when live: got %q, want the head %q taken before the answer", got, old[1])
		}
		m := c.event(t)
		if m.envID() != id {
			t.Errorf("first event: got %v, want %s, published right after the answer", m.Env, id)
		}
	})
}

// failingHead is a log whose Head fails with err, or when err is nil never
// answers (until the caller's context ends).
type failingHead struct {
	events.Log
	err error
}

func (f *failingHead) Head(ctx context.Context, _ string) (events.Position, error) {
	if f.err != nil {
		return events.Position{}, f.err
	}
	<-ctx.Done()
	return events.Position{}, ctx.Err()
}

// TestConnectStoreUnavailable: when the store cannot give a stream its start
// position, SSE is refused with 503 store_unavailable and WebSocket is
// upgraded and closed with 1013 and a reason; a store that does not answer
// at all is given up on after StoreTimeout.
// Over both stores.
func TestConnectStoreUnavailable(t *testing.T) {
	const timeout = 200 * time.Millisecond
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"store unavailable", fmt.Errorf("redis: connection refused: %w", events.ErrUnavailable)},
		{"store does not answer", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachStoreAndKind(t, func(t *testing.T, st, kind string) {
				wrap := func(l events.Log) events.Log { return &failingHead{Log: l, err: tc.err} }
				r := startRelay(t, withStore(st), withLog(wrap), withConfig(func(c *transport.Config) { c.StoreTimeout = timeout }))
				url := q(r.url+"/events/projects/1/tickets", "token", alice(t))
				start := time.Now()
				base := r.hub.Subscribers() // relay's own (the control channel over Redis)
				c, resp, err := connect(t, kind, url, nil)
				if err != nil {
					t.Fatal(err)
				}
				switch kind {
				case sseKind:
					if c != nil {
						t.Fatal("got a stream, want a refusal")
					}
					if resp.StatusCode != http.StatusServiceUnavailable {
						t.Errorf("status: got %d, want 503", resp.StatusCode)
					}
					if code := errorJSON(t, resp); code != "store_unavailable" {
						t.Errorf("error: got %q, want store_unavailable", code)
					}
				case wsKind:
					if c == nil {
						t.Fatalf("got HTTP %d, want an upgrade and a close", resp.StatusCode)
					}
					c.ended(t)
					if c.code != transport.CloseTryAgain || c.reason == "" {
						t.Errorf("close: got %d %q, want %d with a reason", c.code, c.reason, transport.CloseTryAgain)
					}
				}
				if d := time.Since(start); d > timeout+2*time.Second {
					t.Errorf("refused after %v, want within StoreTimeout (%v) and a margin", d, timeout)
				}
				if n := r.hub.Subscribers() - base; n != 0 {
					t.Errorf("subscriptions left after the refusal: %d, want 0", n)
				}
			})
		})
	}
}
