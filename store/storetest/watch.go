package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
)

// recorder collects deliveries; its methods never block for long.
type recorder struct {
	mu      sync.Mutex
	got     []*events.Event
	resyncs int
	changed chan struct{} // signalled (without blocking) on every call
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) deliver(e *events.Event) {
	r.mu.Lock()
	r.got = append(r.got, e)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) resync() {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
}

func (r *recorder) events() []*events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// waitUntil waits until cond holds for the events delivered so far.
func (r *recorder) waitUntil(t *testing.T, what string, cond func([]*events.Event) bool) []*events.Event {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		evs := r.events()
		if cond(evs) {
			return evs
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("after %v: %s; delivered %d events", waitFor, what, len(evs))
		}
	}
}

// watch starts a Watch recording into r, and listens to channels until the
// test ends (a log may deliver only the channels listened to).
func watch(t *testing.T, log events.Log, r *recorder, channels ...string) (stop func()) {
	t.Helper()
	stop, err := log.Watch(context.Background(), r.deliver, r.resync)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(stop)
	listen(t, log, r, channels...)
	return stop
}

// listen makes log deliver channels until the test ends; a channel's
// resyncs count in r.
func listen(t *testing.T, log events.Log, r *recorder, channels ...string) {
	t.Helper()
	for _, ch := range channels {
		release, err := log.Listen(context.Background(), ch, r.resync)
		if err != nil {
			t.Fatalf("Listen(%s): %v", ch, err)
		}
		t.Cleanup(release)
	}
}

func testWatchOrder(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	r := newRecorder()
	watch(t, log, r, "x", "y")
	var appended []*events.Event
	appended = append(appended, mustAppend(t, log, draft("x", 1), draft("y", 1), draft("x", 2))...)
	appended = append(appended, mustAppend(t, log, drafts("y", 2, 6)...)...)
	appended = append(appended, mustAppend(t, log, drafts("x", 3, 8)...)...)
	got := r.waitUntil(t, "not every appended event was delivered", func(evs []*events.Event) bool {
		return len(evs) >= len(appended)
	})
	if len(got) != len(appended) {
		t.Errorf("delivered %d events, want %d (each exactly once)", len(got), len(appended))
	}
	for _, ch := range []string{"x", "y"} {
		var want, have []*events.Event
		for _, e := range appended {
			if e.Channel == ch {
				want = append(want, e)
			}
		}
		for _, e := range got {
			if e.Channel == ch {
				have = append(have, e)
			}
		}
		if len(have) != len(want) {
			t.Errorf("channel %s: delivered %d events, want %d", ch, len(have), len(want))
			continue
		}
		for i := range want {
			sameEvent(t, fmt.Sprintf("channel %s delivery %d", ch, i), have[i], want[i])
		}
	}
}

// testWatchStop: after stop returns, deliver is not called again; a second
// watcher, still running, is the barrier that shows later events went by.
func testWatchStop(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	stopped, barrier := newRecorder(), newRecorder()
	stop := watch(t, log, stopped, "s")
	watch(t, log, barrier)
	first := mustAppend(t, log, draft("s", 1))[0]
	stopped.waitUntil(t, "the first event was not delivered", func(evs []*events.Event) bool { return len(evs) == 1 })
	stop()
	stop() // idempotent
	last := mustAppend(t, log, draft("s", 2))[0]
	barrier.waitUntil(t, "the running watcher missed the event", func(evs []*events.Event) bool {
		return len(evs) == 2 && evs[1].Pos == last.Pos
	})
	if got := stopped.events(); len(got) != 1 || got[0].Pos != first.Pos {
		t.Errorf("stopped watcher got %d events, want only the one before stop", len(got))
	}
}
