package transport

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
	"unsafe"

	"github.com/relaydev/relay/events"
)

// wire is what differs between transports: how bytes of each kind reach the
// client. Every method is called from the session's one writer goroutine. A
// write that fails returns a writeError: the client is gone or stuck.
type wire interface {
	events.Sink // Event writes one event; Reset says a channel's history is gone
	// start opens the stream (SSE: the retry hint).
	start() error
	// welcome writes connection_established, with the whole cursor.
	welcome(msg []byte) error
	// heartbeat keeps an idle stream open (SSE: a comment; WebSocket: a ping).
	heartbeat() error
	// reply writes an answer to a client message (WebSocket only).
	reply(msg []byte) error
	// flush sends what the wire has buffered.
	flush() error
	// end tells the client why the stream ends; the stream is over after it.
	end(e ending) error
}

// writeError is a failed write to the client: the client is gone or stuck.
type writeError struct{ error }

func (e writeError) Unwrap() error { return e.error }

// reply is what a WebSocket's reader asks the session to send: a message,
// or (err set) the error to end the stream with.
type reply struct {
	msg []byte
	err error
}

// session is one client's stream, whatever its transport: history after the
// cursor, presence states, the welcome, then the live loop, and its ending.
// It is the events.Sink the subscription writes to, in front of its wire:
// only its goroutine writes to the wire, and it counts what it writes.
type session struct {
	w        wire
	sub      *events.Subscription
	states   []*events.Event // presence_state messages, sent after history
	cfg      *Config
	expires  time.Time
	shutdown <-chan struct{} // nil once this stream's shutdown has begun
	replies  <-chan reply    // answers from a WebSocket's reader; nil on SSE
	began    time.Time

	metrics   *Metrics
	base      *slog.Logger // the server's; an idle stream holds no logger of its own (see logger)
	user      string
	resumed   bool   // the client sent a cursor
	transport string // set when the stream starts (history)

	// What the session has written: unflushed events are added to the
	// counters once per flush (one atomic add per batch, none per event).
	unflushed int
	sent      int // events written, replayed and live
	replaying bool
	ended     *liveStream     // ended from outside: POST /api/disconnect
	batch     []*events.Event // storage for the next Take (see keptBatch)

	// The live loop's one timer (see live), in the session rather than in
	// live's frame: it fires at the next heartbeat or at the deadline,
	// whichever comes first. The deadline (if bounded) is the token's
	// expiry (none with KeepPastExpiry) or, once a shutdown has begun
	// (leaving), this stream's moment within the spread if that comes first.
	timer    *time.Timer
	beatAt   time.Time
	deadline time.Time
	bounded  bool
	leaving  bool
	reply    reply // the reader's reply wait received, for answer
}

// newSession takes over o's presence states: history sends them, then
// drops them, so an idle stream does not hold them (nor their encodings).
func (s *Server) newSession(o *openStream, w wire, replies <-chan reply) *session {
	states := o.states
	o.states = nil
	return &session{w: w, sub: o.sub, states: states, cfg: &s.cfg, expires: o.id.Expires,
		shutdown: s.shutdown, replies: replies, began: time.Now(),
		metrics: s.metrics, base: s.logger, user: o.id.UserID, resumed: len(o.cursor) > 0, ended: o.live}
}

// Event writes a subscription's event to the wire and counts it.
func (ss *session) Event(ev *events.Event) error {
	ss.unflushed++
	return ss.w.Event(ev)
}

// Reset writes a reset to the wire and counts it by cause.
func (ss *session) Reset(channel string) error {
	ss.metrics.resets[ss.sub.ResetCause()].Inc()
	return ss.w.Reset(channel)
}

// flush flushes the wire and adds what it carried to the counters.
func (ss *session) flush() error {
	ss.count()
	return ss.w.flush()
}

func (ss *session) count() {
	if ss.unflushed == 0 {
		return
	}
	if ss.replaying {
		ss.metrics.replayed.Add(float64(ss.unflushed))
	} else {
		ss.metrics.delivered.Add(float64(ss.unflushed))
	}
	ss.sent += ss.unflushed
	ss.unflushed = 0
}

// begin counts the stream open and logs relay.connect.
func (ss *session) begin() {
	ss.transport = transportOf(ss.w)
	ss.metrics.connections[ss.transport].Inc()
	ss.metrics.subs.Add(float64(len(ss.sub.Channels())))
	ss.base.Info("relay.connect", "transport", ss.transport, "user", ss.user,
		"channels", len(ss.sub.Channels()), "resumed", ss.resumed)
}

// logger is the server's logger with the stream's transport and user, made
// when the stream logs something beyond relay.connect and relay.disconnect
// (rarely): a logger made per stream with With, and held for its life, was
// about 200 bytes of every idle stream's heap. Only the session's goroutine
// calls it (transport is set in begin).
func (ss *session) logger() *slog.Logger {
	return ss.base.With("transport", ss.transport, "user", ss.user)
}

// transportOf names a wire's transport.
func transportOf(w wire) string {
	switch w := w.(type) {
	case *wsConn:
		return transportWS
	case *sseWire:
		if _, ok := w.out.(*responseWriter); ok {
			return transportSSEH2
		}
	}
	return transportSSE
}

// history opens the stream and sends the history after the cursor, the
// presence states, then the welcome: connection_established with the whole
// cursor, so a client learns the cursor of channels that have had no event
// yet.
func (ss *session) history(ctx context.Context) error {
	ss.begin()
	if err := ss.w.start(); err != nil {
		return err
	}
	ss.replaying = true
	err := ss.sub.Replay(ctx, ss)
	ss.count()
	ss.replaying = false
	if err != nil {
		return err
	}
	for _, ev := range ss.states {
		if err := ss.w.Event(ev); err != nil {
			return err
		}
	}
	ss.states = nil
	if err := ss.w.welcome(welcome(ss.sub)); err != nil {
		return err
	}
	if err := ss.flush(); err != nil {
		return err
	}
	// The live loop's timer is made here, on the handler's goroutine:
	// making it may allocate, sweep or contend for the timer heap's lock,
	// deeper than the live goroutine's small stack allows (see live).
	ss.arm()
	return nil
}

// live streams until the client goes (ctx ends: nil), the server shuts down
// (at a random moment within Config.ShutdownSpread of it), the token
// expires, the subscription ends, a write fails or a client message asks to
// end; it returns the error that ended it.
//
// An idle stream's goroutine sits parked in wait, and each write of the
// stream runs from here: the select's frame is off the stack while the
// stream writes, live's own frame is small (the timers live in the session,
// rare paths are other functions), so that the goroutine fits the runtime's
// smallest stack (2 KiB) with its deepest write (a flush under a fresh write
// deadline). A stack once grown stays grown: the GC halves a parked stack
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
	wakeTimer                // the timer fired: a heartbeat, or the deadline
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

// arm starts the live loop's timer (history does, once it has sent the
// welcome; finish stops it), for the first heartbeat or the token's expiry.
func (ss *session) arm() {
	ss.beatAt = beatBy(time.Now().Add(ss.cfg.Heartbeat), ss.cfg.Heartbeat)
	if !ss.cfg.KeepPastExpiry {
		ss.deadline, ss.bounded = ss.expires, true
	}
	ss.timer = time.NewTimer(time.Until(ss.next()))
}

// disarm stops the timer, if arm started it.
func (ss *session) disarm() {
	if ss.timer != nil {
		ss.timer.Stop()
	}
}

// next is when the timer is due: the next heartbeat, or the deadline.
func (ss *session) next() time.Time {
	if ss.bounded && ss.deadline.Before(ss.beatAt) {
		return ss.deadline
	}
	return ss.beatAt
}

// timed ends the stream at its deadline, or sends the heartbeat that is due
// (heartbeats missed meanwhile are dropped, as a Ticker's are), then sets
// the timer again.
func (ss *session) timed() error {
	now := time.Now()
	if ss.bounded && !now.Before(ss.deadline) {
		if ss.leaving {
			return errRestarting
		}
		return errTokenExpired
	}
	if !now.Before(ss.beatAt) {
		if err := ss.heartbeat(); err != nil {
			return err
		}
		ss.beatAt = beatBy(ss.beatAt.Add(ss.cfg.Heartbeat), ss.cfg.Heartbeat)
		if !ss.beatAt.After(now) {
			ss.beatAt = beatBy(now.Add(ss.cfg.Heartbeat), ss.cfg.Heartbeat)
		}
	}
	ss.timer.Reset(time.Until(ss.next()))
	return nil
}

// beatSlots is how many moments per heartbeat interval a heartbeat may
// fall on: every stream's heartbeats fall on one grid of heartbeat/
// beatSlots (117 ms at 15 s) in wall-clock time, so that the runtime fires
// the timers of many streams at once (at 18,000 streams, about 140 each
// time, 8.5 times a second), not each stream's at its own moment (1,200
// wake-ups a second).
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
		ss.timer.Reset(time.Until(ss.next()))
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

// finish tells the client how the stream ended, unless it is gone (ctx
// ended, or a write failed), counts and logs the ending (relay.disconnect:
// WARN for a slow consumer, a stuck client and relay's own failures, which
// are worth an operator's eye; INFO otherwise), and reports whether an
// ending was sent, and whether the client is stuck: a write to it (the
// stream's, or the ending's) timed out, and its connection is to be reset
// (see resetOnClose).
func (ss *session) finish(ctx context.Context, err error) (sent, stuck bool) {
	ss.disarm()
	ss.count() // what was written but not flushed still counts as sent
	reason := disconnectReason(ctx, err)
	var e ending
	var we writeError
	sent = !(err == nil || errors.As(err, &we) || ctx.Err() != nil)
	stuck = reason == reasonWriteTimeout
	if sent {
		e = endingOf(err)
	}
	// Counted and logged before the ending is written: a client that has
	// read its ending finds it in the log and the metrics.
	ss.metrics.connections[ss.transport].Dec()
	ss.metrics.subs.Sub(float64(len(ss.sub.Channels())))
	ss.metrics.disconnects[reason].Inc()

	level := slog.LevelInfo
	switch reason {
	case reasonSlowConsumer, reasonWriteTimeout, reasonStoreUnavailable, reasonError:
		level = slog.LevelWarn
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("transport", ss.transport), slog.String("user", ss.user),
		slog.Int("channels", len(ss.sub.Channels())), slog.Bool("resumed", ss.resumed),
		slog.String("reason", reason))
	if sent && ss.transport == transportWS {
		attrs = append(attrs, slog.Int("close_code", e.close))
	}
	attrs = append(attrs, slog.Int64("duration_ms", time.Since(ss.began).Milliseconds()), slog.Int("events_sent", ss.sent))
	if reason == reasonError || reason == reasonStoreUnavailable {
		attrs = append(attrs, slog.Any("err", err))
	}
	ss.base.LogAttrs(context.Background(), level, "relay.disconnect", attrs...)
	if sent {
		if werr := ss.w.end(e); werr != nil {
			ss.logger().Debug("could not send the stream's ending", "reason", reason, "err", werr)
			stuck = timedOut(werr)
		}
	}
	return sent, stuck
}

// resetMessage is the reset control message for channel, the same on both
// transports: its history after the client's cursor is gone, and the
// position the stream goes on from.
func resetMessage(sub *events.Subscription, channel string) []byte {
	return events.Control("reset", "channel", channel, "id", sub.Position(channel).String(),
		"message", "history after your cursor is no longer available; refetch this channel's state")
}

// welcome is the connection_established message, the same on both
// transports: {"type","channels","cursor"}.
func welcome(sub *events.Subscription) []byte {
	msg, _ := json.Marshal(struct {
		Type     string   `json:"type"`
		Channels []string `json:"channels"`
		Cursor   string   `json:"cursor"`
	}{"connection_established", sub.Channels(), string(sub.AppendCursor(nil))})
	return msg
}
