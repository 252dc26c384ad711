package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/relaydev/relay/events"
)

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
	if err := ws.rate().allow(m.Type); err != nil {
		if errors.Is(err, errFlood) {
			ws.logFlood()
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
