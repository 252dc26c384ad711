package transport

// The live loop of a session (see session): one goroutine per stream,
// parked in wait until an event, a timer, a reply or the shutdown needs it.

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
	"unsafe"

	"github.com/relaydev/relay/events"
)

// live streams until the client goes (ctx ends: nil), the server shuts down
// (at a random moment within Config.ShutdownSpread of it), the token
// expires, the subscription ends, a write fails or a client message asks to
// end; it returns the error that ended it.
//
// An idle stream's goroutine sits parked in wait, and each write of the
// stream runs from here: the select's frame is off the stack while the
// stream writes, live's own frame is small (the timers live in the session,
// rare paths are other functions), so that the goroutine fits the runtime's
// smallest stack (2 KiB) with its deepest write (a flush the socket does not
// take whole, finished under a write deadline: see sockWriter). A stack once grown stays grown: the GC halves a parked stack
// only when under a quarter of it is in use. The runtime still grows it now
// and then (see run); on a stream's own goroutine (small), live then returns
// errStackGrew after the wake that found its stack moved, for run to go on
// in a fresh goroutine. TestIdleStreamStacks checks it.
func (ss *session) live(ctx context.Context, small bool) error {
	at := frameAddr()
	for {
		var err error
		switch w, end := ss.wait(ctx.Done()); w {
		case wakeEnd:
			return end
		case wakeEvents:
			err = ss.deliver(ctx)
		case wakeTimer:
			err = ss.timed()
		case wakeReply:
			err = ss.answer()
		case wakeShutdown:
			err = ss.shuttingDown()
		}
		if err != nil {
			return err
		}
		if small && frameAddr() != at {
			return errStackGrew
		}
	}
}

// run is a stream goroutine's life: the live loop, then end with the error
// that ended it. The runtime grows the loop's 2 KiB stack now and then, for
// good (see live), on paths no frame of relay's can make shallower: an
// allocation that finds its span full sweeps, or assists the collector,
// deeper than 2 KiB allows, and the select in wait allocates the records of
// its waits (sudogs) and grows the timer heap on the waiting goroutine. Left
// alone, idle streams grew to 4 KiB one garbage collection after another (a
// quarter of 512 streams within 140 collections, in a test). So when live
// finds its stack grown, run goes on in a fresh goroutine, which starts at
// the smallest stack, and this one exits with the grown stack: only a
// stream whose last wait grew it stays grown, until its next wake.
func (ss *session) run(ctx context.Context, end func(error)) {
	if err := ss.live(ctx, true); err != errStackGrew {
		end(err)
		return
	}
	go ss.run(ctx, end)
}

// errStackGrew is live's report that its goroutine's stack grew (run goes
// on in a fresh goroutine); it never ends a stream.
var errStackGrew = errors.New("transport: the live loop's stack grew")

// frameAddr returns an address in its own frame, which lies at the same
// place below its caller's frame at every call: called twice from one
// function, it returns two values only when the stack was moved between
// the calls, as the runtime does to grow (or shrink) it.
//
//go:noinline
func frameAddr() uintptr {
	var b byte
	return uintptr(unsafe.Pointer(&b))
}

// wake is what woke a session parked in wait.
type wake uint8

const (
	wakeEnd      wake = iota // the stream ends, with wait's error (nil: the client went)
	wakeEvents               // the subscription has live events ready
	wakeTimer                // the timer fired: the deadline, or a heartbeat handed over
	wakeReply                // the WebSocket's reader has a reply (session.reply)
	wakeShutdown             // the server's shutdown began
)

// wait parks the session until something needs it, and says what. It is
// not inlined so that its select (a frame of a few hundred bytes) is on the
// stack only while the stream is parked, never below a write (see live).
//
//go:noinline
func (ss *session) wait(done <-chan struct{}) (wake, error) {
	select {
	case <-done:
		return wakeEnd, nil
	case <-ss.sub.Ready():
		return wakeEvents, nil
	case <-ss.timer.C:
		return wakeTimer, nil
	case ss.reply = <-ss.replies:
		if ss.reply.err != nil {
			return wakeEnd, ss.reply.err
		}
		return wakeReply, nil
	case <-ss.shutdown:
		return wakeShutdown, nil
	case <-ss.ended.done:
		return wakeEnd, ss.ended.err
	case <-ss.sub.Done():
		return wakeEnd, ss.subscriptionErr()
	}
}

// arm puts the stream on the heartbeat grid, its first heartbeat at most
// Heartbeat from now, and starts the live loop's timer for the token's
// expiry (history does, once it has sent the welcome; finish undoes it).
func (ss *session) arm() {
	if !ss.cfg.KeepPastExpiry {
		ss.deadline, ss.bounded = ss.expires, true
	}
	ss.timer = time.NewTimer(time.Until(ss.deadline))
	if !ss.bounded {
		ss.timer.Stop()
	}
	ss.beats.add(ss, beatBy(time.Now().Add(ss.cfg.Heartbeat), ss.cfg.Heartbeat))
}

// disarm takes the stream off the grid and stops the timer, if arm
// started them.
func (ss *session) disarm() {
	if ss.timer != nil {
		ss.beats.remove(ss)
		ss.timer.Stop()
	}
}

// beat is the beater's, on its goroutine: the heartbeat is due. The wire
// sends it at once when it can; otherwise the session's goroutine is woken
// to send it (timed).
func (ss *session) beat() {
	if ss.w.tryBeat() {
		return
	}
	ss.beats.handed.Add(1)
	ss.beatDue.Store(true)
	ss.timer.Reset(0)
}

// rearm sets the timer for the deadline (or stops it), then fires it at
// once if the beater handed over a heartbeat meanwhile: a beat that came
// between timed's check and this Reset is not lost.
func (ss *session) rearm() {
	if ss.bounded {
		ss.timer.Reset(time.Until(ss.deadline))
	} else {
		ss.timer.Stop()
	}
	if ss.beatDue.Load() {
		ss.timer.Reset(0)
	}
}

// timed ends the stream at its deadline, or sends the heartbeat the beater
// handed over, then sets the timer again.
func (ss *session) timed() error {
	if ss.bounded && !time.Now().Before(ss.deadline) {
		if ss.leaving {
			return errRestarting
		}
		return errTokenExpired
	}
	if ss.beatDue.Swap(false) {
		if err := ss.heartbeat(); err != nil {
			return err
		}
	}
	ss.rearm()
	return nil
}

// shuttingDown begins the server's shutdown for this stream: it ends now
// without a ShutdownSpread, else at a random moment within it, unless the
// token expires first (the deadline then stays at the expiry).
func (ss *session) shuttingDown() error {
	if ss.cfg.ShutdownSpread <= 0 {
		return errRestarting
	}
	ss.shutdown = nil // go on streaming until this stream's moment
	leave := time.Now().Add(rand.N(ss.cfg.ShutdownSpread))
	if !ss.bounded || leave.Before(ss.deadline) {
		ss.deadline, ss.bounded, ss.leaving = leave, true, true
		ss.rearm()
	}
	return nil
}

// subscriptionErr is why the hub ended the subscription: a slow consumer,
// or the hub closing.
func (ss *session) subscriptionErr() error {
	if errors.Is(ss.sub.Err(), events.ErrSlowConsumer) {
		return errSlowConsumer
	}
	return errRestarting
}

// heartbeat keeps an idle stream open.
func (ss *session) heartbeat() error {
	if err := ss.w.heartbeat(); err != nil {
		return err
	}
	return ss.flush()
}

// answer writes the WebSocket reader's reply that woke the session.
func (ss *session) answer() error {
	msg := ss.reply.msg
	ss.reply = reply{}
	if err := ss.w.reply(msg); err != nil {
		return err
	}
	return ss.flush()
}

// deliver takes every live event waiting, writes them, then flushes once: a
// burst goes out in as few writes as the wire's burst size allows (it writes
// every maxBurst bytes by itself), and a trickle is still flushed per event.
// A Take that ends the subscription (an event waited too long) returns
// nothing, and the loop then sees Done.
func (ss *session) deliver(ctx context.Context) error {
	batch := ss.sub.Take(ss.batch)
	ss.batch = nil
	for _, ev := range batch {
		if err := ss.sub.Deliver(ctx, ev, ss); err != nil {
			return err
		}
	}
	clear(batch) // an idle stream holds no event it has sent
	if cap(batch) <= keptBatch {
		ss.batch = batch[:0]
	}
	return ss.flush()
}

// keptBatch is the largest batch storage a session keeps for its next Take:
// a trickle of events allocates nothing, and an idle stream holds no past
// burst's storage.
const keptBatch = 32
