package transport

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"syscall"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
)

// An idle WebSocket's reader waits for the client's next frame here, not in
// gorilla: parked inside gorilla's read path (ReadMessage, NextReader,
// advanceFrame, bufio, net.Conn.Read, the poller) its goroutine needs about
// 1.5 KiB of stack, so it sits on a 4 KiB one; parked in a RawConn.Read it
// fits the 2 KiB a goroutine starts with (and the collector shrinks it back
// there after a client message grew it). The empty pong a client answers
// each ping with is consumed here too, so an idle stream enters gorilla only
// for a frame that is not that pong: a message, a ping, a close.
//
// This works on the socket only because nothing of the stream is buffered
// above it: gorilla reads from a bufio.Reader relay made (see peekHijacker),
// which is checked to be empty before each wait, and the wait happens at a
// frame boundary (after a whole message). A connection where that cannot be
// set up (no syscall.Conn under it: TLS) reads through gorilla alone.

// peekReadBuffer is the size of the bufio.Reader gorilla reads client
// frames through: gorilla takes a hijacked reader only when it is larger
// than 256 bytes (Upgrader.Upgrade, bufioReaderSize), and 288 is the
// smallest allocation size class above that. Client messages are small and
// rare; gorilla reads larger ones through it in pieces.
const peekReadBuffer = 288

// emptyPong is a client's pong with no payload: FIN and opcode 0xA, the
// mask bit and a zero length, then 4 bytes of masking key. A browser
// answers gorilla's empty ping with it.
var emptyPong = [2]byte{0x8A, 0x80}

const emptyPongLen = 6

// upgrade upgrades the connection with gorilla reading through a small
// bufio.Reader of relay's, and returns with it a frameWaiter over the
// socket (nil when the connection has no file descriptor to wait on).
func (s *Server) upgrade(c echo.Context) (*websocket.Conn, *frameWaiter, error) {
	u := s.upgrader()
	u.ReadBufferSize = 0 // take the hijacked reader, which is ours (see peekHijacker)
	h := &peekHijacker{ResponseWriter: c.Response()}
	conn, err := u.Upgrade(h, c.Request(), nil)
	if err != nil || h.br == nil {
		return conn, nil, err
	}
	sc, ok := conn.NetConn().(syscall.Conn)
	if !ok {
		return conn, nil, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return conn, nil, nil
	}
	w := &frameWaiter{raw: raw, br: h.br}
	w.peekFunc = w.peek
	return conn, w, nil
}

// peekHijacker hands gorilla's Upgrade the hijacked connection with a small
// bufio.Reader of relay's in place of net/http's 4 KiB one, so relay knows
// the reader gorilla reads from. When net/http's reader holds bytes (which
// Upgrade refuses anyway) it hands that one through and br stays nil.
type peekHijacker struct {
	http.ResponseWriter
	br *bufio.Reader
}

func (h *peekHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil || rw.Reader.Buffered() > 0 {
		return conn, rw, err
	}
	h.br = bufio.NewReaderSize(conn, peekReadBuffer)
	return conn, bufio.NewReadWriter(h.br, rw.Writer), nil
}

// Unwrap lets http.ResponseController find the writer's other abilities.
func (h *peekHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// frameWaiter waits on a WebSocket's socket for a frame for gorilla. Only
// the reader goroutine uses it.
type frameWaiter struct {
	raw      syscall.RawConn
	br       *bufio.Reader // gorilla's reader: waiting on the socket is right only when it is empty
	peekFunc func(fd uintptr) bool
	peeked   [emptyPongLen]byte
	pong     bool  // peek consumed an empty pong
	err      error // peek could not consume a pong it saw whole
}

// errPongShort: a read of a pong already peeked whole returned less.
var errPongShort = errors.New("websocket: short read of a peeked pong")

// await returns nil when gorilla has a frame to read (or an end of the
// stream to report), consuming empty pongs meanwhile, from gorilla's buffer
// (one that came with the last message) or the socket, and calling onPong
// for each. An error (the read deadline passed, the connection was closed)
// ends the stream as a failed read does. A nil waiter returns at once.
func (w *frameWaiter) await(onPong func() error) error {
	if w == nil {
		return nil
	}
	for {
		if n := w.br.Buffered(); n > 0 {
			p, _ := w.br.Peek(min(n, emptyPongLen))
			if pongPrefix(p) != emptyPongLen {
				return nil // another frame, or part of one: gorilla's
			}
			_, _ = w.br.Discard(emptyPongLen)
		} else {
			w.pong = false
			if err := w.raw.Read(w.peekFunc); err != nil {
				return err
			}
			if w.err != nil {
				return w.err
			}
			if !w.pong {
				return nil
			}
		}
		if err := onPong(); err != nil {
			return err
		}
	}
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

// peek is RawConn.Read's function: true when a frame for gorilla (or an
// end) is there, false to wait for the socket to be readable. RawRead calls
// it before it waits, so it checks readiness itself: a non-blocking peek.
func (w *frameWaiter) peek(fd uintptr) bool {
	for {
		n, _, err := syscall.Recvfrom(int(fd), w.peeked[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil || n == 0: // an error or the end: gorilla reads and reports it
			return true
		}
		switch pongPrefix(w.peeked[:n]) {
		case emptyPongLen:
			return w.consume(int(fd))
		case -1:
			return true // another frame: gorilla's
		}
		return false // the start of an empty pong: wait for the rest
	}
}

// consume reads the empty pong peek saw whole off the socket.
func (w *frameWaiter) consume(fd int) bool {
	for {
		n, err := syscall.Read(fd, w.peeked[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil || n != emptyPongLen {
			w.err = errPongShort
		}
		w.pong = true
		return true
	}
}
