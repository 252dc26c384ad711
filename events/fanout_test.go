package events_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
)

// buffered takes every event waiting in sub's live queue, as the fan-out
// left them: no Deliver, so no gap filling from the log can hide a miss.
func buffered(t *testing.T, sub *events.Subscription) []*events.Event {
	t.Helper()
	got := slices.Clone(sub.Take(nil))
	if err := sub.Err(); err != nil && !errors.Is(err, events.ErrClosed) {
		t.Fatalf("subscription ended: %v", err)
	}
	return got
}

// newFanOutHub is a hub for tests that read the queues only at their end:
// under -race on a loaded machine that can be more than the queue's default
// age budget after the first event, which would end them as slow consumers.
func newFanOutHub(t *testing.T) *events.Hub {
	return newHubWith(t, events.QueueLimits{Age: time.Hour})
}

// TestFanOutShards: with thousands of subscribers on one channel (many
// fan-out shards), subscribers removed in any order (emptying some shards,
// thinning others) and added again (refilling them), every subscriber
// still registered gets each event exactly once and a closed one none.
func TestFanOutShards(t *testing.T) {
	const n = 3000
	hub := newFanOutHub(t)
	start := events.Cursor{"c": events.Beginning}
	subs := make([]*events.Subscription, n)
	for i := range subs {
		subs[i] = subscribe(t, hub, []string{"c", "other"}, events.Cursor{"c": events.Beginning, "other": events.Beginning})
	}
	closed := map[int]bool{}
	for i := range subs {
		// every third, and a shard's worth in a row but one, which is left
		// alone in its shard
		if i%3 == 0 || (i >= 1000 && i < 1300 && i != 1100) {
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
	published := publish(t, hub, "c", 3)
	for i, sub := range subs {
		want := ids(published...)
		if closed[i] {
			want = nil
		}
		if got := ids(buffered(t, sub)...); !slices.Equal(got, want) {
			t.Fatalf("subscriber %d (closed %v): got %v, want %v", i, closed[i], got, want)
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
		if got := buffered(t, sub); len(got) != 0 {
			t.Fatalf("subscriber %d got %d events after Close", i, len(got))
		}
	}
}

// TestFanOutChurn: while other subscriptions of the channel come and go
// (shards filled, copied and dropped under the fan-out), a publisher's
// events reach every steady subscriber exactly once, in order. Run with
// -race, it also checks that the lock-free readers never see a shard being
// written.
func TestFanOutChurn(t *testing.T) {
	const steady, churners, evs = 600, 4, 200
	hub := newFanOutHub(t)
	start := events.Cursor{"c": events.Beginning}
	subs := make([]*events.Subscription, steady)
	for i := range subs {
		subs[i] = subscribe(t, hub, []string{"c"}, start)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range churners {
		wg.Go(func() {
			var mine []*events.Subscription
			for k := 0; ; k++ {
				select {
				case <-stop:
					for _, s := range mine {
						s.Close()
					}
					return
				default:
				}
				s, err := hub.Subscribe(context.Background(), []string{"c"}, start)
				if err != nil {
					t.Error(err)
					return
				}
				mine = append(mine, s)
				if k%3 != 0 { // net growth: shards fill up and are added, as well as thinned and dropped
					mine[0].Close()
					mine = mine[1:]
				}
			}
		})
	}
	var published []*events.Event
	for range evs { // one at a time, so the churn runs between fan-outs
		published = append(published, publish(t, hub, "c", 1)...)
	}
	close(stop)
	wg.Wait()
	want := ids(published...)
	for i, sub := range subs {
		if got := ids(buffered(t, sub)...); !slices.Equal(got, want) {
			t.Fatalf("steady subscriber %d: got %d events, want the %d published, in order", i, len(got), len(want))
		}
	}
	if got := hub.Subscribers(); got != steady {
		t.Errorf("Subscribers after the churn: got %d, want %d", got, steady)
	}
}

// TestFanOutChannelNamedTwice: a subscription whose channels repeat one is
// offered each event of it once.
func TestFanOutChannelNamedTwice(t *testing.T) {
	hub := newFanOutHub(t)
	sub := subscribe(t, hub, []string{"c", "c"}, events.Cursor{"c": events.Beginning})
	publish(t, hub, "c", 1)
	if got := len(buffered(t, sub)); got != 1 {
		t.Errorf("live events queued: got %d, want 1", got)
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
					if got := len(sub.Take(nil)); got != 1 {
						b.Fatalf("subscriber %d has %d events queued, want 1", i, got)
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
