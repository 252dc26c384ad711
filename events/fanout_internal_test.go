package events

import "testing"

// TestFanOutOfferAllocates: the per-event path over many shards allocates
// nothing, queueing included, once each queue has its storage (an owner
// taking its events hands the storage back, as a stream does).
func TestFanOutOfferAllocates(t *testing.T) {
	h := NewHub(nil, HubOptions{})
	f := newFanout()
	var subs []*Subscription
	for range 3 * shardSize {
		s := newSubscription(h, []string{"c"}, nil)
		subs = append(subs, s)
		f.add(s)
	}
	spare := make([][]*Event, len(subs))
	ev := &Event{Channel: "c"}
	round := func() {
		f.offer(ev)
		for i, s := range subs {
			spare[i] = s.Take(spare[i])
		}
	}
	round() // the first two rounds give each queue and its owner a slice
	round()
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Errorf("offer to %d subscribers: %v allocations, want 0", f.len(), n)
	}
}
