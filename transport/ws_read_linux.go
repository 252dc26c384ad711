package transport

import "syscall"

// Between a WebSocket client's frames no goroutine of the stream waits for
// the next one: the reader puts the socket in the server's epoll set
// (sockWatcher) and ends, and the set's goroutine starts a reader again
// when a frame other than an empty pong comes (a message, a ping, a close),
// or the client goes away. The empty pong a client answers each ping with
// is consumed by the set's goroutine itself, with the other pongs of that
// heartbeat's slot, so an idle stream holds only its session's goroutine,
// as an SSE stream does, and a pong wakes no goroutine of its own. It
// consumes only pongs that answer a ping of relay's (wsConn.answered): any
// other is the reader's, which counts it against the connection's rate, so
// a client that floods pongs is closed, not served by the set.
//
// This works on the socket only because nothing of the stream is buffered
// above it but what the watch holds: relay reads client frames with exact
// reads (see ws_read.go), the watch begins at a frame boundary, and the
// bytes the watch read past the pongs (at most 7: the start of the next
// frame) are the first the reader reads. A connection with no socket of its
// own (TLS) keeps a reader goroutine waiting in its read.

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
	held    [emptyPongLen + 1]byte // read off the socket past the pongs consumed: the next frame's start
	nheld   int                    // how many bytes of held are
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

// park is the reader's, between frames: it consumes the empty pongs there
// that answer relay's pings, and returns readOn when a frame (or the end of the stream) is there to
// read, parked when the socket is now in the set (the reader ends: the set
// starts another for the next frame), or stopped when the stream is ending.
// A nil watch returns readOn: the reader waits in its read.
func (w *frameWatch) park() parking {
	if w == nil {
		return readOn
	}
	frame := false
	if err := w.raw.Control(func(fd uintptr) { frame = w.scan(int(fd)) }); err != nil {
		return readOn // closed: the read reports it
	}
	if frame {
		return readOn
	}
	w.g.mu.Lock()
	defer w.g.mu.Unlock()
	if w.stopped {
		return stopped
	}
	id, ok := w.g.add(w) // a frame that came since the scan is reported at once
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

// ready is the set's, under its lock: it consumes the pongs that answer
// relay's pings and starts a reader when anything else came (the watch then
// ends).
func (w *frameWatch) ready(uint32) (bool, func()) {
	if !w.scan(w.fd) {
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

// scan reports whether a frame to read (or an end) is on the socket, the
// bytes held first: it reads what came, without waiting, and consumes (and
// notes) the empty pongs at its front that answer relay's pings; a pong
// that answers none is a frame for the reader. Each read asks for more than a pong, so
// one that returns less has emptied the socket, and scan then reports none
// without a read that would find nothing: what comes after it is reported
// by the set, to which the socket is then added (epoll reports a socket
// already readable when it is added) or in which it stays (an
// edge-triggered set reports each arrival after epoll_wait has returned).
// An idle stream's pong thus costs one read.
func (w *frameWatch) scan(fd int) bool {
	emptied := false
	for {
		for w.nheld >= emptyPongLen && pongPrefix(w.held[:w.nheld]) == emptyPongLen {
			if !w.ws.answered() {
				return true // a pong no ping asked for: the reader reads and counts it
			}
			w.nheld = copy(w.held[:], w.held[emptyPongLen:w.nheld])
			w.ws.noteRead()
		}
		switch {
		case pongPrefix(w.held[:w.nheld]) < 0:
			return true // another frame: readFrame reads it
		case emptied:
			return false // nothing more, or the start of a pong: wait for the rest
		}
		n, err := syscall.Read(fd, w.held[w.nheld:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil || n == 0: // an error or the end: the read reports it
			return true
		}
		emptied = n < len(w.held)-w.nheld
		w.nheld += n
	}
}

// take moves the bytes held into p, for the reader, and returns how many.
func (w *frameWatch) take(p []byte) int {
	if w == nil || w.nheld == 0 {
		return 0
	}
	n := copy(p, w.held[:w.nheld])
	w.nheld = copy(w.held[:], w.held[n:w.nheld])
	return n
}
