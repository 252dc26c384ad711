package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
)

// ControlChannel carries POST /api/disconnect to every relay process: an
// ephemeral {"type":"disconnect","user_id":…,"channels":[…]} broadcast
// through the store (Redis Pub/Sub with Redis; in memory, this process).
// Only ephemeral events of type "disconnect" on it are acted on.
const ControlChannel = "relay.control"

// errAccessEnded ends a stream the app's backend cut off: 4003 / an SSE
// "forbidden" ending, so the client does not reconnect by itself.
var errAccessEnded = errors.New("access ended by the app's backend")

// backendRoutes registers the server API the app's backend calls.
func (s *Server) backendRoutes(e *echo.Echo) {
	e.GET("/api/channels/:channel/cursor", s.getCursor)
	e.POST("/api/disconnect", s.postDisconnect)
}

// getCursor is GET /api/channels/{channel}/cursor: the channel's head, for
// state then stream. Authorized like publishing.
func (s *Server) getCursor(c echo.Context) error {
	id, err := s.identifyPublisher(c.Request())
	if err != nil {
		return err
	}
	ch := c.Param("channel")
	if err := events.ValidateChannel(ch); err != nil {
		return err
	}
	if !id.CanPublish(ch) {
		return notAllowed(id, ch)
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.StoreTimeout)
	defer cancel()
	pos, err := s.hub.Head(ctx, ch)
	if err != nil {
		return s.storeError(ctx, err)
	}
	return c.JSON(http.StatusOK, map[string]string{"channel": ch, "cursor": pos.String()})
}

// disconnectRequest is POST /api/disconnect's body, and the control message.
type disconnectRequest struct {
	Type     string   `json:"type,omitempty"`
	UserID   string   `json:"user_id"`
	Channels []string `json:"channels,omitempty"`
}

// postDisconnect is POST /api/disconnect: ends a user's streams (all, or
// those reading any of channels) on this process and, through the store's
// broadcast, on every other; drops the user's cached authorization answers.
// It answers this process's count.
func (s *Server) postDisconnect(c echo.Context) error {
	id, body, err := s.publisherRequest(c)
	if err != nil {
		return err
	}
	var req disconnectRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf(`body must be {"user_id": "1"} or {"user_id": "1", "channels": [...]}: %w`, events.ErrInvalid)
	}
	if err := s.authorizeDisconnect(id, req); err != nil {
		return err
	}
	n := s.disconnectLocal(req)
	msg, _ := json.Marshal(disconnectRequest{Type: "disconnect", UserID: req.UserID, Channels: req.Channels})
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.StoreTimeout)
	defer cancel()
	d := events.Draft{Channel: ControlChannel, Type: "disconnect", Fields: msg[1 : len(msg)-1]}
	if err := s.hub.Broadcast(ctx, d); err != nil {
		s.logger.Warn("disconnect: ended this process's streams, but could not tell the other relay processes", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]any{"error": "store_unavailable", "disconnected": n,
			"message": "this relay's streams of the user ended, but the store did not carry the disconnect to other relay processes; retry"})
	}
	return c.JSON(http.StatusOK, map[string]int{"disconnected": n})
}

// authorizeDisconnect checks the request and the caller's right: a whole-user
// disconnect needs a credential covering user_{id}_notifications, a
// per-channel one each named channel.
func (s *Server) authorizeDisconnect(id *auth.Identity, req disconnectRequest) error {
	if err := events.ValidateID("user", req.UserID); err != nil {
		return err
	}
	if len(req.Channels) > MaxChannels {
		return fmt.Errorf("at most %d channels per disconnect: %w", MaxChannels, events.ErrInvalid)
	}
	for _, ch := range req.Channels {
		if err := events.ValidateChannel(ch); err != nil {
			return err
		}
	}
	need := req.Channels
	if len(need) == 0 {
		need = []string{events.NotificationsChannel(req.UserID)}
	}
	for _, ch := range need {
		if !id.CanPublish(ch) {
			return notAllowed(id, ch)
		}
	}
	return nil
}

// disconnectLocal ends the request's streams of this process.
func (s *Server) disconnectLocal(req disconnectRequest) int {
	s.authz.forget(req.UserID, req.Channels)
	why := "the app's backend ended your session; do not reconnect with this token"
	if len(req.Channels) > 0 {
		why = "the app's backend ended your access to this channel; do not reconnect to it"
	}
	return s.registry.disconnect(req.UserID, req.Channels, fmt.Errorf("%s: %w", why, errAccessEnded))
}

// controlRetry is the pause before the control listener subscribes again.
const controlRetry = time.Second

// listenControl acts on the disconnects other processes broadcast, until
// Shutdown or the hub closes. Its own broadcasts come back too: ending a
// stream twice is a no-op.
func (s *Server) listenControl(sub *events.Subscription, err error) {
	defer close(s.controlDone)
	for {
		if sub == nil && err == nil {
			sub, err = s.subscribeControl()
		}
		if errors.Is(err, events.ErrClosed) {
			return
		}
		if err == nil {
			err = s.readControl(sub)
			sub.Close()
			if err == nil {
				return
			}
		}
		sub = nil
		s.logger.Warn("control channel: disconnects from other relay processes may be missed; subscribing again", "err", err)
		select {
		case <-s.shutdown:
			return
		case <-time.After(controlRetry):
		}
		err = nil
	}
}

// subscribeControl subscribes to ControlChannel. With a cursor for the
// channel it makes no store call (no head to read), so NewServer can call
// it; since Replay is never called, only live events come.
func (s *Server) subscribeControl() (*events.Subscription, error) {
	return s.hub.Subscribe(context.Background(), []string{ControlChannel}, events.Cursor{ControlChannel: events.Beginning})
}

// readControl reads sub until Shutdown (nil), or until it ends (its error;
// nil when the hub closed).
func (s *Server) readControl(sub *events.Subscription) error {
	var batch []*events.Event
	for {
		select {
		case <-s.shutdown:
			return nil
		case <-sub.Done():
			if err := sub.Err(); err != nil && !errors.Is(err, events.ErrClosed) {
				return err
			}
			return nil
		case <-sub.Ready():
			batch = sub.Take(batch)
			for _, ev := range batch {
				s.controlEvent(ev)
			}
		}
	}
}

// controlEvent acts on one event of ControlChannel: a disconnect request
// from another relay process.
func (s *Server) controlEvent(ev *events.Event) {
	if ev == nil || !ev.Ephemeral || ev.Type != "disconnect" {
		return
	}
	var req disconnectRequest
	if err := json.Unmarshal(append(append([]byte{'{'}, ev.Fields...), '}'), &req); err != nil || req.UserID == "" {
		s.logger.Warn("control channel: malformed disconnect ignored", "err", err)
		return
	}
	if n := s.disconnectLocal(req); n > 0 {
		s.logger.Info("streams ended by a disconnect from another relay process", "user", req.UserID, "streams", n)
	}
}
