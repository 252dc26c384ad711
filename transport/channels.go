package transport

import (
	"context"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
)

// MaxChannels is the most channels one connection may multiplex.
const MaxChannels = 64

// channelsFunc names the channels a stream request asks for.
type channelsFunc func(c echo.Context, id *auth.Identity) ([]string, error)

// notificationsChannel is the caller's own user_{sub}_notifications.
func (s *Server) notificationsChannel(_ echo.Context, id *auth.Identity) ([]string, error) {
	return []string{events.NotificationsChannel(id.UserID)}, nil
}

// projectChannel is one channel of the project in the path's :id.
func (s *Server) projectChannel(name func(string) string) channelsFunc {
	return func(c echo.Context, _ *auth.Identity) ([]string, error) {
		pid := c.Param("id")
		if err := events.ValidateID("project", pid); err != nil {
			return nil, err
		}
		return []string{name(pid)}, nil
	}
}

// queryChannels is every ?channel= of /events, in order, without repeats.
func (s *Server) queryChannels(c echo.Context, _ *auth.Identity) ([]string, error) {
	raw := c.QueryParams()["channel"]
	if len(raw) == 0 {
		return nil, fmt.Errorf("name at least one channel: /events?channel=A&channel=B: %w", events.ErrInvalid)
	}
	if len(raw) > MaxChannels {
		return nil, fmt.Errorf("%d channels asked, at most %d per connection: %w", len(raw), MaxChannels, events.ErrInvalid)
	}
	out := make([]string, 0, len(raw))
	seen := make(map[string]bool, len(raw))
	for _, ch := range raw {
		if err := events.ValidateChannel(ch); err != nil {
			return nil, err
		}
		if !seen[ch] {
			seen[ch] = true
			out = append(out, ch)
		}
	}
	return out, nil
}

// streamRequest is an authenticated, authorized stream request.
type streamRequest struct {
	id       *auth.Identity
	channels []string
	cursor   events.Cursor
}

// prepare authenticates, resolves channels, authorizes them and parses the
// cursor (Last-Event-ID header first, then ?last_event_id=).
func (s *Server) prepare(c echo.Context, channels channelsFunc) (*streamRequest, error) {
	id, err := s.identify(c.Request())
	if err != nil {
		return nil, err
	}
	chans, err := channels(c, id)
	if err != nil {
		return nil, err
	}
	if id, err = s.authorizeChannels(c, id, chans); err != nil {
		return nil, err
	}
	raw := c.Request().Header.Get("Last-Event-ID")
	if raw == "" {
		raw = c.QueryParam("last_event_id")
	}
	cur, err := events.ParseCursor(raw, chans)
	if err != nil {
		return nil, err
	}
	return &streamRequest{id: id, channels: chans, cursor: cur}, nil
}

// openStream is a stream ready to answer: its request, its subscription in
// place (every channel's start position taken) and its user online.
type openStream struct {
	*streamRequest
	sub     *events.Subscription
	live    *liveStream     // in the registry until close
	states  []*events.Event // presence_state messages, sent after history; newSession takes them
	offline func()
	release func() // uncounts the stream from its user's and address's limits
}

// open authenticates and authorizes the request, takes the user online,
// subscribes, and reads the presence states: all before the client has its
// 200 or 101, so that every event published after the client has its answer
// reaches it. The user goes online before the subscription takes its heads,
// so a live-only client is not sent its own join; the states are read after,
// so no presence change falls between them and the live events. The store
// calls are bounded by StoreTimeout. On error nothing is left open.
//
// Every attempt first takes one of its address's connect tokens; an
// authorized stream is then counted against its user's and its address's
// stream limits until close.
func (s *Server) open(c echo.Context, channels channelsFunc) (*openStream, error) {
	ip := clientIP(c.Request(), s.cfg.Limits.TrustProxyHeader)
	if err := s.limits.connectAttempt(ip); err != nil {
		return nil, err
	}
	since := s.registry.mark() // a disconnect from now on covers this stream
	req, err := s.prepare(c, channels)
	if err != nil {
		return nil, err
	}
	release, err := s.limits.admit(req.id.UserID, ip)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.StoreTimeout)
	defer cancel()
	offline, err := s.goOnline(ctx, req)
	if err != nil {
		release()
		return nil, s.storeError(ctx, err)
	}
	sub, err := s.hub.Subscribe(ctx, req.channels, req.cursor)
	if err != nil {
		offline()
		release()
		return nil, s.storeError(ctx, err)
	}
	states, err := s.presenceStates(ctx, req)
	if err != nil {
		sub.Close()
		offline()
		release()
		return nil, s.storeError(ctx, err)
	}
	live, err := s.registry.add(req.id.UserID, req.channels, since)
	if err != nil {
		sub.Close()
		offline()
		release()
		return nil, err
	}
	uncount := release
	release = func() { s.registry.remove(live); uncount() }
	return &openStream{streamRequest: req, sub: sub, live: live, states: states, offline: offline, release: release}, nil
}

// close takes the user offline, ends the subscription and uncounts the
// stream. Every way a stream ends comes through here.
func (o *openStream) close() {
	o.offline()
	o.sub.Close()
	o.release()
}

// stream serves a channel group as WebSocket when the request is an upgrade,
// else as Server-Sent Events; a GET that accepts only JSON gets the access
// check alone (see check).
func (s *Server) stream(channels channelsFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if isWebSocket(c.Request()) {
			return s.serveWebSocket(c, channels)
		}
		if acceptsEventStream(c.Request()) {
			return s.serveSSE(c, channels)
		}
		if acceptsJSON(c.Request()) {
			return s.check(c, channels)
		}
		return echo.NewHTTPError(http.StatusNotAcceptable,
			"this URL serves text/event-stream (send Accept: text/event-stream), a WebSocket upgrade, or with Accept: application/json an access check")
	}
}

// check answers what a stream request would meet, without streaming: 200
// {"channels":[…]} when the token may read them, else the stream's 4xx. An
// EventSource cannot see why it was refused; this lets its page find out.
func (s *Server) check(c echo.Context, channels channelsFunc) error {
	req, err := s.prepare(c, channels)
	if err != nil {
		return err
	}
	if err := s.limits.peek(req.id.UserID, clientIP(c.Request(), s.cfg.Limits.TrustProxyHeader)); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"channels": req.channels})
}

// authorizeChannels refuses channels id's token does not cover, unless the
// app's authorization hook allows them; it returns id, with the name the
// app gave when the token has none.
func (s *Server) authorizeChannels(c echo.Context, id *auth.Identity, chans []string) (*auth.Identity, error) {
	var uncovered []string
	for _, ch := range chans {
		if !id.CanSubscribe(ch) {
			uncovered = append(uncovered, ch)
		}
	}
	if len(uncovered) == 0 {
		return id, nil
	}
	if s.authz == nil {
		return nil, fmt.Errorf("this token may not read channel %s; ask your backend for a token whose projects or subscribe claim covers it: %w", uncovered[0], auth.ErrForbidden)
	}
	name, err := s.authz.check(c.Request().Context(), auth.TokenFromRequest(c.Request()), id, uncovered)
	if err != nil {
		return nil, err
	}
	if id.Name == "" && name != "" {
		cp := *id // the verifier may share id between requests
		cp.Name = name
		id = &cp
	}
	return id, nil
}
