package transport

import (
	"errors"
	"syscall"
)

// Between a WebSocket client's frames no goroutine of the stream waits for
// the next one: the reader puts the socket in the server's epoll set
// (sockWatcher) and ends, and the set's goroutine starts a reader again
// when a frame other than an empty pong comes (a message, a ping, a close),
// or the client goes away. The empty pong a client answers each ping with
// is consumed by the set's goroutine itself, with the other pongs of that
// heartbeat's slot, so an idle stream holds only its session's goroutine,
// as an SSE stream does, and a pong wakes no goroutine of its own.
//
// This works on the socket only because nothing of the stream is buffered
// above it: relay reads client frames with exact reads (see ws_read.go),
// and the watch begins at a frame boundary. A connection with no socket of
// its own (TLS) keeps a reader goroutine waiting in its read.

// emptyPong is a client's pong with no payload: FIN and opcode 0xA, the
// mask bit and a zero length, then 4 bytes of masking key. A browser
// answers relay's empty ping with it.
var emptyPong = [2]byte{0x8A, 0x80}

const emptyPongLen = 6

// frameWatch is a WebSocket's socket between client frames: in the set
// (parked) while no reader runs. Its descriptor is used raw only under the
// set's lock while the stream has not stopped it, or in RawConn.Control by
// the reader: the stream closes its connection only after stop.
type frameWatch struct {
	g       *sockWatcher
	ws      *wsConn
	raw     syscall.RawConn
	fd      int
	id      uint64                 // its number in the set, while parked
	parked  bool                   // under g.mu: in the set, and no reader runs
	stopped bool                   // under g.mu: the stream is ending, nothing parks again
	resume  func()                 // starts a reader: the set's goroutine calls it after a frame came
	err     error                  // peek could not read a pong it saw whole
	peeked  [emptyPongLen + 1]byte // a pong, and whether anything follows it
}

// frames joins ws's socket to the set; nil when its connection has no
// socket of its own (TLS), or the system refuses the set: the reader then
// waits in its read.
func (g *sockWatcher) frames(ws *wsConn) *frameWatch {
	raw, fd := socketFD(ws.conn)
	if fd < 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.join() {
		return nil
	}
	w := &frameWatch{g: g, ws: ws, raw: raw, fd: fd}
	w.resume = func() { go ws.read() }
	return w
}

// errPongShort: a read of a pong already peeked whole returned less.
var errPongShort = errors.New("websocket: short read of a peeked pong")

// park is the reader's, between frames: it consumes the empty pongs there,
// and returns readOn when a frame (or the end of the stream) is there to
// read, parked when the socket is now in the set (the reader ends: the set
// starts another for the next frame), or stopped when the reader is to end
// at once (the stream is ending, or a pong could not be read whole). A nil
// watch returns readOn: the reader waits in its read.
func (w *frameWatch) park() parking {
	if w == nil {
		return readOn
	}
	frame := false
	if err := w.raw.Control(func(fd uintptr) { frame = w.peek(int(fd), -1) }); err != nil {
		return readOn // closed: the read reports it
	}
	if w.err != nil {
		return stopped
	}
	if frame {
		return readOn
	}
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	if w.stopped {
		return stopped
	}
	id, ok := w.g.add(w) // a frame that came since the peek is reported at once
	if !ok {
		return readOn
	}
	w.id, w.parked = id, true
	return parked
}

// stop takes the socket out of the set before the stream closes its
// connection, and reports whether it was parked: then no reader runs, and
// the reader's end is the caller's to call.
func (w *frameWatch) stop() (wasParked bool) {
	if w == nil {
		return false
	}
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	if w.stopped {
		return false
	}
	w.stopped = true
	if w.parked {
		w.g.remove(w.id)
		w.parked, wasParked = false, true
	}
	w.g.leave()
	return wasParked
}

func (w *frameWatch) socket() int { return w.fd }

// ready is the set's, under its lock: it consumes the pongs that came and
// starts a reader when anything else did (the watch then ends), or when
// more than maxWatchedPongs did: a client that floods pongs spends its own
// reader's time, not the set's.
func (w *frameWatch) ready(uint32) (bool, func()) {
	if !w.peek(w.fd, maxWatchedPongs) && w.err == nil {
		return false, nil
	}
	w.parked = false
	return true, w.resume
}

// pongPrefix is how many bytes of p begin an empty pong: emptyPongLen for a
// whole one, len(p) for the start of one, -1 for another frame.
func pongPrefix(p []byte) int {
	for i := 0; i < len(p) && i < len(emptyPong); i++ {
		if p[i] != emptyPong[i] {
			return -1
		}
	}
	return min(len(p), emptyPongLen)
}

// maxWatchedPongs is the most pongs the set consumes for one socket in one
// wake: a client answers each heartbeat's ping with one.
const maxWatchedPongs = 4

// peek reports whether a frame to read (or an end) is on the socket, with
// non-blocking peeks; an empty pong is consumed (and noted) here, up to
// pongs of them (-1: any number; past them peek reports a frame). When
// nothing followed the pong, it reports none without a peek that would
// find nothing: whatever comes after the peek is reported by the set, to
// which the socket is then added (epoll reports a socket already readable
// when it is added) or in which it stays (an edge-triggered set reports
// each arrival after epoll_wait has returned).
func (w *frameWatch) peek(fd int, pongs int) bool {
	for {
		n, _, err := syscall.Recvfrom(fd, w.peeked[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil || n == 0: // an error or the end: the read reports it
			return true
		}
		switch pongPrefix(w.peeked[:n]) {
		case emptyPongLen:
			if pongs == 0 {
				return true // the reader consumes the rest
			}
			pongs--
			if !w.consume(fd) {
				return true // park reports w.err
			}
			if n == emptyPongLen {
				return false // the pong alone: wait for the next frame
			}
			continue // something follows it: look at it
		case -1:
			return true // another frame: readFrame reads it
		}
		return false // the start of an empty pong: wait for the rest
	}
}

// consume reads the empty pong peek saw whole off the socket and notes the
// client alive; false (w.err set) when the read returns less.
func (w *frameWatch) consume(fd int) bool {
	for {
		n, err := syscall.Read(fd, w.peeked[:emptyPongLen])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n != emptyPongLen {
			w.err = errPongShort
			return false
		}
		w.ws.noteRead()
		return true
	}
}
