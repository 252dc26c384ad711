package events

import "testing"

// TestFanOutOfferAllocates: the per-event path over many shards allocates
// nothing.
func TestFanOutOfferAllocates(t *testing.T) {
	f := newFanout()
	for range 3 * shardSize {
		f.add(newSubscription(nil, []string{"c"}, nil))
	}
	ev := &Event{Channel: "c"}
	if n := testing.AllocsPerRun(100, func() { f.offer(ev) }); n != 0 {
		t.Errorf("offer to %d subscribers: %v allocations, want 0", f.len(), n)
	}
}
