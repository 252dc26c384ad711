package transport

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/relaydev/relay/events"
)

// wire is what differs between transports: how bytes of each kind reach the
// client. Every method but tryBeat is called from the session's one writer
// goroutine. A
// write that fails returns a writeError: the client is gone or stuck.
type wire interface {
	events.Sink // Event writes one event; Reset says a channel's history is gone
	// start opens the stream (SSE: the retry hint).
	start() error
	// welcome writes connection_established, with the whole cursor.
	welcome(msg []byte) error
	// heartbeat keeps an idle stream open (SSE: a comment; WebSocket: a ping).
	heartbeat() error
	// tryBeat writes a heartbeat at once, from the beater's goroutine, and
	// reports whether it did: only between the stream's own writes, whole
	// frames, never waiting, never after the ending. When it did not, the
	// session sends the heartbeat (heartbeat), as the beater asks it to.
	tryBeat() bool
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
	// live's frame: it fires at the deadline, or at once when the beater
	// hands the session a heartbeat (beatDue). The deadline (if bounded) is
	// the token's expiry (none with KeepPastExpiry) or, once a shutdown has
	// begun (leaving), this stream's moment within the spread if that
	// comes first.
	timer    *time.Timer
	deadline time.Time
	bounded  bool
	leaving  bool
	reply    reply // the reader's reply wait received, for answer

	// The stream's place on the heartbeat grid (beater's, under its lock):
	// beats from beatFrom (unix ns) on, in slot beatSlot, at position
	// beatPos-1 there (0: not on the grid).
	beats             *beater
	beatFrom          int64
	beatSlot, beatPos int32
	beatDue           atomic.Bool // the beater handed over a heartbeat
}

// newSession takes over o's presence states: history sends them, then
// drops them, so an idle stream does not hold them (nor their encodings).
func (s *Server) newSession(o *openStream, w wire, replies <-chan reply) *session {
	states := o.states
	o.states = nil
	return &session{w: w, sub: o.sub, states: states, cfg: &s.cfg, expires: o.id.Expires,
		shutdown: s.shutdown, replies: replies, began: time.Now(),
		metrics: s.metrics, base: s.logger, user: o.id.UserID, resumed: len(o.cursor) > 0, ended: o.live, beats: s.beats}
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
