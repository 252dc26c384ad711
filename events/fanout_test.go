package events_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
)

// countSink counts what a subscription delivers.
type countSink struct{ n int }

func (s *countSink) Event(*events.Event) error { s.n++; return nil }
func (s *countSink) Reset(string) error        { return nil }

// takeAll delivers every event buffered in sub to s and returns how many.
func takeAll(t testing.TB, sub *events.Subscription, s *countSink) int {
	t.Helper()
	before := s.n
	for {
		select {
		case ev := <-sub.Live():
			if err := sub.Deliver(context.Background(), ev, s); err != nil {
				t.Fatal(err)
			}
		default:
			return s.n - before
		}
	}
}

// TestFanOutShards: with thousands of subscribers on one channel (many
// fan-out shards), subscribers removed in any order (emptying some shards,
// thinning others) and added again (refilling them), every subscriber
// still registered gets each event exactly once and a closed one none.
func TestFanOutShards(t *testing.T) {
	const n = 3000
	hub := newHub(t, events.Retention{})
	start := events.Cursor{"c": events.Beginning}
	subs := make([]*events.Subscription, n)
	for i := range subs {
		subs[i] = subscribe(t, hub, []string{"c", "other"}, events.Cursor{"c": events.Beginning, "other": events.Beginning})
	}
	closed := map[int]bool{}
	for i := range subs {
		// every third, and one whole shard's worth in a row
		if i%3 == 0 || (i >= 1000 && i < 1300) {
			subs[i].Close()
			closed[i] = true
		}
	}
	if got, want := hub.Subscribers(), n-len(closed); got != want {
		t.Fatalf("Subscribers after closing %d: got %d, want %d", len(closed), got, want)
	}
	for range 500 { // refill the thinned shards
		subs = append(subs, subscribe(t, hub, []string{"c"}, start))
	}
	sinks := make([]*countSink, len(subs))
	for i, sub := range subs {
		sinks[i] = &countSink{}
		if !closed[i] {
			if err := sub.Replay(context.Background(), sinks[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(t, hub, "c", 3)
	for i, sub := range subs {
		got, want := takeAll(t, sub, sinks[i]), 3
		if closed[i] {
			want = 0
		}
		if got != want {
			t.Fatalf("subscriber %d (closed %v): got %d events, want %d", i, closed[i], got, want)
		}
	}
	for _, sub := range subs {
		sub.Close()
	}
	if got := hub.Subscribers(); got != 0 {
		t.Errorf("Subscribers after closing all: got %d, want 0", got)
	}
	publish(t, hub, "c", 1) // a channel with no subscriber left: nothing to offer, no panic
	for i, sub := range subs {
		if got := takeAll(t, sub, sinks[i]); got != 0 {
			t.Fatalf("subscriber %d got %d events after Close", i, got)
		}
	}
}

// TestFanOutChannelNamedTwice: a subscription whose channels repeat one is
// offered each event of it once.
func TestFanOutChannelNamedTwice(t *testing.T) {
	hub := newHub(t, events.Retention{})
	sub := subscribe(t, hub, []string{"c", "c"}, events.Cursor{"c": events.Beginning})
	publish(t, hub, "c", 1)
	if got := len(sub.Live()); got != 1 {
		t.Errorf("live events buffered: got %d, want 1", got)
	}
	sub.Close()
	if got := hub.Subscribers(); got != 0 {
		t.Errorf("Subscribers after Close: got %d, want 0", got)
	}
}

// BenchmarkSubscribeUnsubscribe subscribes 20,000 streams to one channel,
// delivers one event to each (checked: exactly once), and closes them all
// in the order they came, as a relay shutting down or a proxy dropping its
// connections does. ns/op is the whole round; ns/sub is per subscription.
func BenchmarkSubscribeUnsubscribe(b *testing.B) {
	for _, n := range []int{1000, 20000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			mem := store.NewMemory(events.Retention{})
			defer mem.Close()
			hub := events.NewHub(mem, events.HubOptions{})
			if err := hub.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer hub.Close()
			ctx := context.Background()
			start := events.Cursor{"c": events.Beginning}
			subs := make([]*events.Subscription, n)
			d, _ := events.NewDraft("c", "t", 1)
			for b.Loop() {
				for i := range subs {
					sub, err := hub.Subscribe(ctx, []string{"c"}, start)
					if err != nil {
						b.Fatal(err)
					}
					subs[i] = sub
				}
				if _, err := hub.Publish(ctx, d); err != nil {
					b.Fatal(err)
				}
				for i, sub := range subs {
					if got := len(sub.Live()); got != 1 {
						b.Fatalf("subscriber %d has %d events buffered, want 1", i, got)
					}
				}
				for _, sub := range subs {
					sub.Close()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sub")
		})
	}
}
