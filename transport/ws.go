package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
)

// MaxClientMessage is the largest message a WebSocket client may send: client
// actions are small; a bigger one closes the connection with 1009.
const MaxClientMessage = 16 << 10

// writeBuffers is gorilla's write buffer pool: with one, it allocates no write
// buffer per connection, and relay never takes one (it writes its frames
// itself; see wsFrame).
var writeBuffers sync.Pool

func isWebSocket(r *http.Request) bool { return websocket.IsWebSocketUpgrade(r) }

func (s *Server) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		// Gorilla reads nothing of a stream (relay reads client frames
		// itself, see ws_read.go): it may keep the reader the hijack hands it.
		ReadBufferSize:  0,
		WriteBufferSize: 4096,
		WriteBufferPool: &writeBuffers,
		CheckOrigin:     func(r *http.Request) bool { return s.originAllowed(r.Header.Get("Origin"), r) },
	}
}

// wsConn is one WebSocket client: the session's goroutine (the handler's
// during history, then one of its own) is its only writer, the reader (see
// read) its only reader, which hands its replies to the writer. After the
// handshake relay speaks the protocol on the connection itself, reading
// (ws_read.go) and writing (below) its frames; gorilla's Conn is not kept.
type wsConn struct {
	srv      *Server
	projects []string // projects whose presence channel this reads
	conn     net.Conn
	frames   *frameWatch // where the socket waits for the client's next frame (see ws_read_linux.go); nil: in a read
	sub      *events.Subscription
	id       *auth.Identity
	cfg      *Config
	quota    *connQuota // the rate of this connection's messages; made on the first (see handle)
	replies  chan reply // answers from the reader, written by the writer
	ss       *session
	open     *openStream
	cancel   context.CancelFunc // ends the session's context
	endRead  func()             // the reader's end (cancel): the client is gone, or the stream closed

	// The reader's own.
	partial  []byte       // a fragmented message's fragments so far
	lastRead atomic.Int64 // when a whole frame last came (UnixNano; see noteRead)
	pingsOut atomic.Int32 // pings relay sent that no pong has answered yet (see answered)
	ended    bool         // a message asked to end the stream: handle nothing more
	closing  atomic.Bool  // the writer is ending the stream: the reader drops messages

	out       sockWriter // frames not yet written, and how they are
	wmu       sync.Mutex // holds flushes and control frames apart (see wsFrame)
	closeSent bool       // under wmu: a close frame went out, nothing follows it
}

// serveWebSocket subscribes (and takes the user online) before it upgrades,
// so every event published after the client has its 101 reaches it. A
// refusal is still sent after the upgrade, as a close code with a reason: an
// HTTP 401 on the handshake reaches JavaScript only as 1006.
//
// Like a hijacked SSE stream, it sends the history from the handler
// goroutine, whose stack the log reads grow, then hands the live session to
// a goroutine of its own and returns: net/http's connection goroutine, its
// buffers and that grown stack are freed, and an idle WebSocket costs one
// small goroutine (the session; on Linux its socket waits for the client's
// next frame in the server's epoll set, with no reader: see read), its
// subscription and little else (write buffers are pooled, and nothing is
// buffered for reading between client frames).
func (s *Server) serveWebSocket(c echo.Context, channels channelsFunc) error {
	if !s.track() { // shutting down: tell the client to go elsewhere
		return s.refuseWebSocket(c, errRestarting)
	}
	o, err := s.open(c, channels)
	if err != nil {
		s.streams.Done()
		return s.refuseWebSocket(c, err)
	}
	conn, err := s.upgrader().Upgrade(c.Response(), c.Request(), nil)
	if err != nil {
		o.close()
		s.streams.Done()
		return nil // the upgrader has answered with an HTTP error
	}
	// The client going away (the reader's end) ends the session, and any
	// log read in progress.
	ctx, cancel := context.WithCancel(context.Background())
	ws := &wsConn{srv: s, conn: conn.NetConn(), sub: o.sub, id: o.id, cfg: &s.cfg, projects: presenceProjects(o.channels),
		replies: make(chan reply), open: o, cancel: cancel, endRead: cancel}
	ws.out = newSockWriter(ws.conn)
	ws.frames = s.watcher.frames(ws)
	_ = ws.conn.SetReadDeadline(time.Time{}) // none is left from the request: silence is timed by heartbeat
	ws.ss = s.newSession(o, ws, ws.replies)
	go ws.read()
	if err := ws.ss.history(ctx); err != nil {
		ws.finish(ctx, err)
		return nil
	}
	ws.noteRead() // the client's silence counts from here, when pings begin
	go ws.live(ctx)
	return nil
}

// live runs the live session, then ends the stream.
func (ws *wsConn) live(ctx context.Context) { ws.ss.run(ctx, func(err error) { ws.finish(ctx, err) }) }

// finish ends the stream: the ending (unless the client is gone), a wait
// of up to closeLinger for the client's answering close (or, for a client
// whose write timed out, a reset instead: see resetOnClose), then the
// connection closed and the reader's end awaited. Meanwhile the replies the
// reader still hands over are dropped. ctx ends with the reader.
func (ws *wsConn) finish(ctx context.Context, err error) {
	ws.closing.Store(true)
	switch sent, stuck := ws.ss.finish(ctx, err); {
	case stuck:
		resetOnClose(ws.conn)
	case sent:
		ws.drainReplies(ctx.Done(), closeLinger)
	}
	if ws.frames.stop() { // no reader runs: its end is this
		ws.endRead()
	}
	ws.conn.Close() // ends the reader, if one runs
	ws.drainReplies(ctx.Done(), 0)
	ws.cancel()
	ws.open.close()
	ws.srv.streams.Done()
}

// closeLinger is how long a close waits for the client's answering close
// frame, reading (and dropping) what it still sends meanwhile. Closed at
// once, a connection the client is still writing to is reset, and a reset
// can discard our close frame before the client reads it: a flooding
// client would see 1006 instead of 4029 and its reason.
const closeLinger = time.Second

// drainReplies waits until the reader ends (readDone), or for at most
// linger when it is not 0, dropping the replies the reader hands over.
func (ws *wsConn) drainReplies(readDone <-chan struct{}, linger time.Duration) {
	var expired <-chan time.Time
	if linger > 0 {
		t := time.NewTimer(linger)
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case <-readDone:
			return
		case <-ws.replies:
		case <-expired:
			return
		}
	}
}

// refuseWebSocket upgrades only to close at once with err's close code and
// reason, which is all a browser can see of a refusal.
func (s *Server) refuseWebSocket(c echo.Context, err error) error {
	conn, uerr := s.upgrader().Upgrade(c.Response(), c.Request(), nil)
	if uerr != nil {
		return nil // the upgrader has answered with an HTTP error
	}
	closeWith(conn, classify(err).close, closeReason(err))
	conn.Close()
	return nil
}

// closeWith sends a close frame; reason is made UTF-8, as a close frame's
// must be, and cut on a character boundary to the 123 bytes one can carry.
func closeWith(conn *websocket.Conn, code int, reason string) error {
	return conn.WriteControl(websocket.CloseMessage, closeMessage(code, reason), time.Now().Add(time.Second))
}

// closeMessage is a close frame's payload: code and reason, the reason made
// UTF-8 and cut to fit.
func closeMessage(code int, reason string) []byte {
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	if len(reason) > 123 {
		reason = strings.ToValidUTF8(reason[:120], "") + "..."
	}
	return websocket.FormatCloseMessage(code, reason)
}

// The session's frames go out through the connection's own write buffer,
// not gorilla's writers: each event's text frame is encoded once for every
// connection (wsFrame), a burst of them is appended to a pooled buffer
// (idle connections hold none) and written in one write on flush
// (sockWriter, as SSE's). No compression is negotiated (the upgrader does not enable
// it); were it ever, these uncompressed frames would still be valid
// (permessage-deflate leaves RSV1 clear on them).
//
// Control frames are written one per write (writeControl): the session's
// close (after a flush of what it has buffered, so it never lands inside
// it), and from the reader goroutine a pong to a client's ping, the answer
// to a client's close and the close for a client's protocol error. wmu
// holds those and every flush apart, so a control frame's deadline never
// cuts short a flush in progress. Every write holds whole frames, so frames
// never interleave.

// wsFrame is an event's message as one unmasked server text frame (RFC 6455
// §5.2: FIN and the text opcode, the payload length, the payload), built
// once per event and shared by every connection (see events.Event.Ext).
func wsFrame(ev *events.Event) any { return appendTextFrame(nil, ev.JSON()) }

func appendTextFrame(b, payload []byte) []byte {
	b = slices.Grow(b, 10+len(payload))
	b = append(b, 0x81) // FIN, opcode 1: text
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
	return append(b, payload...)
}

// start has nothing to send: a WebSocket has no preamble.
func (ws *wsConn) start() error { return nil }

// Event appends the event's shared frame.
func (ws *wsConn) Event(ev *events.Event) error { return ws.write(ev.Ext(wsFrame).([]byte)) }

// Reset tells the client channel's history is gone, with its new position.
func (ws *wsConn) Reset(channel string) error { return ws.text(resetMessage(ws.sub, channel)) }

// welcome tells the client it is live, with its whole cursor, so a client
// that has not received an event on some channel can still resume it.
func (ws *wsConn) welcome(msg []byte) error { return ws.text(msg) }

func (ws *wsConn) reply(msg []byte) error { return ws.text(msg) }

// heartbeat sends a ping frame, after what is buffered, unless the client
// has sent no frame (the pongs included) for two heartbeats and a write
// timeout: a dead peer, whose connection is then closed. The ping goes out
// with the buffer through flush, with no frame of its own on the stack (see
// session.live).
func (ws *wsConn) heartbeat() error {
	if ws.silent() {
		return writeError{errPeerSilent}
	}
	b := ws.out.buf()
	*b = append(*b, pingFrame...)
	ws.pingsOut.Add(1) // before the write: the answer may come before it returns
	return ws.flush()
}

// tryBeat writes a ping on the socket (see sockWriter.tryBeat), unless the
// client has been silent too long (heartbeat ends the stream then), a
// flush or control frame is being written, or the close has gone out.
func (ws *wsConn) tryBeat() bool {
	if ws.silent() {
		return false
	}
	if !ws.wmu.TryLock() {
		return false
	}
	defer ws.wmu.Unlock()
	if ws.closeSent {
		return false
	}
	ws.pingsOut.Add(1) // before the write: the answer may come before it returns
	if !ws.out.tryBeat(pingFrame) {
		ws.pingsOut.Add(-1) // not written: the session's heartbeat sends it
		return false
	}
	return true
}

// answered takes a pong as the answer to one of relay's pings, if one is
// waiting for it: false for a pong no ping asked for, which counts against
// the connection's rate like a message.
func (ws *wsConn) answered() bool {
	for {
		n := ws.pingsOut.Load()
		if n <= 0 {
			return false
		}
		if ws.pingsOut.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// silent reports a client that has sent no frame (the pongs included) for
// two heartbeats and a write timeout.
func (ws *wsConn) silent() bool {
	return time.Duration(time.Now().UnixNano()-ws.lastRead.Load()) > 2*ws.cfg.Heartbeat+ws.cfg.WriteTimeout
}

// errPeerSilent ends a WebSocket whose client answers no ping.
var errPeerSilent = errors.New("websocket: the client answered no ping for two heartbeats and a write timeout")

// pingFrame is an empty server ping (RFC 6455 §5.5.2: FIN, opcode 9).
var pingFrame = []byte{0x80 | websocket.PingMessage, 0}

// end closes with the ending's code and message as the reason, after what
// is buffered.
func (ws *wsConn) end(e ending) error {
	return ws.control(websocket.CloseMessage, closeMessage(e.close, e.message), time.Second)
}

// text appends a text frame of msg (a control message of relay's).
func (ws *wsConn) text(msg []byte) error {
	b := ws.out.buf()
	*b = appendTextFrame(*b, msg)
	return ws.full()
}

// write appends a whole frame.
func (ws *wsConn) write(frame []byte) error {
	b := ws.out.buf()
	*b = append(*b, frame...)
	return ws.full()
}

// full writes the buffer once it holds a burst's worth (maxBurst, as SSE).
func (ws *wsConn) full() error {
	if ws.out.buffered() >= maxBurst {
		return ws.flush()
	}
	return nil
}

// flush writes what is buffered in one write within WriteTimeout and
// returns the buffer to the pool.
func (ws *wsConn) flush() error {
	if ws.out.buffered() == 0 {
		ws.out.discard()
		return nil
	}
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	if ws.closeSent {
		ws.out.discard()
		return writeError{websocket.ErrCloseSent}
	}
	return wsWrite(ws.out.flush(ws.cfg.WriteTimeout))
}

// control flushes what is buffered, then writes a control frame through
// gorilla.
func (ws *wsConn) control(kind int, data []byte, timeout time.Duration) error {
	if err := ws.flush(); err != nil {
		return err
	}
	return wsWrite(ws.writeControl(kind, data, timeout))
}

// writeControl writes a control frame (payload at most 125 bytes) under
// wmu; after a close frame nothing more is written.
func (ws *wsConn) writeControl(kind int, data []byte, timeout time.Duration) error {
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	if ws.closeSent {
		return websocket.ErrCloseSent
	}
	var frame [2 + 125]byte // a control frame's payload is at most 125 bytes (RFC 6455 §5.5)
	b := append(append(frame[:0], 0x80|byte(kind), byte(len(data))), data...)
	if kind == websocket.CloseMessage {
		ws.closeSent = true
	}
	return ws.out.writeNow(b, timeout)
}

// wsWrite marks a failed write as the client's (see writeError).
func wsWrite(err error) error {
	if err != nil {
		return writeError{err}
	}
	return nil
}
