package transport

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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
		ReadBufferSize:  128, // client messages are small and rare (on Linux, upgrade gives gorilla a reader of its own)
		WriteBufferSize: 4096,
		WriteBufferPool: &writeBuffers,
		CheckOrigin:     func(r *http.Request) bool { return s.originAllowed(r.Header.Get("Origin"), r) },
	}
}

// wsConn is one WebSocket client: the session's goroutine (the handler's
// during history, then one of its own) is its only writer, readLoop (see read) its only reader, which hands its replies to
// the writer.
type wsConn struct {
	srv      *Server
	projects []string // projects whose presence channel this reads
	conn     *websocket.Conn
	frames   *frameWaiter // where the reader waits for the client's next frame (see ws_read_linux.go); nil: in gorilla
	sub      *events.Subscription
	id       *auth.Identity
	cfg      *Config
	log      *slog.Logger
	quota    *connQuota    // the rate of this connection's messages; made on the first (see handle)
	replies  chan reply    // answers from the reader, written by the writer
	quit     chan struct{} // closed when the writer is done

	buf       *[]byte    // frames not yet written; nil between bursts
	wmu       sync.Mutex // holds flushes and gorilla's control frames apart (see wsFrame)
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
// buffers and that grown stack are freed, and an idle WebSocket costs two
// small goroutines (the session, and the reader, which waits on a 2 KiB
// stack: see read), its subscription, a small read buffer and little else
// (write buffers are pooled).
func (s *Server) serveWebSocket(c echo.Context, channels channelsFunc) error {
	if !s.track() { // shutting down: tell the client to go elsewhere
		return s.refuseWebSocket(c, errRestarting)
	}
	o, err := s.open(c, channels)
	if err != nil {
		s.streams.Done()
		return s.refuseWebSocket(c, err)
	}
	conn, frames, err := s.upgrade(c)
	if err != nil {
		o.close()
		s.streams.Done()
		return nil // the upgrader has answered with an HTTP error
	}

	log := s.logger.With("transport", "websocket", "user", o.id.UserID)
	ws := &wsConn{srv: s, conn: conn, frames: frames, sub: o.sub, id: o.id, cfg: &s.cfg, projects: presenceProjects(o.channels),
		log: log, replies: make(chan reply, 1), quit: make(chan struct{})}
	ss := s.newSession(o, ws, log, ws.replies)
	// The client going away (the reader's end) ends the session, and any
	// log read in progress.
	ctx, cancel := context.WithCancel(context.Background())
	readDone := make(chan struct{})
	ws.startReading()
	go ws.read(func() {
		cancel()
		close(readDone)
	})
	finish := func(err error) {
		close(ws.quit)
		switch sent, stuck := ss.finish(ctx, err); {
		case stuck:
			resetOnClose(conn.NetConn())
		case sent:
			lingerClose(readDone)
		}
		conn.Close() // ends readLoop
		<-readDone
		cancel()
		o.close()
		s.streams.Done()
	}
	if err := ss.history(ctx); err != nil {
		finish(err)
		return nil
	}
	go func() { finish(ss.live(ctx)) }()
	return nil
}

// closeLinger is how long a close waits for the client's answering close
// frame, reading (and dropping) what it still sends meanwhile. Closed at
// once, a connection the client is still writing to is reset, and a reset
// can discard our close frame before the client reads it: a flooding
// client would see 1006 instead of 4029 and its reason.
const closeLinger = time.Second

func lingerClose(readDone <-chan struct{}) {
	t := time.NewTimer(closeLinger)
	defer t.Stop()
	select {
	case <-readDone:
	case <-t.C:
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
// (idle connections hold none) and written in one Write on flush, with one
// deadline. No compression is negotiated (the upgrader does not enable
// it); were it ever, these uncompressed frames would still be valid
// (permessage-deflate leaves RSV1 clear on them).
//
// Gorilla still writes control frames: the session's close (after a flush
// of what it has buffered, so it never lands inside it), and from
// the reader goroutine a pong to a client's ping and the answer to a
// client's close. wmu holds those two and every flush apart, so a control
// frame's deadline never cuts short a flush in progress. Every Write holds
// whole frames, so frames never interleave. Gorilla's own protocol-error
// closes (a client message over the read limit, a malformed frame) bypass
// wmu; the connection ends right after them.

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

// heartbeat sends a ping frame, after what is buffered; the reader's pong
// handler extends its deadline. The ping goes out with the buffer through
// flush rather than through gorilla's WriteControl, whose frames (and its
// timer) would grow the idle session's stack past 2 KiB (see session.live).
func (ws *wsConn) heartbeat() error {
	ws.take()
	*ws.buf = append(*ws.buf, pingFrame...)
	return ws.flush()
}

// pingFrame is an empty server ping (RFC 6455 §5.5.2: FIN, opcode 9).
var pingFrame = []byte{0x80 | websocket.PingMessage, 0}

// end closes with the ending's code and message as the reason, after what
// is buffered.
func (ws *wsConn) end(e ending) error {
	return ws.control(websocket.CloseMessage, closeMessage(e.close, e.message), time.Second)
}

// text appends a text frame of msg (a control message of relay's).
func (ws *wsConn) text(msg []byte) error {
	ws.take()
	*ws.buf = appendTextFrame(*ws.buf, msg)
	return ws.full()
}

// write appends a whole frame.
func (ws *wsConn) write(frame []byte) error {
	ws.take()
	*ws.buf = append(*ws.buf, frame...)
	return ws.full()
}

func (ws *wsConn) take() {
	if ws.buf == nil {
		ws.buf = streamBuffers.Get().(*[]byte)
	}
}

// full writes the buffer once it holds a burst's worth (maxBurst, as SSE).
func (ws *wsConn) full() error {
	if len(*ws.buf) >= maxBurst {
		return ws.flush()
	}
	return nil
}

// flush writes what is buffered in one Write under a fresh deadline and
// returns the buffer to the pool.
func (ws *wsConn) flush() error {
	if ws.buf == nil {
		return nil
	}
	buf := ws.buf
	ws.buf = nil
	defer func() {
		if cap(*buf) <= maxPooled {
			*buf = (*buf)[:0]
			streamBuffers.Put(buf)
		}
	}()
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	if ws.closeSent {
		return writeError{websocket.ErrCloseSent}
	}
	conn := ws.conn.NetConn()
	if err := conn.SetWriteDeadline(time.Now().Add(ws.cfg.WriteTimeout)); err != nil {
		return writeError{err}
	}
	_, err := conn.Write(*buf)
	return wsWrite(err)
}

// control flushes what is buffered, then writes a control frame through
// gorilla.
func (ws *wsConn) control(kind int, data []byte, timeout time.Duration) error {
	if err := ws.flush(); err != nil {
		return err
	}
	return wsWrite(ws.writeControl(kind, data, timeout))
}

// writeControl writes a control frame under wmu; after a close frame
// nothing more is written.
func (ws *wsConn) writeControl(kind int, data []byte, timeout time.Duration) error {
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	if ws.closeSent {
		return websocket.ErrCloseSent
	}
	err := ws.conn.WriteControl(kind, data, time.Now().Add(timeout))
	if kind == websocket.CloseMessage {
		ws.closeSent = true
	}
	return err
}

// wsWrite marks a failed write as the client's (see writeError).
func wsWrite(err error) error {
	if err != nil {
		return writeError{err}
	}
	return nil
}

// startReading sets up the reader: the read limit, a read deadline that
// pongs extend, so a dead peer is noticed after two missed pings, and the
// answers to a client's ping and close.
func (ws *wsConn) startReading() {
	ws.conn.SetReadLimit(MaxClientMessage)
	_ = ws.extendRead()
	ws.conn.SetPongHandler(func(string) error { return ws.extendRead() })
	// A client's ping and close are answered from here, as gorilla does,
	// but under wmu: never while the writer's flush is on the wire.
	ws.conn.SetPingHandler(func(data string) error {
		err := ws.writeControl(websocket.PongMessage, []byte(data), time.Second)
		var ne net.Error
		if err == nil || errors.Is(err, websocket.ErrCloseSent) || errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		return err
	})
	ws.conn.SetCloseHandler(func(code int, _ string) error {
		_ = ws.writeControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Second)
		return nil
	})
}

// extendRead gives the client two heartbeats and a write timeout more to
// send its next frame.
func (ws *wsConn) extendRead() error {
	return ws.conn.SetReadDeadline(time.Now().Add(2*ws.cfg.Heartbeat + ws.cfg.WriteTimeout))
}

// read runs readLoop until the connection ends, then calls end. Waiting
// in ws.frames, a reader's stack is the 2 KiB a goroutine starts with; a
// message read through gorilla and handled grows it for good (the
// collector does not shrink a stack below 4 KiB with anything on it), so
// after each message a fresh goroutine takes over the waiting: one reader
// at a time, each starting the next as its last act.
func (ws *wsConn) read(end func()) {
	if ws.readLoop() {
		go ws.read(end)
		return
	}
	end()
}

// readLoop reads client messages until the connection ends (false), or,
// with ws.frames, until it has handled one (true). Between messages it
// waits in ws.frames, which consumes the client's empty pongs itself.
func (ws *wsConn) readLoop() (more bool) {
	for {
		if err := ws.frames.await(ws.extendRead); err != nil {
			return false
		}
		_, msg, err := ws.conn.ReadMessage()
		if err != nil {
			return false
		}
		ws.message(msg)
		if ws.frames != nil {
			return true
		}
	}
}

// message handles a client message and hands its reply to the writer.
func (ws *wsConn) message(msg []byte) {
	select {
	case <-ws.quit: // closing: drop what still comes until the client's close
		return
	default:
	}
	_ = ws.extendRead()
	r := ws.handle(msg)
	if r.msg == nil && r.err == nil {
		return
	}
	select {
	case ws.replies <- r:
	case <-ws.quit:
		return
	}
	if r.err != nil { // the writer closes: handle nothing more
		<-ws.quit
	}
}

// clientMessage is what WebSocket clients send: {"type": …, …}.
type clientMessage struct {
	action
	Timestamp json.RawMessage `json:"timestamp,omitempty"`
	ID        json.RawMessage `json:"id"` // a string, or a number (a notification's numeric data.id)
}

// id returns the message's "id" as text: a string's value, a number's digits.
func (m clientMessage) id() string {
	var s string
	if err := json.Unmarshal(m.ID, &s); err == nil {
		return s
	}
	if _, err := strconv.ParseInt(string(m.ID), 10, 64); err == nil {
		return string(m.ID)
	}
	return ""
}

// handle answers one client message: an empty reply when there is nothing
// to say. Every message counts against the connection's rate, and actions
// against the user's too: one over it is dropped with a rate_limited error,
// and a connection that goes on flooding is closed with 4029.
func (ws *wsConn) handle(raw []byte) reply {
	var m clientMessage
	perr := json.Unmarshal(raw, &m)
	if ws.quota == nil { // most streams never send a message: they need no rate limiters
		ws.quota = ws.srv.limits.conn(ws.id.UserID)
	}
	if err := ws.quota.allow(m.Type); err != nil {
		if errors.Is(err, errFlood) {
			ws.log.Warn("websocket client flooding past its rate limit; closing it", "limit", ws.cfg.Limits.ActionRate)
			return reply{err: err}
		}
		f := classify(err)
		return reply{msg: events.Control("error", "error", f.code, "message", message(err, f), "request", m.Type)}
	}
	if perr != nil || m.Type == "" {
		return reply{msg: events.Control("error", "error", "bad_request",
			"message", `send a JSON object with a "type", e.g. {"type":"ping","timestamp":123}`)}
	}
	if err := events.ValidateUnicode(raw); err != nil { // a ping's timestamp is echoed as sent
		err = fmt.Errorf("message %w", err)
		return reply{msg: events.Control("error", "error", "bad_request", "message", message(err, classify(err)))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), ws.cfg.WriteTimeout)
	defer cancel()
	var err error
	switch m.Type {
	case "ping":
		out, _ := json.Marshal(struct {
			Type      string          `json:"type"`
			Timestamp json.RawMessage `json:"timestamp,omitempty"`
		}{"pong", m.Timestamp})
		return reply{msg: out}
	case "typing", "viewing":
		var project string
		if project, err = ws.project(m.action); err == nil {
			err = ws.srv.act(ctx, ws.id, project, m.action)
		}
	case "mark_read":
		if id := m.id(); id == "" {
			err = fmt.Errorf(`mark_read needs the notification's "id", a string or a whole number: %w`, events.ErrInvalid)
		} else {
			ws.srv.webhook.markRead(ws.id.UserID, []string{id}, false)
			_, _, err = ws.srv.hub.MarkRead(ctx, ws.id.UserID, []string{id}, false)
		}
	default:
		err = fmt.Errorf("relay does not know message type %q: %w", m.Type, events.ErrInvalid)
		return reply{msg: events.Control("error", "error", "unknown_type", "message", message(err, classify(err)))}
	}
	if err != nil {
		f := classify(err)
		return reply{msg: events.Control("error", "error", f.code, "message", message(err, f), "request", m.Type)}
	}
	return reply{}
}

// project is the project a presence action is for: its project_id, or the
// connection's one presence channel.
func (ws *wsConn) project(a action) (string, error) {
	p, err := a.project()
	switch {
	case err != nil:
		return "", err
	case p != "":
		return p, nil
	case len(ws.projects) == 1:
		return ws.projects[0], nil
	}
	return "", fmt.Errorf(`say which project: add "project_id" (this connection reads %d presence channels): %w`, len(ws.projects), events.ErrInvalid)
}
