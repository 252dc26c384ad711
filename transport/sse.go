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
	"sync"
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
	multi bool // several channels: the id line is the whole cursor
	cfg   *Config
}

// sseScratch lends an SSE stream the buffer it builds an id line or a
// control frame in, for that one write: out copies what it is given, so
// an idle stream holds no scratch buffer (one per stream, grown by the
// welcome's cursor, was 256 bytes of every idle stream's heap).
var sseScratch = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// maxScratch is the largest scratch buffer returned to sseScratch.
const maxScratch = 4 << 10

// scratch takes a scratch buffer, empty.
func scratch() *[]byte { return sseScratch.Get().(*[]byte) }

// writeScratch writes b, built in the scratch buffer p, and returns p.
func (w *sseWire) writeScratch(p *[]byte, b []byte) error {
	err := w.write(b)
	if cap(b) <= maxScratch {
		*p = b[:0]
		sseScratch.Put(p)
	}
	return err
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
	w := &sseWire{sub: o.sub, multi: len(o.channels) > 1, cfg: &s.cfg}
	ss := s.newSession(o, w, nil)

	conn, err := hijack(c.Response())
	if err != nil { // HTTP/2: stream from the handler
		defer o.close()
		c.Response().WriteHeader(http.StatusOK)
		w.out = &responseWriter{w: c.Response(), rc: http.NewResponseController(c.Response()), timeout: s.cfg.WriteTimeout}
		ctx := c.Request().Context()
		err := ss.history(ctx)
		if err == nil {
			err = ss.live(ctx, false) // the handler's own stack: no need to keep it small
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
	stopWatch := s.watcher.watch(conn, cancel)
	finish := func(err error) {
		if _, stuck := ss.finish(ctx, err); stuck {
			resetOnClose(conn)
		}
		cancel()
		stopWatch() // before the close: the descriptor's number is then free for another
		conn.Close()
		o.close()
		s.streams.Done()
	}
	// History is sent from the handler goroutine, whose stack the log reads
	// grow; the live stream goroutine then starts small and stays small.
	if err := ss.history(ctx); err != nil {
		finish(err)
		return nil
	}
	go ss.run(ctx, finish)
	return nil
}

// watchByReading watches conn's client from a goroutine of its own
// reading it (watchClose), where no epoll set can (see sockWatcher); stop
// closes conn and waits for the goroutine.
func watchByReading(conn net.Conn, cancel context.CancelFunc) (stop func()) {
	gone := make(chan struct{})
	go watchClose(conn, cancel, gone)
	return func() {
		conn.Close()
		<-gone
	}
}

// watchClose reads a hijacked stream's connection, where a client sends
// nothing more, until it fails: then the client is gone (or the stream closed
// it) and cancel ends the stream at once rather than at its next write. A
// client that sends more than maxSSEClientBytes is ended too.
func watchClose(conn net.Conn, cancel context.CancelFunc, gone chan<- struct{}) {
	defer close(gone)
	defer cancel()
	var b [64]byte
	for sent := 0; sent <= maxSSEClientBytes; {
		n, err := conn.Read(b[:])
		if err != nil {
			return
		}
		sent += n
	}
}

// maxSSEClientBytes is the most an SSE client may send on its stream, read
// and dropped: it has nothing to say (a proxy's stray bytes fit), and one
// that goes on sending is ended, as every client-driven cost is bounded.
const maxSSEClientBytes = 64 << 10

// start sends the retry hint, the reconnect delay EventSource uses.
func (w *sseWire) start() error {
	p := scratch()
	b := strconv.AppendInt(append(*p, "retry: "...), w.cfg.Retry.Milliseconds(), 10)
	if err := w.writeScratch(p, append(b, "\n\n"...)); err != nil {
		return err
	}
	return w.flush()
}

// welcome sends the named event connection_established whose id line is the
// whole cursor: EventSource records it.
func (w *sseWire) welcome(msg []byte) error {
	p := scratch()
	b := w.sub.AppendCursor(append(*p, "event: connection_established\nid: "...))
	b = append(b, "\ndata: "...)
	b = append(b, msg...)
	return w.writeScratch(p, append(b, "\n\n"...))
}

// heartbeat writes a comment. Its bytes are shared: every writer copies what
// it is given, and a conversion here would allocate on each heartbeat, on the
// session's small stack.
func (w *sseWire) heartbeat() error { return w.write(sseHeartbeat) }

var sseHeartbeat = []byte(":\n\n")

// tryBeat writes a heartbeat on a hijacked connection's socket (see
// sockWriter.tryBeat); an HTTP/2 stream leaves it to the session.
func (w *sseWire) tryBeat() bool {
	cw, ok := w.out.(*connWriter)
	return ok && cw.out.tryBeat(sseHeartbeat)
}

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
	p := scratch()
	b := w.sub.AppendCursor(append(*p, "id: "...))
	if err := w.writeScratch(p, append(b, '\n')); err != nil {
		return err
	}
	return w.write(ev.SSEData())
}

// Reset sends the named event "reset" for channel, with the new cursor.
func (w *sseWire) Reset(channel string) error {
	p := scratch()
	b := w.sub.AppendCursor(append(*p, "event: reset\nid: "...))
	b = append(b, "\ndata: "...)
	b = append(b, resetMessage(w.sub, channel)...)
	return w.writeScratch(p, append(b, "\n\n"...))
}

// end sends the ending's named event, with its retry hint, and flushes.
func (w *sseWire) end(e ending) error {
	var retry time.Duration
	switch e.retry {
	case retryBase, retrySpread: // a shutdown spreads the endings themselves (see session.live)
		retry = w.cfg.Retry
	}
	p := scratch()
	b := append(append(*p, "event: "...), e.event...)
	if retry > 0 {
		b = strconv.AppendInt(append(b, "\nretry: "...), retry.Milliseconds(), 10)
	}
	b = append(b, "\ndata: "...)
	b = append(b, events.Control(e.event, "message", e.message)...)
	if err := w.writeScratch(p, append(b, "\n\n"...)); err != nil {
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
