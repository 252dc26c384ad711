package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// A WebSocket's client frames are read here, by relay, not by gorilla:
// gorilla's Upgrade does the handshake, and its Conn (about 450 bytes, with
// the read buffer it reads through, handlers and limits) is dropped as soon
// as it returns. An idle stream then holds no read buffer at all: a frame is
// read with exact reads (its header, then its payload), so nothing is
// buffered above the socket between frames but the few bytes past the pongs
// that the socket's watch read, and the socket can wait for the next frame
// in the server's epoll set (see frameWatch). Client frames are rare
// and small (MaxClientMessage), so the few system calls a frame costs do
// not matter.
//
// What is read follows RFC 6455 for a server that negotiated no extension
// and no subprotocol: every client frame masked (§5.3), reserved bits clear
// (§5.2), control frames whole and at most 125 bytes (§5.5), fragments of
// one message at a time (§5.4), a close answered with a close of its code
// (§5.5.1, §7.4). A violation is closed with 1002 and a reason; a message
// over MaxClientMessage with 1009; a close with a reason that is not UTF-8
// with 1007.

// parking is where a reader goes between frames (see frameWatch.park).
type parking int

const (
	readOn  parking = iota // a frame is there, or the reader waits in its read
	parked                 // the socket waits in the server's set: the reader ends
	stopped                // the reader ends at once, with the stream
)

// read reads client frames until the connection ends, then calls
// ws.endRead; or, between frames, hands the socket to the server's set
// (ws.frames) and ends: the set starts a reader again for the client's next
// frame, so an idle stream keeps no reader, and a message read and handled
// (which grows a goroutine's stack for good) leaves no grown stack behind.
func (ws *wsConn) read() {
	for {
		switch ws.frames.park() {
		case parked:
			return
		case stopped:
			ws.endRead()
			return
		}
		if err := ws.readFrame(); err != nil {
			var ce *closeError
			if errors.As(err, &ce) {
				_ = ws.writeControl(websocket.CloseMessage, closeMessage(ce.code, ce.reason), time.Second)
			}
			ws.endRead()
			return
		}
	}
}

// closeError is a client's violation of the protocol: the reader closes
// with code and reason, then ends.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string { return "websocket: " + e.reason }

func protocolError(reason string) error {
	return &closeError{code: websocket.CloseProtocolError, reason: reason}
}

// errClientClosed ends the reader after a client's close frame, which it
// has answered.
var errClientClosed = errors.New("websocket: the client closed the connection")

// readFrame reads one client frame and handles it: it returns an error
// when the connection is to end.
func (ws *wsConn) readFrame() error {
	var h [14]byte
	if err := ws.readFull(h[:2]); err != nil {
		return err
	}
	fin, op, masked := h[0]&0x80 != 0, int(h[0]&0x0f), h[1]&0x80 != 0
	switch {
	case h[0]&0x70 != 0:
		return protocolError("reserved bits set: relay negotiates no extension")
	case !masked:
		return protocolError("client frames must be masked")
	case op >= websocket.CloseMessage && (!fin || h[1]&0x7f > 125):
		return protocolError("a control frame must be whole and at most 125 bytes")
	}
	ext := 0 // bytes of extended payload length
	switch h[1] & 0x7f {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	if err := ws.readFull(h[2 : 2+ext+4]); err != nil {
		return err
	}
	var n uint64
	switch ext {
	case 0:
		n = uint64(h[1] & 0x7f)
	case 2:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
	case 8:
		n = binary.BigEndian.Uint64(h[2:])
	}
	if op < websocket.CloseMessage && n > uint64(MaxClientMessage-len(ws.partial)) {
		return &closeError{code: websocket.CloseMessageTooBig,
			reason: "message over " + strconv.Itoa(MaxClientMessage) + " bytes"}
	}
	payload := make([]byte, n)
	if err := ws.readFull(payload); err != nil {
		return err
	}
	key := h[2+ext : 2+ext+4]
	for i := range payload {
		payload[i] ^= key[i&3]
	}
	ws.noteRead()
	return ws.frame(op, fin, payload)
}

// readFull reads len(p) bytes of the client's frames: first those its
// socket's watch read past the pongs it consumed, then the connection's.
func (ws *wsConn) readFull(p []byte) error {
	n := ws.frames.take(p)
	if n == len(p) {
		return nil
	}
	_, err := io.ReadFull(ws.conn, p[n:])
	return err
}

// frame handles a client frame read whole. Pings, pongs that answer no ping
// of relay's, and fragments but a message's last (which handle counts) count
// against the connection's rate, as messages do: one over it is dropped (a
// ping goes unanswered), and a client that goes on is closed with 4029.
func (ws *wsConn) frame(op int, fin bool, payload []byte) error {
	if ws.dropped(op, fin) {
		return nil
	}
	switch op {
	case websocket.PongMessage:
		return nil
	case websocket.PingMessage:
		err := ws.writeControl(websocket.PongMessage, payload, time.Second)
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) && !timedOut(err) {
			return err
		}
		return nil
	case websocket.CloseMessage:
		return ws.clientClose(payload)
	case websocket.TextMessage, websocket.BinaryMessage:
		if ws.partial != nil {
			return protocolError("a new message began before the last one's final fragment")
		}
		if fin {
			ws.message(payload)
			return nil
		}
		ws.partial = payload
		return nil
	case 0: // a continuation
		if ws.partial == nil {
			return protocolError("a continuation frame with no message to continue")
		}
		ws.partial = append(ws.partial, payload...)
		if !fin {
			return nil
		}
		msg := ws.partial
		ws.partial = nil
		ws.message(msg)
		return nil
	}
	return protocolError("unknown opcode " + strconv.Itoa(op))
}

// clientClose answers a client's close frame with a close of its code
// (none when it gave none), unless its payload breaks the rules.
func (ws *wsConn) clientClose(payload []byte) error {
	code := websocket.CloseNoStatusReceived
	switch {
	case len(payload) == 1:
		return protocolError("a close frame's payload must hold a 2-byte code")
	case len(payload) >= 2:
		code = int(binary.BigEndian.Uint16(payload))
		if !validCloseCode(code) {
			return protocolError("invalid close code " + strconv.Itoa(code))
		}
		if !utf8.Valid(payload[2:]) {
			return &closeError{code: websocket.CloseInvalidFramePayloadData, reason: "a close reason must be UTF-8"}
		}
	}
	_ = ws.writeControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Second)
	return errClientClosed
}

// validCloseCode reports whether a peer may send code in a close frame (RFC
// 6455 §7.4, and the IANA registry): the defined codes a peer may send, and
// 3000-4999 for libraries and applications.
func validCloseCode(code int) bool {
	switch {
	case code >= 3000 && code <= 4999:
		return true
	case code == websocket.CloseNoStatusReceived, code == websocket.CloseAbnormalClosure, code == websocket.CloseTLSHandshake:
		return false
	}
	return code >= websocket.CloseNormalClosure && code <= websocket.CloseTryAgainLater && code != 1004
}

// noteRead records that a whole frame came from the client: it is alive.
// The reader sets no read deadline (a deadline per pong is a timer moved
// per stream and heartbeat); the writer checks this at each heartbeat
// instead (see wsConn.heartbeat), and closing the connection ends a read.
func (ws *wsConn) noteRead() { ws.lastRead.Store(time.Now().UnixNano()) }

// dropped takes a frame from the connection's rate when it counts against
// it (see frame), and reports whether the frame is to be dropped: it was
// over the rate, or the client is flooding, and the writer is told to close.
func (ws *wsConn) dropped(op int, fin bool) bool {
	switch {
	case op == websocket.PongMessage && ws.answered(),
		op == websocket.CloseMessage,
		fin && (op == websocket.TextMessage || op == websocket.BinaryMessage || op == 0):
		return false
	}
	err := ws.rate().allow("")
	if errors.Is(err, errFlood) {
		ws.flood(err)
	}
	return err != nil
}

// rate is the connection's quota, made when its client first sends what
// counts against it: most streams never do.
func (ws *wsConn) rate() *connQuota {
	if ws.quota == nil {
		ws.quota = ws.srv.limits.conn(ws.id.UserID)
	}
	return ws.quota
}

// message handles a client message and hands its reply to the writer.
// Once the writer is ending the stream (closing), or a message asked to
// end it (ended), what still comes until the client's close is dropped.
func (ws *wsConn) message(msg []byte) {
	if ws.ended || ws.closing.Load() {
		return
	}
	r := ws.handle(msg)
	if r.msg == nil && r.err == nil {
		return
	}
	ws.hand(r)
}

// hand gives the writer a reply; one with an error ends the stream, and
// the reader handles nothing more.
func (ws *wsConn) hand(r reply) {
	ws.ended = r.err != nil
	ws.replies <- r // the writer takes it, or drains it once ending (see drainReplies)
}

// flood tells the writer to close a client that goes on past its rate
// (err is errFlood's), once; what comes after is dropped.
func (ws *wsConn) flood(err error) {
	if ws.ended || ws.closing.Load() {
		return
	}
	ws.logFlood()
	ws.hand(reply{err: err})
}

func (ws *wsConn) logFlood() {
	ws.srv.logger.Warn("websocket client flooding past its rate limit; closing it",
		"transport", transportWS, "user", ws.id.UserID, "limit", ws.cfg.Limits.ActionRate)
}
