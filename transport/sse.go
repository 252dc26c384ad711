package transport

import (
	"context"
	"errors"
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

// sseWire is the SSE adapter of a session: it writes frames to out (a
// hijacked connection, or the ResponseWriter over HTTP/2).
type sseWire struct {
	out   frameWriter
	sub   *events.Subscription
	multi bool   // several channels: the id line is the whole cursor
	buf   []byte // reused for id lines and control frames
	cfg   *Config
}

// serveSSE refuses with a JSON status before the stream starts (EventSource
// treats any non-200 as final), then streams a session: retry hint, history
// after the cursor, the cursor itself, live events, heartbeats.
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
	w := &sseWire{sub: o.sub, multi: len(o.channels) > 1, buf: make([]byte, 0, 128), cfg: &s.cfg}
	ss := s.newSession(o, w, s.logger.With("transport", "sse", "user", o.id.UserID), nil)

	conn, err := hijack(c.Response())
	if err != nil { // HTTP/2: stream from the handler
		defer o.close()
		c.Response().WriteHeader(http.StatusOK)
		w.out = &responseWriter{w: c.Response(), rc: http.NewResponseController(c.Response()), timeout: s.cfg.WriteTimeout}
		ctx := c.Request().Context()
		err := ss.history(ctx)
		if err == nil {
			err = ss.live(ctx)
		}
		ss.finish(ctx, err)
		return nil
	}
	if !s.track() { // shutting down
		o.close()
		conn.Close()
		return nil
	}
	w.out = &connWriter{out: newSockWriter(conn), timeout: s.cfg.WriteTimeout}
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan struct{})
	go watchClose(conn, cancel, gone)
	finish := func(err error) {
		if _, stuck := ss.finish(ctx, err); stuck {
			resetOnClose(conn)
		}
		cancel()
		conn.Close()
		<-gone
		o.close()
		s.streams.Done()
	}
	// History is sent from the handler goroutine, whose stack the log reads
	// grow; the live stream goroutine then starts small and stays small.
	if err := ss.history(ctx); err != nil {
		finish(err)
		return nil
	}
	go func() { finish(ss.live(ctx)) }()
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

// start sends the retry hint, the reconnect delay EventSource uses.
func (w *sseWire) start() error {
	w.buf = strconv.AppendInt(append(w.buf[:0], "retry: "...), w.cfg.Retry.Milliseconds(), 10)
	if err := w.write(append(w.buf, "\n\n"...)); err != nil {
		return err
	}
	return w.flush()
}

// welcome sends the named event connection_established whose id line is the
// whole cursor: EventSource records it.
func (w *sseWire) welcome(msg []byte) error {
	w.buf = w.sub.AppendCursor(append(w.buf[:0], "event: connection_established\nid: "...))
	w.buf = append(w.buf, "\ndata: "...)
	w.buf = append(w.buf, msg...)
	return w.write(append(w.buf, "\n\n"...))
}

func (w *sseWire) heartbeat() error { return w.write([]byte(":\n\n")) }

// reply is never called: an SSE client sends nothing.
func (w *sseWire) reply([]byte) error {
	return errors.New("sse: a stream has no client messages to answer")
}

// Event writes one event frame: the shared frame on single-channel streams;
// the connection's cursor then the shared data on multiplexed ones.
func (w *sseWire) Event(ev *events.Event) error {
	if !w.multi || ev.Ephemeral {
		return w.write(ev.SSE())
	}
	w.buf = w.sub.AppendCursor(append(w.buf[:0], "id: "...))
	w.buf = append(w.buf, '\n')
	if err := w.write(w.buf); err != nil {
		return err
	}
	return w.write(ev.SSEData())
}

// Reset sends the named event "reset" for channel, with the new cursor.
func (w *sseWire) Reset(channel string) error {
	w.buf = append(w.buf[:0], "event: reset\nid: "...)
	w.buf = w.sub.AppendCursor(w.buf)
	w.buf = append(w.buf, "\ndata: "...)
	w.buf = append(w.buf, resetMessage(w.sub, channel)...)
	return w.write(append(w.buf, "\n\n"...))
}

// end sends the ending's named event, with its retry hint, and flushes.
func (w *sseWire) end(e ending) error {
	var retry time.Duration
	switch e.retry {
	case retryBase, retrySpread: // a shutdown spreads the endings themselves (see session.live)
		retry = w.cfg.Retry
	}
	w.buf = append(w.buf[:0], "event: "...)
	w.buf = append(w.buf, e.event...)
	if retry > 0 {
		w.buf = strconv.AppendInt(append(w.buf, "\nretry: "...), retry.Milliseconds(), 10)
	}
	w.buf = append(w.buf, "\ndata: "...)
	w.buf = append(w.buf, events.Control(e.event, "message", e.message)...)
	if err := w.write(append(w.buf, "\n\n"...)); err != nil {
		return err
	}
	return w.flush()
}

func (w *sseWire) write(b []byte) error {
	if _, err := w.out.Write(b); err != nil {
		return writeError{err}
	}
	return nil
}

func (w *sseWire) flush() error {
	if err := w.out.Flush(); err != nil {
		return writeError{err}
	}
	return nil
}
