package events

import "sync/atomic"

// shardSize bounds the subscribers of one fan-out shard. A change to a
// channel's subscribers copies at most one shard (2 KiB of pointers), so
// adding or removing one of N subscribers costs O(shardSize), not O(N):
// closing 20,000 streams of one channel is 20,000 small copies, not 20,000
// copies of a 20,000-long list under the hub's lock. Fan-out walks
// N/shardSize shards, one atomic load each.
const shardSize = 256

// fanout is one channel's subscribers, split in shards. Readers (the
// per-event path) load the shard list and each shard's slice atomically and
// take no lock; every slice they can load is never written again below its
// length. Writers hold the hub's mutex.
type fanout struct {
	shards atomic.Pointer[[]*shard] // replaced when a shard is added or dropped

	// Under the hub's mutex:
	where map[*Subscription]*shard // the shard holding each subscriber
	room  *shard                   // a shard with room, or nil: try it first
}

// shard is up to shardSize subscribers; its slice is replaced on removal
// and extended in place (beyond every published length) on addition.
type shard struct {
	subs atomic.Pointer[[]*Subscription]
}

func newFanout() *fanout {
	return &fanout{where: make(map[*Subscription]*shard)}
}

func (sh *shard) load() []*Subscription {
	if p := sh.subs.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *fanout) loadShards() []*shard {
	if p := f.shards.Load(); p != nil {
		return *p
	}
	return nil
}

// offer gives ev to every subscriber: no lock, no allocation.
func (f *fanout) offer(ev *Event) {
	for _, sh := range f.loadShards() {
		for _, s := range sh.load() {
			s.offer(ev)
		}
	}
}

// offerAll gives evs, events of one channel in order, to every subscriber,
// each in one offer: no lock, no allocation.
func (f *fanout) offerAll(evs []*Event) {
	for _, sh := range f.loadShards() {
		for _, s := range sh.load() {
			s.offerAll(evs)
		}
	}
}

// len is the number of subscribers; call it under the hub's mutex.
func (f *fanout) len() int { return len(f.where) }

// add registers s; call it under the hub's mutex. Appending writes the
// slot after the published length, which no reader reads, then publishes
// the longer slice.
func (f *fanout) add(s *Subscription) {
	if _, ok := f.where[s]; ok {
		return // a channel named twice is delivered once
	}
	sh := f.room
	if sh == nil || len(sh.load()) >= shardSize {
		sh = f.withRoom()
	}
	next := append(sh.load(), s)
	sh.subs.Store(&next)
	f.where[s] = sh
	f.room = sh
	if len(next) >= shardSize {
		f.room = nil
	}
}

// withRoom returns a shard with room, adding one when all are full.
func (f *fanout) withRoom() *shard {
	shards := f.loadShards()
	for _, sh := range shards {
		if len(sh.load()) < shardSize {
			return sh
		}
	}
	sh := &shard{}
	next := make([]*shard, len(shards), len(shards)+1)
	copy(next, shards)
	next = append(next, sh)
	f.shards.Store(&next)
	return sh
}

// remove unregisters s; call it under the hub's mutex. The shard's slice
// is copied without s (readers may be walking the old one); a shard left
// empty is dropped.
func (f *fanout) remove(s *Subscription) {
	sh, ok := f.where[s]
	if !ok {
		return
	}
	delete(f.where, s)
	old := sh.load()
	if len(old) == 1 {
		f.drop(sh)
		return
	}
	next := make([]*Subscription, 0, len(old)-1)
	for _, x := range old {
		if x != s {
			next = append(next, x)
		}
	}
	sh.subs.Store(&next)
	f.room = sh
}

// drop removes an empty shard from the list.
func (f *fanout) drop(sh *shard) {
	shards := f.loadShards()
	next := make([]*shard, 0, len(shards))
	for _, x := range shards {
		if x != sh {
			next = append(next, x)
		}
	}
	f.shards.Store(&next)
	if f.room == sh {
		f.room = nil
	}
}
