package events_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relaydev/relay/events"
)

// newHubWith returns a started hub over a memory log with the given queue
// limits.
func newHubWith(t *testing.T, q events.QueueLimits) *events.Hub {
	t.Helper()
	return newMemoryHub(t, events.Retention{}, events.HubOptions{Queue: q})
}

// publishSized publishes one event to channel whose data is a string of n
// bytes.
func publishSized(t *testing.T, hub *events.Hub, channel string, n int) *events.Event {
	t.Helper()
	d, err := events.NewDraft(channel, "t", strings.Repeat("x", n))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := hub.Publish(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return evs[0]
}

func ended(sub *events.Subscription) bool {
	select {
	case <-sub.Done():
		return true
	default:
		return false
	}
}

// TestSlowConsumer: a subscription that takes nothing is ended, exactly
// once, with ErrSlowConsumer, by the first event that takes its queue past
// its bytes budget, not before; a subscription that keeps up on the same
// channel is not held back.
func TestSlowConsumer(t *testing.T) {
	const budget = 16 << 10
	hub := newHubWith(t, events.QueueLimits{Bytes: budget})
	slow := subscribe(t, hub, []string{"c"}, nil)
	other := subscribe(t, hub, []string{"c"}, nil)
	if err := slow.Replay(context.Background(), &sink{}); err != nil {
		t.Fatal(err)
	}
	held := 0
	for i := 0; ; i++ {
		ev := publishSized(t, hub, "c", 1000)
		held += len(ev.SSE())
		drain(t, other, &sink{}) // the other subscriber keeps up
		if held > budget {
			break
		}
		if ended(slow) {
			t.Fatalf("ended holding %d bytes after %d events, within its %d-byte budget", held, i+1, budget)
		}
		if err := slow.Err(); err != nil {
			t.Fatalf("Err within the budget: got %v, want nil", err)
		}
	}
	if !ended(slow) {
		t.Fatalf("Done still open holding %d bytes, over its %d-byte budget", held, budget)
	}
	if err := slow.Err(); !errors.Is(err, events.ErrSlowConsumer) {
		t.Errorf("Err: got %v, want ErrSlowConsumer", err)
	}
	if n := len(slow.Take(nil)); n != 0 {
		t.Errorf("Take after the end: got %d events, want none (the queue is dropped)", n)
	}
	// Exactly once: more overflows and the hub's Close neither panic nor
	// change the reason.
	publish(t, hub, "c", 10)
	hub.Close()
	if err := slow.Err(); !errors.Is(err, events.ErrSlowConsumer) {
		t.Errorf("Err after more overflows and Close: got %v, want ErrSlowConsumer", err)
	}
	// The reader that kept up was not held back; Close ended it instead.
	if err := other.Err(); !errors.Is(err, events.ErrClosed) {
		t.Errorf("other's Err: got %v, want ErrClosed", err)
	}
}

// TestQueueLargeEvent: an event larger than the whole budget still reaches a
// subscription whose queue is empty; only a second one ends it.
func TestQueueLargeEvent(t *testing.T) {
	hub := newHubWith(t, events.QueueLimits{Bytes: 1024})
	sub := subscribe(t, hub, []string{"c"}, nil)
	publishSized(t, hub, "c", 4096)
	if ended(sub) {
		t.Fatal("ended by one event into an empty queue")
	}
	if n := len(sub.Take(nil)); n != 1 {
		t.Fatalf("Take: got %d events, want 1", n)
	}
	publishSized(t, hub, "c", 4096)
	publishSized(t, hub, "c", 10)
	if err := sub.Err(); !errors.Is(err, events.ErrSlowConsumer) {
		t.Errorf("Err with two events over the budget queued: got %v, want ErrSlowConsumer", err)
	}
}

// TestQueueBurst: far more events than the old 256-event buffer held wait
// for a subscriber that takes them in one batch, in order; a reader that
// keeps taking goes through bursts that add up to many times its budget.
func TestQueueBurst(t *testing.T) {
	ctx := context.Background()
	hub := newHubWith(t, events.QueueLimits{})
	sub := subscribe(t, hub, []string{"c"}, nil)
	s := &sink{}
	if err := sub.Replay(ctx, s); err != nil {
		t.Fatal(err)
	}
	evs := publish(t, hub, "c", 2000)
	select {
	case <-sub.Ready():
	default:
		t.Fatal("Ready has no wake-up with events queued")
	}
	batch := sub.Take(nil)
	if len(batch) != len(evs) {
		t.Fatalf("one Take: got %d events, want the whole burst of %d", len(batch), len(evs))
	}
	for _, ev := range batch {
		if err := sub.Deliver(ctx, ev, s); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(s.got, ids(evs...)) {
		t.Fatalf("delivered %d events out of order or with gaps", len(s.got))
	}

	// Bursts of 512 events of 1 KiB each (half the default budget), 8 of
	// them: the reader takes each burst whole while the next is published.
	s.got = nil
	var want []*events.Event
	var delivered atomic.Int64 // len(s.got), for the publisher to read
	done := make(chan error)
	stop := make(chan struct{})
	go func() {
		var batch []*events.Event
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-sub.Done():
				done <- sub.Err()
				return
			case <-sub.Ready():
				batch = sub.Take(batch)
				for _, ev := range batch {
					if err := sub.Deliver(ctx, ev, s); err != nil {
						done <- err
						return
					}
				}
				delivered.Store(int64(len(s.got)))
			}
		}
	}()
	payload := strings.Repeat("x", 1000)
	for range 8 {
		drafts := make([]events.Draft, 512)
		for i := range drafts {
			drafts[i], _ = events.NewDraft("c", "t", payload)
		}
		burst, err := hub.Publish(ctx, drafts...)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, burst...)
		// Wait (bounded) until the reader has this burst: bursts then
		// follow one another as fast as the reader takes them.
		deadline := time.Now().Add(10 * time.Second)
		for delivered.Load() < int64(len(want)) && !ended(sub) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatalf("the reader that kept taking: %v", err)
	}
	if !slices.Equal(s.got, ids(want...)) {
		t.Fatalf("delivered %d of %d events, or out of order", len(s.got), len(want))
	}
}

// TestQueueAge: an event is never handed over after waiting longer than the
// age budget: a reader that takes too late gets nothing and ErrSlowConsumer;
// one that takes within it is not ended; a reader that takes nothing while
// a trickle arrives is ended by fan-out once the oldest event is too old.
func TestQueueAge(t *testing.T) {
	const age = 5 * time.Second
	t.Run("taken in time", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			hub := newHubWith(t, events.QueueLimits{Age: age})
			sub := subscribe(t, hub, []string{"c"}, nil)
			publish(t, hub, "c", 3)
			time.Sleep(age)
			if n := len(sub.Take(nil)); n != 3 || ended(sub) {
				t.Fatalf("Take after exactly the age: got %d events, ended %v; want 3, not ended", n, ended(sub))
			}
		})
	})
	t.Run("taken late", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			hub := newHubWith(t, events.QueueLimits{Age: age})
			sub := subscribe(t, hub, []string{"c"}, nil)
			publish(t, hub, "c", 1)
			time.Sleep(age / 2)
			publish(t, hub, "c", 1) // the oldest event's wait decides
			time.Sleep(age/2 + time.Millisecond)
			if batch := sub.Take(nil); batch != nil {
				t.Errorf("Take after the age: got %d events, want none", len(batch))
			}
			if err := sub.Err(); !errors.Is(err, events.ErrSlowConsumer) {
				t.Errorf("Err: got %v, want ErrSlowConsumer", err)
			}
		})
	})
	t.Run("stopped reader, trickle", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			hub := newHubWith(t, events.QueueLimits{Age: age})
			sub := subscribe(t, hub, []string{"c"}, nil)
			start := time.Now()
			for i := 0; !ended(sub); i++ {
				if i == 1000 {
					t.Fatalf("not ended after %d events over %v, holding events older than %v", i, time.Since(start), age)
				}
				publish(t, hub, "c", 1)
				time.Sleep(time.Second)
			}
			if waited := time.Since(start); waited <= age {
				t.Errorf("ended after %v, within the %v age budget", waited, age)
			}
			if err := sub.Err(); !errors.Is(err, events.ErrSlowConsumer) {
				t.Errorf("Err: got %v, want ErrSlowConsumer", err)
			}
		})
	})
}

// TestQueueTakeReusesSpare: a small batch handed back to Take becomes the
// queue's storage, so a trickle allocates no slice per event.
func TestQueueTakeReusesSpare(t *testing.T) {
	hub := newHubWith(t, events.QueueLimits{})
	sub := subscribe(t, hub, []string{"c"}, nil)
	publish(t, hub, "c", 1)
	a := sub.Take(nil)
	publish(t, hub, "c", 1)
	b := sub.Take(a) // a becomes the queue's storage
	evs := publish(t, hub, "c", 1)
	c := sub.Take(b)
	if len(c) != 1 || &c[0] != &a[:1][0] {
		t.Errorf("a small spare batch was not reused as the queue's storage")
	}
	if c[0] != evs[0] {
		t.Errorf("Take: got %v, want the event just published", c[0])
	}
}
