package transport

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/events"
)

// drainMax is how many ready events a stream writes before it flushes: one
// syscall carries a burst, and a steady trickle is still flushed per event.
const drainMax = 64

func acceptsEventStream(r *http.Request) bool {
	return r.Header.Get("Accept") == "" || accepts(r, "text/event-stream", "text/*", "*/*")
}

func acceptsJSON(r *http.Request) bool { return accepts(r, "application/json") }

// accepts reports whether the Accept header names one of types.
func accepts(r *http.Request, types ...string) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && slices.Contains(types, mt) {
			return true
		}
	}
	return false
}

// sseStream writes one client's Server-Sent Events. It is the events.Sink of
// its subscription; only its goroutine uses it.
type sseStream struct {
	out   frameWriter
	sub   *events.Subscription
	multi bool   // several channels: the id line is the whole cursor
	buf   []byte // reused for id lines and control frames
	cfg   *Config
	log   *slog.Logger
	// states are the presence_state messages sent after history.
	states []*events.Event
}

// serveSSE refuses with a JSON status before the stream starts (EventSource
// treats any non-200 as final), then streams: retry hint, history after the
// cursor, the cursor itself, live events, heartbeats.
//
// On HTTP/1.1 it takes the connection over (Hijack) and hands it to a stream
// goroutine of its own, so that net/http's per-request buffers and its
// background reader are freed: an idle stream then costs two goroutines
// (writer, and a reader that notices a client going away), its subscription
// and little else. Where hijacking is not possible (HTTP/2)
// the stream runs in the handler through the ResponseWriter.
func (s *Server) serveSSE(c echo.Context, channels channelsFunc) error {
	o, err := s.open(c, channels)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no")
	log := s.logger.With("transport", "sse", "user", o.id.UserID)
	st := &sseStream{sub: o.sub, multi: len(o.channels) > 1, buf: make([]byte, 0, 128), cfg: &s.cfg, log: log, states: o.states}

	conn, err := hijack(c.Response())
	if err != nil { // HTTP/2: stream from the handler
		defer o.close()
		c.Response().WriteHeader(http.StatusOK)
		st.out = &responseWriter{w: c.Response(), rc: http.NewResponseController(c.Response()), timeout: s.cfg.WriteTimeout}
		ctx := c.Request().Context()
		err := st.begin(ctx)
		if err == nil {
			err = st.live(ctx, s.shutdown, o.id.Expires)
		}
		st.end(ctx, err)
		return nil
	}
	if !s.track() { // shutting down
		o.close()
		conn.Close()
		return nil
	}
	st.out = &connWriter{conn: conn, timeout: s.cfg.WriteTimeout}
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan struct{})
	go watchClose(conn, cancel, gone)
	finish := func(err error) {
		st.end(ctx, err)
		cancel()
		conn.Close()
		<-gone
		o.close()
		s.streams.Done()
	}
	// History is sent from the handler goroutine, whose stack the log reads
	// grow; the live stream goroutine then starts small and stays small.
	if err := st.begin(ctx); err != nil {
		finish(err)
		return nil
	}
	go func() { finish(st.live(ctx, s.shutdown, o.id.Expires)) }()
	return nil
}

// watchClose reads a hijacked stream's connection, where a client sends
// nothing more, until it fails: then the client is gone (or the stream closed
// it) and cancel ends the stream at once rather than at its next write.
func watchClose(conn net.Conn, cancel context.CancelFunc, gone chan<- struct{}) {
	defer close(gone)
	defer cancel()
	var b [64]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			return
		}
	}
}

// writeError is a failed write to the client: the client is gone or stuck.
type writeError struct{ error }

func (e writeError) Unwrap() error { return e.error }

// end handles how a stream ended. A failure of the log (not of a write) is
// told to the client as an "error" event, and logged.
func (st *sseStream) end(ctx context.Context, err error) {
	var we writeError
	if err == nil || errors.As(err, &we) || ctx.Err() != nil {
		if err != nil {
			st.log.Debug("stream ended", "err", err)
		}
		return
	}
	st.log.Warn("sse stream failed; the client will resume from its cursor", "err", err)
	_ = st.control("error", st.cfg.Retry, "relay could not read the event log; reconnect with your last event id")
}

// begin sends the retry hint, the history after the cursor, presence states,
// then a named connection_established event whose id line is the whole
// cursor: EventSource records it, and a page listening for the event learns
// the cursor of channels that have had no event yet.
func (st *sseStream) begin(ctx context.Context) error {
	st.buf = strconv.AppendInt(append(st.buf[:0], "retry: "...), st.cfg.Retry.Milliseconds(), 10)
	if err := st.write(append(st.buf, "\n\n"...)); err != nil {
		return err
	}
	if err := st.flush(); err != nil {
		return err
	}
	if err := st.sub.Replay(ctx, st); err != nil {
		return err
	}
	for _, ev := range st.states {
		if err := st.Event(ev); err != nil {
			return err
		}
	}
	st.states = nil
	st.buf = st.sub.AppendCursor(append(st.buf[:0], "event: connection_established\nid: "...))
	st.buf = append(st.buf, "\ndata: "...)
	st.buf = append(st.buf, welcome(st.sub)...)
	if err := st.write(append(st.buf, "\n\n"...)); err != nil {
		return err
	}
	return st.flush()
}

// live streams until the client goes, the server shuts down, the token
// expires or the subscription ends.
func (st *sseStream) live(ctx context.Context, shutdown <-chan struct{}, expires time.Time) error {
	heartbeat := time.NewTicker(st.cfg.Heartbeat)
	defer heartbeat.Stop()
	expiry := time.NewTimer(time.Until(expires))
	defer expiry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-shutdown:
			// Spread reconnects so a deploy is no reconnect storm.
			jitter := st.cfg.Retry + rand.N(5*time.Second)
			return st.control("shutdown", jitter, "relay is restarting; reconnect with your last event id")
		case <-heartbeat.C:
			if err := st.write([]byte(":\n\n")); err != nil {
				return err
			}
			if err := st.flush(); err != nil {
				return err
			}
		case <-expiry.C:
			return st.control("token_expired", 0, "your token expired: fetch a fresh token and reconnect with your last event id")
		case <-st.sub.Done():
			err := st.sub.Err()
			if errors.Is(err, events.ErrSlowConsumer) {
				return st.control("slow_consumer", 0, "you fell behind the event rate; reconnect with your last event id")
			}
			return st.control("shutdown", st.cfg.Retry, "relay is restarting; reconnect with your last event id")
		case ev := <-st.sub.Live():
			if err := st.deliver(ctx, ev); err != nil {
				return err
			}
		}
	}
}

// deliver writes ev and whatever else is ready, then flushes once.
func (st *sseStream) deliver(ctx context.Context, ev *events.Event) error {
	if err := st.sub.Deliver(ctx, ev, st); err != nil {
		return err
	}
	for range drainMax {
		select {
		case ev := <-st.sub.Live():
			if err := st.sub.Deliver(ctx, ev, st); err != nil {
				return err
			}
		default:
			return st.flush()
		}
	}
	return st.flush()
}

// Event writes one event frame: the shared frame on single-channel streams;
// the connection's cursor then the shared data on multiplexed ones.
func (st *sseStream) Event(ev *events.Event) error {
	if !st.multi || ev.Ephemeral {
		return st.write(ev.SSE())
	}
	st.buf = st.sub.AppendCursor(append(st.buf[:0], "id: "...))
	st.buf = append(st.buf, '\n')
	if err := st.write(st.buf); err != nil {
		return err
	}
	return st.write(ev.SSEData())
}

// Reset sends the named event "reset" for channel, with the new cursor.
func (st *sseStream) Reset(channel string) error {
	st.buf = append(st.buf[:0], "event: reset\nid: "...)
	st.buf = st.sub.AppendCursor(st.buf)
	st.buf = append(st.buf, "\ndata: "...)
	st.buf = append(st.buf, events.Control("reset", "channel", channel, "id", st.sub.Position(channel).String(),
		"message", "history after your cursor is no longer available; refetch this channel's state")...)
	return st.write(append(st.buf, "\n\n"...))
}

// control ends the stream with a named event saying why, and a retry hint.
func (st *sseStream) control(name string, retry time.Duration, msg string) error {
	st.buf = append(st.buf[:0], "event: "...)
	st.buf = append(st.buf, name...)
	if retry > 0 {
		st.buf = strconv.AppendInt(append(st.buf, "\nretry: "...), retry.Milliseconds(), 10)
	}
	st.buf = append(st.buf, "\ndata: "...)
	st.buf = append(st.buf, events.Control(name, "message", msg)...)
	if err := st.write(append(st.buf, "\n\n"...)); err != nil {
		return err
	}
	return st.flush()
}

func (st *sseStream) write(b []byte) error {
	if _, err := st.out.Write(b); err != nil {
		return writeError{err}
	}
	return nil
}

func (st *sseStream) flush() error {
	if err := st.out.Flush(); err != nil {
		return writeError{err}
	}
	return nil
}
