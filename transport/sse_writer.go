package transport

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// frameWriter is where a stream's bytes go: Write buffers, Flush sends what
// is buffered within WriteTimeout, so a client that stops reading is dropped
// after it instead of pinning a goroutine and its buffers (see sockWriter).
type frameWriter interface {
	Write(p []byte) (int, error)
	Flush() error
}

// hijack takes over an HTTP/1.1 connection and writes the stream's status
// line and headers. The response has no length: it ends when the connection
// closes, as HTTP/1.1 allows.
func hijack(w http.ResponseWriter) (net.Conn, error) {
	header := w.Header().Clone()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	header.Set("Connection", "close")
	header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	if err := header.Write(&b); err != nil {
		conn.Close()
		return nil, err
	}
	b.WriteString("\r\n")
	if _, err := conn.Write(b.Bytes()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("sse: write headers: %w", err)
	}
	return conn, nil
}

// resetOnClose makes closing conn reset it (SO_LINGER 0: an RST, its unsent
// bytes dropped) instead of ending it with a FIN after them. It is for a
// stream whose write to the client timed out: a client that stopped reading
// has megabytes of events queued in relay's socket buffer, and a plain close
// leaves them to the kernel, in an orphaned socket that delivers them only
// as fast as the client reads (probing a closed window ever more rarely,
// backing off to two minutes) and sends its FIN last: the client learns that
// relay dropped it only once it has read all of them, and the host's TCP
// memory stays pinned meanwhile. A reset ends the stream once the client has
// read what its own receive buffer holds (Linux keeps that readable; other
// systems may drop it); the client resumes from its cursor at once, and
// history sends the same events. A connection that neither is nor wraps a
// TCP one is closed as usual.
func resetOnClose(conn net.Conn) {
	switch c := conn.(type) {
	case interface{ SetLinger(sec int) error }:
		_ = c.SetLinger(0)
	case interface{ NetConn() net.Conn }: // *tls.Conn
		resetOnClose(c.NetConn())
	}
}

// connWriter writes to a hijacked connection.
type connWriter struct {
	out     sockWriter
	timeout time.Duration
}

func (w *connWriter) Write(p []byte) (int, error) {
	b := w.out.buf()
	*b = append(*b, p...)
	if len(*b) >= maxBurst {
		return len(p), w.Flush()
	}
	return len(p), nil
}

func (w *connWriter) Flush() error { return w.out.flush(w.timeout) }

// responseWriter writes through net/http, where the connection cannot be
// taken over (HTTP/2).
type responseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if err := w.deadline(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

func (w *responseWriter) Flush() error {
	if err := w.deadline(); err != nil {
		return err
	}
	return w.rc.Flush()
}

func (w *responseWriter) deadline() error {
	err := w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}
