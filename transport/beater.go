package transport

import (
	"sync"
	"sync/atomic"
	"time"
)

// beater sends the heartbeats of every stream of a server, from one
// goroutine, on one grid of heartbeat/beatSlots in wall-clock time: a
// stream beats at the same slot of every cycle.
//
// A heartbeat used to be a timer per stream, reset at each beat, that woke
// the stream's goroutine to write two or three bytes and park again: at
// 18,000 idle streams, the select, the timer heap and the scheduler were
// as much of relay's idle CPU as the writes themselves. The beater writes
// an idle stream's heartbeat itself, with one non-blocking write
// (wire.tryBeat), between the stream's own writes: the stream's goroutine
// stays parked. Whenever it cannot (the stream is writing, its socket is
// full, relay has no socket of its own to write to: TLS, HTTP/2, another
// system; or a WebSocket client has answered no ping for too long), it
// hands the beat to the stream's goroutine (session.beat), which sends the
// heartbeat as it always did, under the write timeout, and ends the stream
// when that fails. Either way the heartbeat rule (when, and what a failed
// one means) has this one home.
//
// The goroutine runs while a stream is registered and ends when the last
// one leaves (remove), so a server with no streams holds none.
type beater struct {
	slot time.Duration // heartbeat / beatSlots: the grid's step

	mu    sync.Mutex
	slots [beatSlots][]*session
	n     int           // sessions registered
	quit  chan struct{} // the running goroutine's; nil: none runs

	handed atomic.Int64 // heartbeats handed to the streams' goroutines (for tests)
}

func newBeater(heartbeat time.Duration) *beater {
	return &beater{slot: max(heartbeat/beatSlots, 1)}
}

// slotOf is the slot of the grid point t.
func (b *beater) slotOf(t int64) int { return int(t / int64(b.slot) % beatSlots) }

// add registers ss for heartbeats from first (a grid point, see beatBy) on,
// every beatSlots slots after.
func (b *beater) add(ss *session, first time.Time) {
	at := first.UnixNano()
	k := b.slotOf(at)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.slots[k] = append(b.slots[k], ss)
	ss.beatFrom, ss.beatSlot, ss.beatPos = at, int32(k), int32(len(b.slots[k]))
	b.n++
	if b.quit == nil {
		b.quit = make(chan struct{})
		go b.run(b.quit)
	}
}

// remove takes ss off the grid (a no-op if it is not on it). A beat of ss
// that the goroutine began before may still be under way.
func (b *beater) remove(ss *session) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ss.beatPos == 0 {
		return
	}
	s, i := b.slots[ss.beatSlot], ss.beatPos-1
	last := len(s) - 1
	s[i] = s[last]
	s[i].beatPos = i + 1
	s[last] = nil
	b.slots[ss.beatSlot] = s[:last]
	ss.beatPos = 0
	if b.n--; b.n == 0 {
		close(b.quit)
		b.quit = nil
	}
}

// run beats each slot at its grid point until quit closes. A slot whose
// point passed while the goroutine was held up is beaten late, not
// skipped, so no stream waits a whole cycle more.
func (b *beater) run(quit chan struct{}) {
	next := beatBy(time.Now(), b.slot*beatSlots).Add(b.slot)
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	var due []*session // one slot's streams, reused
	for {
		select {
		case <-t.C:
		case <-quit:
			return
		}
		now := time.Now()
		for ; !next.After(now); next = next.Add(b.slot) {
			var ok bool
			if due, ok = b.beat(next.UnixNano(), quit, due[:0]); !ok {
				return
			}
		}
		t.Reset(time.Until(next))
	}
}

// beat beats the streams of the slot of grid point at that were on the
// grid from at or before it, copied into due; false when quit has closed.
func (b *beater) beat(at int64, quit chan struct{}, due []*session) ([]*session, bool) {
	b.mu.Lock()
	select {
	case <-quit:
		b.mu.Unlock()
		return due, false
	default:
	}
	for _, ss := range b.slots[b.slotOf(at)] {
		if ss.beatFrom <= at {
			due = append(due, ss)
		}
	}
	b.mu.Unlock()
	// Outside the lock: a write is a system call, and streams come and go
	// meanwhile. A stream removed since is still beaten once (its socket
	// refuses the write if it has closed; a WebSocket that sent its close
	// takes no ping).
	for i, ss := range due {
		ss.beat()
		due[i] = nil
	}
	return due, true
}

// beatSlots is how many moments per heartbeat interval a heartbeat may
// fall on: every stream's heartbeats fall on one grid of heartbeat/
// beatSlots (117 ms at 15 s) in wall-clock time, so that the beater wakes
// 8.5 times a second whatever the number of streams (at 18,000, about 140
// streams each time), not once per stream (1,200 times a second).
const beatSlots = 128

// beatBy is the latest moment on the heartbeat grid not after t: a
// heartbeat is due at most heartbeat after the one before (or after the
// stream went live), and at most a slot sooner.
func beatBy(t time.Time, heartbeat time.Duration) time.Time {
	slot := heartbeat / beatSlots
	if slot <= 0 {
		return t
	}
	return t.Add(-time.Duration(t.UnixNano() % int64(slot)))
}
