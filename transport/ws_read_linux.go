package transport

import (
	"errors"
	"net"
	"syscall"
)

// An idle WebSocket's reader waits for the client's next frame here, on
// the socket, not in a blocking read: parked in a RawConn.Read its
// goroutine fits the 2 KiB a goroutine starts with (and the collector
// shrinks it back there after a client message grew it). The empty pong a
// client answers each ping with is consumed here too, so an idle stream
// reads a frame (readFrame) only when it is not that pong: a message, a
// ping, a close.
//
// This works on the socket only because nothing of the stream is buffered
// above it: relay reads client frames with exact reads (see ws_read.go),
// and the wait happens at a frame boundary. A connection with no
// syscall.Conn under it (TLS) waits in its read instead.

// emptyPong is a client's pong with no payload: FIN and opcode 0xA, the
// mask bit and a zero length, then 4 bytes of masking key. A browser
// answers relay's empty ping with it.
var emptyPong = [2]byte{0x8A, 0x80}

const emptyPongLen = 6

// newFrameWaiter returns a frameWaiter over conn's socket, or nil when
// conn has no file descriptor to wait on.
func newFrameWaiter(conn net.Conn) *frameWaiter {
	raw := rawSocket(conn)
	if raw == nil {
		return nil
	}
	w := &frameWaiter{raw: raw}
	w.peekFunc = w.peek
	return w
}

// frameWaiter waits on a WebSocket's socket for a frame to read. Only
// the reader goroutine uses it.
type frameWaiter struct {
	raw      syscall.RawConn
	peekFunc func(fd uintptr) bool
	onPong   func() error           // await's, for peek
	peeked   [emptyPongLen + 1]byte // a pong, and whether anything follows it
	err      error                  // peek could not consume a pong it saw whole, or onPong failed
}

// errPongShort: a read of a pong already peeked whole returned less.
var errPongShort = errors.New("websocket: short read of a peeked pong")

// await returns nil when a frame is there to read (or an end of the
// stream to report), consuming empty pongs meanwhile and calling onPong for
// each. An error (the connection was closed) ends
// the stream as a failed read does. A nil waiter returns at once.
func (w *frameWaiter) await(onPong func() error) error {
	if w == nil {
		return nil
	}
	w.onPong = onPong
	if err := w.raw.Read(w.peekFunc); err != nil {
		return err
	}
	return w.err
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

// peek is RawConn.Read's function: true when a frame to read (or an
// end) is there, false to wait for the socket to be readable. RawRead calls
// it before it waits, so it checks readiness itself: a non-blocking peek.
// An empty pong is consumed (and onPong called) here; when nothing followed
// it, peek waits again at once, without a peek that would find nothing:
// RawRead's wait returns for whatever came since RawRead began (its poll
// descriptor keeps that readiness), so a frame that came after the peek
// is not missed.
func (w *frameWaiter) peek(fd uintptr) bool {
	for {
		n, _, err := syscall.Recvfrom(int(fd), w.peeked[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
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
			if !w.consume(int(fd)) {
				return true // the read reports w.err
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

// consume reads the empty pong peek saw whole off the socket and calls
// onPong; false (w.err set) when either fails.
func (w *frameWaiter) consume(fd int) bool {
	for {
		n, err := syscall.Read(fd, w.peeked[:emptyPongLen])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n != emptyPongLen {
			w.err = errPongShort
			return false
		}
		w.err = w.onPong()
		return w.err == nil
	}
}
