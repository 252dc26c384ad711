package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
)

// RunBroadcast checks a log's events.Broadcaster: an ephemeral event reaches
// Watch as it was sent and is never stored. newLog returns a fresh log that
// implements events.Broadcaster and is closed in t.Cleanup.
func RunBroadcast(t *testing.T, newLog func(t *testing.T) events.Log) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, events.Log, events.Broadcaster)
	}{
		{"DeliveredNotStored", testBroadcastDelivered},
		{"RefusesStoredEvent", testBroadcastRefusesStored},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := newLog(t)
			b, ok := log.(events.Broadcaster)
			if !ok {
				t.Fatalf("%T does not implement events.Broadcaster", log)
			}
			tc.test(t, log, b)
		})
	}
}

func testBroadcastDelivered(t *testing.T, log events.Log, b events.Broadcaster) {
	ctx := context.Background()
	r := newRecorder()
	watch(t, log, r, "p", "q")
	stored := mustAppend(t, log, draft("p", 1))[0]
	head := mustHead(t, log, "p")
	when := time.UnixMilli(1_700_000_000_123) // whole milliseconds: Redis carries ms
	d := events.Draft{Channel: "p", Type: "typing", Fields: []byte(`"type":"typing","data":{"user_id":"7","ticket_id":5}`)}
	if err := b.Broadcast(ctx, events.NewEphemeral(d, when)); err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	got := r.waitUntil(t, "the broadcast event was not delivered", func(evs []*events.Event) bool {
		return len(evs) >= 2
	})
	if len(got) != 2 {
		t.Fatalf("delivered %d events, want the stored one and the broadcast one", len(got))
	}
	sameEvent(t, "stored event", got[0], stored)
	e := got[1]
	if !e.Ephemeral || e.Channel != d.Channel || e.Type != d.Type || !bytes.Equal(e.Fields, d.Fields) || !e.Time.Equal(when) {
		t.Errorf("delivered ephemeral=%v %s %q %q at %v, want ephemeral=true %s %q %q at %v",
			e.Ephemeral, e.Channel, e.Type, e.Fields, e.Time, d.Channel, d.Type, d.Fields, when)
	}
	if e.Pos != (events.Position{}) || e.ID() != "" {
		t.Errorf("ephemeral event has position %v, id %q; want none", e.Pos, e.ID())
	}
	if h := mustHead(t, log, "p"); h != head {
		t.Errorf("Head after Broadcast = %v, want %v unchanged", h, head)
	}
	wantSeqs(t, mustRead(t, log, "p", events.Beginning, 100), "p", head.Epoch, 1, 1)
	// A channel that only ever had broadcasts has no history.
	if err := b.Broadcast(ctx, events.NewEphemeral(events.Draft{Channel: "q", Type: "viewing"}, when)); err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	r.waitUntil(t, "the second broadcast was not delivered", func(evs []*events.Event) bool { return len(evs) >= 3 })
	if evs := mustRead(t, log, "q", events.Beginning, 100); len(evs) != 0 {
		t.Errorf("Read of a broadcast-only channel = %d events, want none", len(evs))
	}
	if h := mustHead(t, log, "q"); h.Seq != 0 {
		t.Errorf("Head of a broadcast-only channel = %v, want seq 0", h)
	}
}

func testBroadcastRefusesStored(t *testing.T, _ events.Log, b events.Broadcaster) {
	ev := events.NewEvent(draft("p", 1), events.Position{Epoch: "e", Seq: 1}, time.Now())
	if err := b.Broadcast(context.Background(), ev); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("Broadcast(a stored event) = %v, want ErrInvalid", err)
	}
}
