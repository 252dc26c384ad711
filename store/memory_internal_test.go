package store

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store/storetest"
)

// TestMemoryKeysPruned: a channel holds only its last window's idempotency
// keys, and none once a window passes without any.
func TestMemoryKeysPruned(t *testing.T) {
	const window = time.Minute
	m := NewMemoryWith(MemoryOptions{IdempotencyWindow: window})
	defer m.Close()
	now := time.Unix(1_700_000_000, 0)
	m.now = func() time.Time { return now }
	appendKey := func(key string) {
		t.Helper()
		if _, err := m.Append(context.Background(), []events.Draft{{Channel: "c", Type: "t", IdempotencyKey: key}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1000 {
		appendKey(fmt.Sprintf("k%d", i))
	}
	c := m.channel("c", false)
	if n := len(c.seen.byKey); n != 1000 {
		t.Fatalf("got %d keys remembered, want 1000", n)
	}
	now = now.Add(window / 2)
	appendKey("late")
	now = now.Add(window / 2) // the first 1000 are a window old, "late" is not
	appendKey("later")
	if got, want := len(c.seen.byKey), 2; got != want || len(c.seen.order) != want {
		t.Errorf("got %d keys (%d queued) after the window, want %d", len(c.seen.byKey), len(c.seen.order), want)
	}
	now = now.Add(window)
	m.sweep() // no append: the janitor prunes
	if c.seen.byKey != nil || c.seen.order != nil {
		t.Errorf("got %d keys a window after the last, want none held", len(c.seen.byKey))
	}
}

// TestMemoryNoState: reading a memory log keeps no channel entry.
func TestMemoryNoState(t *testing.T) {
	t.Parallel()
	storetest.RunNoState(t, func(t *testing.T) (events.Log, storetest.State) {
		m := NewMemory(events.Retention{})
		t.Cleanup(func() { _ = m.Close() })
		return m, func(*testing.T) []string {
			m.mu.RLock()
			defer m.mu.RUnlock()
			return slices.Collect(maps.Keys(m.chans))
		}
	})
}
