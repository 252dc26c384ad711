package transport_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/transport"
)

// gatedLog is a log whose reads wait at a gate, and may fail: it holds a
// stream in its catch-up while the test publishes, or breaks the store.
type gatedLog struct {
	events.Log
	entered chan struct{} // receives once per Read that reaches the gate
	gate    chan struct{} // closed to let reads through
	readErr error         // returned by every Read when set
	pingErr error         // returned by Ping
}

func newGatedLog(readErr error) *gatedLog {
	return &gatedLog{entered: make(chan struct{}, 64), gate: make(chan struct{}), readErr: readErr}
}

func (g *gatedLog) wrap(l events.Log) events.Log { g.Log = l; return g }

func (g *gatedLog) Read(ctx context.Context, ch string, after events.Position, limit int) ([]*events.Event, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if g.readErr != nil {
		return nil, g.readErr
	}
	return g.Log.Read(ctx, ch, after, limit)
}

func (g *gatedLog) Ping(context.Context) error { return g.pingErr }

// overflowDrafts are events on ch that add up to more than a subscription's
// default queue budget (events.DefaultQueueBytes): published while a stream
// takes nothing, they end it as a slow consumer.
func overflowDrafts(ch string) []events.Draft {
	const size = 16 << 10
	drafts := make([]events.Draft, events.DefaultQueueBytes/size+2)
	for i := range drafts {
		drafts[i], _ = events.NewDraft(ch, "flood", strings.Repeat("x", size))
	}
	return drafts
}

// TestSlowConsumerStream overflows a stream's live buffer while it is held
// in its catch-up: the stream ends with a reason (SSE slow_consumer event,
// WebSocket close 4008), logged as a relay.disconnect warning with its user,
// transport and duration, and the client resumes from its cursor exactly. Over both
// stores.
func TestSlowConsumerStream(t *testing.T) {
	const ch = "project_1_tickets"
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		g := newGatedLog(nil)
		var logged logBuffer
		r := startRelay(t, withStore(st), withLog(g.wrap), withLogger(slog.New(slog.NewTextHandler(&logged, nil))))
		url := q(r.url+"/events/projects/1/tickets", "token", alice(t))
		c := mustConnect(t, kind, q(url, "last_event_id", "0"), nil)
		<-g.entered // the catch-up is reading: nothing drains the buffer
		drafts := overflowDrafts(ch)
		// Redis hands events to the hub over Pub/Sub, after Publish returns:
		// open the gate only once the hub has offered them all.
		await := r.delivered(t, ch, len(drafts))
		if _, err := r.hub.Publish(context.Background(), drafts...); err != nil {
			t.Fatal(err)
		}
		await()
		close(g.gate)

		var got []uint64
		rest := c.ended(t)
		for _, m := range rest {
			if m.Kind == "message" {
				got = append(got, seqOf(t, m.envID()))
			}
		}
		if !slices.Equal(got, seqRange(1, uint64(len(got)))) {
			t.Errorf("before the end: got seqs %v, want a run from 1", got)
		}
		switch kind {
		case sseKind:
			if last := rest[len(rest)-1]; last.Kind != "slow_consumer" || last.Env["message"] == "" {
				t.Errorf("last message: got %q %v, want a slow_consumer event", last.Kind, last.Env)
			}
		case wsKind:
			if c.code != transport.CloseSlowConsumer || c.reason == "" {
				t.Errorf("close: got %d %q, want %d with a reason", c.code, c.reason, transport.CloseSlowConsumer)
			}
		}

		// Logged before the ending is written, so before the client read it.
		transportName := map[string]string{sseKind: "sse", wsKind: "websocket"}[kind]
		if lines := logged.lines("level=WARN", "msg=relay.disconnect", "reason=slow_consumer", "user=1", "transport="+transportName, "duration_ms="); len(lines) != 1 {
			t.Errorf("slow consumer log lines: got %d, want 1; log:\n%s", len(lines), strings.Join(logged.lines(""), "\n"))
		}

		cursor := c.resumeCursor()
		if len(got) == 0 {
			cursor = "0"
		}
		r.publishN(t, ch, 5) // while the client is away
		c = mustConnect(t, kind, q(url, "last_event_id", cursor), nil)
		resumed := seqs(t, c.live(t))
		if want := seqRange(uint64(len(got))+1, uint64(len(drafts)+5)); !slices.Equal(resumed, want) {
			t.Errorf("resumed: got %d seqs %v…, want %d from %d", len(resumed), head(resumed), len(want), len(got)+1)
		}
	})
}

// TestStoreFailure: a store that fails a read ends the stream (WebSocket
// with 1011) instead of sending a gap.
func TestStoreFailure(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			g := newGatedLog(errors.New("store down"))
			close(g.gate)
			r := startRelay(t, withLog(g.wrap))
			r.mustPublish(t, "project_1_tickets", "x", nil)
			c := mustConnect(t, kind, q(r.url+"/events/projects/1/tickets", "token", alice(t), "last_event_id", "0"), nil)
			told := false
			for _, m := range c.ended(t) {
				if m.Kind == "message" || m.Kind == "cursor" || m.Kind == "connection_established" {
					t.Errorf("got %q %v, want the stream to end without going live", m.Kind, m.Env)
				}
				told = told || m.Kind == "error"
			}
			if kind == sseKind && !told {
				t.Error("SSE stream ended without an error event")
			}
			if kind == wsKind && c.code != transport.CloseInternal {
				t.Errorf("close: got %d %q, want 1011", c.code, c.reason)
			}
		})
	}
}

// TestReadyzStoreDown: a store that does not answer keeps the process in
// rotation (every relay shares it: a blip must not take them all out) and is
// reported in the body.
func TestReadyzStoreDown(t *testing.T) {
	for _, c := range []struct {
		name    string
		pingErr error
		store   string
	}{
		{"store answers", nil, "ok"},
		{"store down", errors.New("connection refused"), "unavailable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGatedLog(nil)
			g.pingErr = c.pingErr
			r := startRelay(t, withLog(g.wrap))
			resp, err := http.Get(r.url + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]string
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != 200 || body["status"] != "ready" || body["store"] != c.store {
				t.Errorf("got %d %v, want 200 ready with store %q", resp.StatusCode, body, c.store)
			}
		})
	}
}

func head(s []uint64) []uint64 { return s[:min(len(s), 5)] }
