package events

import (
	"sync"
	"time"
)

// A subscription's live events wait in its queue until its owner takes them.
// Fan-out never blocks on a slow owner: a queue over its budget ends the
// subscription (once) with ErrSlowConsumer, and the client resumes from its
// cursor, so one slow reader costs a history read, never the server's memory
// or another reader's latency. The budget is in bytes and in time rather
// than in events: a reader that keeps up takes bursts of any length, one
// batch per wake-up, while a reader that stops is dropped once it holds
// QueueLimits.Bytes, whatever the events' sizes.
const (
	// DefaultQueueBytes is a subscription's default budget of queued live
	// events, in encoded bytes (their SSE frames): 1 MiB, as Centrifugo's
	// client queue. That is seconds of a busy channel's traffic at the
	// rates a client can take, and only a client that holds it pays it.
	DefaultQueueBytes = 1 << 20
	// DefaultQueueAge is the longest a live event waits in the queue before
	// the subscription is ended instead: as long as the transports' default
	// write timeout, so a client is given as long to take an event as one
	// write may take, and an event is never sent later than a stuck
	// client would be dropped. A client that far behind live is better
	// served by resuming from its cursor (one history read, then live) than
	// by a stream that lags ever more.
	DefaultQueueAge = 10 * time.Second
)

// QueueLimits bound a subscription's queue of live events its owner has not
// taken yet. Zero fields take the defaults.
type QueueLimits struct {
	// Bytes is the most encoded event bytes the queue holds. An event
	// offered to an empty queue is always taken, however large.
	Bytes int
	// Age is the longest an event may wait in the queue.
	Age time.Duration
}

func (l QueueLimits) withDefaults() QueueLimits {
	if l.Bytes <= 0 {
		l.Bytes = DefaultQueueBytes
	}
	if l.Age <= 0 {
		l.Age = DefaultQueueAge
	}
	return l
}

// ageCheckEvery is how often fan-out checks the age of a queue's oldest
// event: every this many queued events, so a burst costs one clock read per
// 64 events and not one per event. The owner checks at every Take (see
// Take): an event is never handed over older than Age; this check ends a
// subscription whose owner has stopped taking while a trickle arrives.
const ageCheckEvery = 64

// keepSpare is the largest spare batch Take keeps as the queue's next
// storage: a stream with a trickle of events allocates nothing per event,
// and an idle one holds at most two small slices (this one and its owner's),
// never the storage of a past burst.
const keepSpare = 32

// queue is a subscription's live events, appended by fan-out and swapped out
// whole by the owner. Its lock is the subscription's own, taken by one
// fan-out call and the owner, never across subscriptions. Idle, it is a
// nil slice and a one-slot channel.
type queue struct {
	mu      sync.Mutex
	evs     []*Event
	bytes   int       // encoded size of evs
	since   time.Time // when evs[0] was queued
	stopped bool      // the subscription ended: queue nothing more
	ready   chan struct{}
}

// size is what an event costs the queue: its encoded frame (the hub encodes
// every event before fan-out). The resync marker costs nothing.
func (ev *Event) size() int {
	if ev == resyncMarker {
		return 0
	}
	return len(ev.SSE())
}

// offer queues ev without blocking; over the budget it ends the subscription
// with ErrSlowConsumer.
func (s *Subscription) offer(ev *Event) { s.offerAll([]*Event{ev}) }

// offerAll queues evs (at least one) without blocking, with one wake-up of
// the owner for all of them; over the budget it ends the subscription with
// ErrSlowConsumer. It keeps no reference to the slice.
func (s *Subscription) offerAll(evs []*Event) {
	q := &s.q
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return
	}
	if len(q.evs) == 0 {
		q.since = time.Now()
	}
	over := false
	for _, ev := range evs {
		q.evs = append(q.evs, ev)
		q.bytes += ev.size()
		over = over || len(q.evs) > 1 && q.bytes > s.hub.queue.Bytes ||
			len(q.evs)%ageCheckEvery == 0 && time.Since(q.since) > s.hub.queue.Age
	}
	q.mu.Unlock()
	if over {
		s.fail(ErrSlowConsumer)
		return
	}
	select {
	case q.ready <- struct{}{}:
	default: // a wake-up is pending: the owner takes these events with it
	}
}

// stop empties the queue for good: the subscription has ended.
func (q *queue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.evs, q.bytes = nil, 0
	q.mu.Unlock()
}

// Ready receives a value when live events wait to be taken: call Take. It
// holds one wake-up at most, so a Take may find the events of a wake-up
// already taken by the previous one, and return none.
func (s *Subscription) Ready() <-chan struct{} { return s.q.ready }

// Take returns the live events waiting, oldest first, and empties the queue;
// pass each to Deliver, in order. spare is the slice an earlier Take
// returned, once the owner is done with it (or nil): its storage is reused
// when small, so a trickle of events allocates nothing. Take returns nil
// and ends the subscription with ErrSlowConsumer when the oldest event has
// waited longer than the queue's age budget: it is never handed over late.
// Only the owner calls Take.
func (s *Subscription) Take(spare []*Event) []*Event {
	clear(spare) // the queue holds no event the owner has sent
	if cap(spare) > keepSpare {
		spare = nil
	}
	q := &s.q
	q.mu.Lock()
	evs, since := q.evs, q.since
	if !q.stopped {
		q.evs, q.bytes = spare[:0], 0
	}
	q.mu.Unlock()
	if len(evs) > 0 && time.Since(since) > s.hub.queue.Age {
		s.fail(ErrSlowConsumer)
		return nil
	}
	return evs
}
