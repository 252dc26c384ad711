package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
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

var writeBuffers sync.Pool // shared write buffers: idle connections hold none

func isWebSocket(r *http.Request) bool { return websocket.IsWebSocketUpgrade(r) }

func (s *Server) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		ReadBufferSize:  128, // client messages are small and rare; gorilla reads larger ones straight through
		WriteBufferSize: 4096,
		WriteBufferPool: &writeBuffers,
		CheckOrigin:     func(r *http.Request) bool { return s.originAllowed(r.Header.Get("Origin"), r) },
	}
}

// wsConn is one WebSocket client: the session's goroutine (the handler's
// during history, then one of its own) is its only writer, readLoop its only reader, which hands its replies to
// the writer.
type wsConn struct {
	srv      *Server
	projects []string // projects whose presence channel this reads
	conn     *websocket.Conn
	sub      *events.Subscription
	id       *auth.Identity
	cfg      *Config
	log      *slog.Logger
	quota    *connQuota    // the rate of this connection's messages; made on the first (see handle)
	replies  chan reply    // answers from the reader, written by the writer
	quit     chan struct{} // closed when the writer is done
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
// small goroutines (the session, and the reader), its subscription, gorilla's
// small read buffer and little else (write buffers are pooled).
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

	log := s.logger.With("transport", "websocket", "user", o.id.UserID)
	ws := &wsConn{srv: s, conn: conn, sub: o.sub, id: o.id, cfg: &s.cfg, projects: presenceProjects(o.channels),
		log: log, replies: make(chan reply, 1), quit: make(chan struct{})}
	ss := s.newSession(o, ws, log, ws.replies)
	// The client going away (the reader's end) ends the session, and any
	// log read in progress.
	ctx, cancel := context.WithCancel(context.Background())
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer cancel()
		ws.readLoop()
	}()
	finish := func(err error) {
		close(ws.quit)
		if _, sent := ss.finish(ctx, err); sent {
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
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	if len(reason) > 123 {
		reason = strings.ToValidUTF8(reason[:120], "") + "..."
	}
	msg := websocket.FormatCloseMessage(code, reason)
	return conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
}

func (ws *wsConn) deadline() { _ = ws.conn.SetWriteDeadline(time.Now().Add(ws.cfg.WriteTimeout)) }

// start sets the first write deadline; a WebSocket has no preamble.
func (ws *wsConn) start() error { ws.deadline(); return nil }

// prepared builds an event's WebSocket message once for all connections.
func prepared(ev *events.Event) any {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, ev.JSON())
	if err != nil { // only fails on a bad message type
		panic(err)
	}
	return pm
}

// Event writes the event's shared prepared message.
func (ws *wsConn) Event(ev *events.Event) error {
	ws.deadline()
	return wsWrite(ws.conn.WritePreparedMessage(ev.Ext(prepared).(*websocket.PreparedMessage)))
}

// Reset tells the client channel's history is gone, with its new position.
func (ws *wsConn) Reset(channel string) error { return ws.text(resetMessage(ws.sub, channel)) }

// welcome tells the client it is live, with its whole cursor, so a client
// that has not received an event on some channel can still resume it.
func (ws *wsConn) welcome(msg []byte) error { return ws.text(msg) }

func (ws *wsConn) reply(msg []byte) error { return ws.text(msg) }

// heartbeat sends a ping frame; the reader's pong handler extends its
// deadline.
func (ws *wsConn) heartbeat() error {
	return wsWrite(ws.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(ws.cfg.WriteTimeout)))
}

// flush has nothing to do: every message is written whole.
func (ws *wsConn) flush() error { return nil }

// end closes with the ending's code and message as the reason.
func (ws *wsConn) end(e ending) error { return wsWrite(closeWith(ws.conn, e.close, e.message)) }

func (ws *wsConn) text(msg []byte) error {
	ws.deadline()
	return wsWrite(ws.conn.WriteMessage(websocket.TextMessage, msg))
}

// wsWrite marks a failed write as the client's (see writeError).
func wsWrite(err error) error {
	if err != nil {
		return writeError{err}
	}
	return nil
}

// readLoop reads client messages until the connection ends; pongs extend
// the read deadline, so a dead peer is noticed after two missed pings.
func (ws *wsConn) readLoop() {
	wait := 2*ws.cfg.Heartbeat + ws.cfg.WriteTimeout
	ws.conn.SetReadLimit(MaxClientMessage)
	_ = ws.conn.SetReadDeadline(time.Now().Add(wait))
	ws.conn.SetPongHandler(func(string) error { return ws.conn.SetReadDeadline(time.Now().Add(wait)) })
	for {
		_, msg, err := ws.conn.ReadMessage()
		if err != nil {
			return
		}
		select {
		case <-ws.quit: // closing: drop what still comes until the client's close
			continue
		default:
		}
		_ = ws.conn.SetReadDeadline(time.Now().Add(wait))
		r := ws.handle(msg)
		if r.msg == nil && r.err == nil {
			continue
		}
		select {
		case ws.replies <- r:
		case <-ws.quit:
			continue
		}
		if r.err != nil { // the writer closes: handle nothing more
			<-ws.quit
		}
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
