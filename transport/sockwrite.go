package transport

import (
	"net"
	"sync"
	"syscall"
	"time"
)

// A stream's bytes reach its connection in bursts, on both transports: they
// are appended to a pooled buffer (an idle stream holds none) and written
// in one write on flush (sockWriter).
//
// Each write is bounded by a timeout, so that a client that stops reading
// is dropped after it instead of pinning a goroutine and its buffers. A
// deadline set before every write is costly at scale, though: it arms and
// moves a runtime timer per connection, each heartbeat (at 18,000 idle
// streams, a seventh of relay's idle CPU went to it). So where relay has
// the socket itself (on Linux, not under TLS it terminates), a burst is
// first written with one non-blocking write and no deadline: a client that
// keeps up, as nearly every one does, takes it whole, and that is all. What
// the socket does not take (its buffer is full: the client is slow or has
// stopped reading) is written under a deadline of now plus the timeout, as
// every write was before, and the deadline is cleared once it has gone. A
// client that stops reading still fills its socket buffer, and the write
// that finds it full waits for the timeout at most.

// maxBurst is the most a stream buffers before it writes; maxPooled the
// largest buffer returned to the pool.
const (
	maxBurst  = 64 << 10
	maxPooled = 256 << 10
)

// burst is a pooled write buffer, with what the non-blocking write of it
// needs, so that a write allocates nothing.
type burst struct {
	b   []byte
	n   int                   // how much of b the non-blocking write took
	try func(fd uintptr) bool // b's tryWrite, bound once (see bind)
}

// bursts lend write buffers to streams for one burst at a time.
var bursts = sync.Pool{New: func() any {
	b := &burst{b: make([]byte, 0, 8<<10)}
	b.bind()
	return b
}}

func (b *burst) release() {
	if cap(b.b) <= maxPooled {
		b.b = b.b[:0]
		bursts.Put(b)
	}
}

// sockWriter buffers a stream's bytes and writes them to its connection.
// Its zero value is not usable: newSockWriter finds the socket.
type sockWriter struct {
	conn net.Conn
	raw  syscall.RawConn // conn's socket for the non-blocking write; nil: none (TLS, or not Linux)
	out  *burst          // nil between bursts; the stream's goroutine's

	mu   sync.Mutex // holds the stream's writes and the beater's apart (see tryBeat)
	rest []byte     // under mu: what the beater's heartbeat left unwritten, written first
}

func newSockWriter(conn net.Conn) sockWriter { return sockWriter{conn: conn, raw: rawSocket(conn)} }

// buf is the burst's buffer, to append to; a stream with none takes one
// from the pool.
func (w *sockWriter) buf() *[]byte {
	if w.out == nil {
		w.out = bursts.Get().(*burst)
	}
	return &w.out.b
}

// buffered is how many bytes wait for flush.
func (w *sockWriter) buffered() int {
	if w.out == nil {
		return 0
	}
	return len(w.out.b)
}

// flush writes what is buffered and returns the buffer to the pool.
func (w *sockWriter) flush(timeout time.Duration) error {
	b := w.out
	if b == nil {
		return nil
	}
	w.out = nil
	defer b.release()
	return w.send(b, timeout)
}

// discard drops what is buffered.
func (w *sockWriter) discard() {
	if w.out != nil {
		w.out.release()
		w.out = nil
	}
}

// writeNow writes p at once, apart from the burst (a control frame).
func (w *sockWriter) writeNow(p []byte, timeout time.Duration) error {
	b := bursts.Get().(*burst)
	defer b.release()
	b.b = append(b.b, p...)
	return w.send(b, timeout)
}

// send writes b whole, after what a heartbeat left (see tryBeat): as much
// as one non-blocking write takes, the rest under a deadline of now plus
// timeout. Any failure of the non-blocking
// write (a closed connection, a reset) is left to the blocking one, which
// meets it again and reports it as a net.Conn's Write does.
func (w *sockWriter) send(b *burst, timeout time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.rest) > 0 { // rare: a heartbeat the socket took only part of
		rest := bursts.Get().(*burst)
		defer rest.release()
		rest.b, w.rest = append(rest.b, w.rest...), nil
		if err := w.write(rest, timeout); err != nil {
			return err
		}
	}
	return w.write(b, timeout)
}

// tryBeat writes p, a heartbeat's shared bytes, with one non-blocking
// write, from the beater's goroutine, when no write of the stream is under
// way; true when the socket took it whole. When it took only part, the
// rest goes first in the stream's next write, and the stream is to send
// its own heartbeat (false), which makes that write (a second heartbeat
// is harmless; half of one is not).
func (w *sockWriter) tryBeat(p []byte) bool {
	if w.raw == nil || !w.mu.TryLock() {
		return false
	}
	defer w.mu.Unlock()
	if len(w.rest) > 0 {
		return false
	}
	b := bursts.Get().(*burst)
	defer b.release()
	b.b, b.n = append(b.b, p...), 0
	if w.raw.Write(b.try) != nil {
		return false
	}
	if b.n > 0 && b.n < len(p) {
		w.rest = p[b.n:]
	}
	return b.n == len(p)
}

// write writes b whole (see send); under mu.
func (w *sockWriter) write(b *burst, timeout time.Duration) error {
	p := b.b
	if w.raw != nil {
		b.n = 0
		if w.raw.Write(b.try) == nil {
			if b.n == len(p) {
				return nil
			}
			p = p[b.n:]
		}
	}
	if err := w.conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := w.conn.Write(p); err != nil {
		return err
	}
	if w.raw != nil { // a deadline left behind would fail the next non-blocking write once it passes
		return w.conn.SetWriteDeadline(time.Time{})
	}
	return nil
}
