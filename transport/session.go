package transport

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/relaydev/relay/events"
)

// drainMax is how many ready events a stream writes before it flushes: one
// syscall carries a burst, and a steady trickle is still flushed per event.
const drainMax = 64

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
// It is the events.Sink's caller: only its goroutine writes to the wire.
type session struct {
	w        wire
	sub      *events.Subscription
	states   []*events.Event // presence_state messages, sent after history
	cfg      *Config
	log      *slog.Logger
	expires  time.Time
	shutdown <-chan struct{}
	replies  <-chan reply // answers from a WebSocket's reader; nil on SSE
	began    time.Time
	ended    *liveStream // ended from outside: POST /api/disconnect
}

func (s *Server) newSession(o *openStream, w wire, log *slog.Logger, replies <-chan reply) *session {
	return &session{w: w, sub: o.sub, states: o.states, cfg: &s.cfg, log: log, expires: o.id.Expires,
		shutdown: s.shutdown, replies: replies, began: time.Now(), ended: o.live}
}

// history opens the stream and sends the history after the cursor, the
// presence states, then the welcome: connection_established with the whole
// cursor, so a client learns the cursor of channels that have had no event
// yet.
func (ss *session) history(ctx context.Context) error {
	if err := ss.w.start(); err != nil {
		return err
	}
	if err := ss.sub.Replay(ctx, ss.w); err != nil {
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
	return ss.w.flush()
}

// live streams until the client goes (ctx ends: nil), the server shuts down,
// the token expires, the subscription ends, a write fails or a client
// message asks to end; it returns the error that ended it.
func (ss *session) live(ctx context.Context) error {
	heartbeat := time.NewTicker(ss.cfg.Heartbeat)
	defer heartbeat.Stop()
	var expired <-chan time.Time // nil with KeepPastExpiry: never fires
	if !ss.cfg.KeepPastExpiry {
		expiry := time.NewTimer(time.Until(ss.expires))
		defer expiry.Stop()
		expired = expiry.C
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			return nil
		case <-ss.shutdown:
			return errRestarting
		case <-expired:
			return errTokenExpired
		case <-ss.ended.done:
			return ss.ended.err
		case <-ss.sub.Done():
			if errors.Is(ss.sub.Err(), events.ErrSlowConsumer) {
				return errSlowConsumer
			}
			return errRestarting
		case <-heartbeat.C:
			if err = ss.w.heartbeat(); err == nil {
				err = ss.w.flush()
			}
		case r := <-ss.replies:
			if r.err != nil {
				return r.err
			}
			err = ss.w.reply(r.msg)
		case ev := <-ss.sub.Live():
			err = ss.deliver(ctx, ev)
		}
		if err != nil {
			return err
		}
	}
}

// deliver writes ev and whatever else is ready, then flushes once.
func (ss *session) deliver(ctx context.Context, ev *events.Event) error {
	if err := ss.sub.Deliver(ctx, ev, ss.w); err != nil {
		return err
	}
	for range drainMax {
		select {
		case ev := <-ss.sub.Live():
			if err := ss.sub.Deliver(ctx, ev, ss.w); err != nil {
				return err
			}
		default:
			return ss.w.flush()
		}
	}
	return ss.w.flush()
}

// finish tells the client how the stream ended, unless it is gone (ctx
// ended, or a write failed), logs the ending, and reports whether an
// ending was sent. A failure of relay (not of the client) is logged as a
// warning, a slow consumer at info: both are worth an operator's eye.
func (ss *session) finish(ctx context.Context, err error) (ending, bool) {
	var we writeError
	if err == nil || errors.As(err, &we) || ctx.Err() != nil {
		ss.log.Debug("stream ended", "reason", "client_gone", "duration", time.Since(ss.began), "err", err)
		return ending{}, false
	}
	e := endingOf(err)
	switch {
	case e.failure == internal || errors.Is(err, events.ErrUnavailable):
		ss.log.Warn("stream failed; the client will resume from its cursor", "reason", e.event,
			"duration", time.Since(ss.began), "err", err)
	case errors.Is(err, events.ErrSlowConsumer):
		ss.log.Info("slow consumer disconnected: it fell behind its buffer and will resume from its cursor",
			"reason", e.event, "buffer", events.LiveBuffer, "duration", time.Since(ss.began))
	default:
		ss.log.Debug("stream ended", "reason", e.event, "duration", time.Since(ss.began))
	}
	if werr := ss.w.end(e); werr != nil {
		ss.log.Debug("could not send the stream's ending", "reason", e.event, "err", werr)
	}
	return e, true
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
