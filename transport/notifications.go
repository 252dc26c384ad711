package transport

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/events"
)

// Paging bounds of GET /api/notifications.
const (
	defaultNotificationPage = 50
	maxNotificationPage     = 200
	maxMarkRead             = 1000
)

// getNotifications is GET /api/notifications?limit=&before=: the caller's
// notifications, newest first, each the envelope plus "read".
func (s *Server) getNotifications(c echo.Context) error {
	id, err := s.identify(c.Request())
	if err != nil {
		return err
	}
	limit := defaultNotificationPage
	if raw := c.QueryParam("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxNotificationPage {
			return fmt.Errorf("limit=%q: want 1 to %d: %w", raw, maxNotificationPage, events.ErrInvalid)
		}
		limit = n
	}
	before := c.QueryParam("before")
	if before != "" {
		if _, err := events.ParsePosition(before); err != nil {
			return err
		}
	}
	notes := s.notes
	if notes == nil {
		return fmt.Errorf("notifications are not kept by this relay: %w", events.ErrNotFound)
	}
	page, err := notes.List(c.Request().Context(), id.UserID, before, limit)
	if err != nil {
		return err
	}
	items := make([]json.RawMessage, len(page.Items))
	for i, n := range page.Items {
		items[i] = withRead(n.Envelope, n.Read)
	}
	return c.JSON(http.StatusOK, map[string]any{"notifications": items, "unread_count": page.Unread, "more": page.More})
}

// withRead adds "read" to an envelope: {…,"read":true}.
func withRead(envelope []byte, read bool) json.RawMessage {
	out := make([]byte, 0, len(envelope)+14)
	out = append(out, envelope[:len(envelope)-1]...)
	out = append(out, `,"read":`...)
	out = strconv.AppendBool(out, read)
	return append(out, '}')
}

// markReadBody is POST /api/notifications/read: {"ids":[…]} or {"all":true}.
type markReadBody struct {
	IDs []string `json:"ids"`
	All bool     `json:"all"`
}

func (b markReadBody) check() error {
	switch {
	case b.All && len(b.IDs) > 0:
		return fmt.Errorf(`send either "ids" or "all", not both: %w`, events.ErrInvalid)
	case !b.All && len(b.IDs) == 0:
		return fmt.Errorf(`send {"ids":["<notification id>",…]} or {"all":true}: %w`, events.ErrInvalid)
	case len(b.IDs) > maxMarkRead:
		return fmt.Errorf("at most %d ids per request: %w", maxMarkRead, events.ErrInvalid)
	}
	for _, id := range b.IDs {
		if id == "" || len(id) > 200 {
			return fmt.Errorf("notification id %q must be 1 to 200 characters: %w", id, events.ErrInvalid)
		}
	}
	return nil
}

// postNotificationsRead marks the caller's notifications read.
func (s *Server) postNotificationsRead(c echo.Context) error {
	id, err := s.identify(c.Request())
	if err != nil {
		return err
	}
	if err := s.limits.userAction(s.limits.user(id.UserID)); err != nil {
		return err
	}
	var body markReadBody
	if err := decodeBody(c.Request(), &body, 256<<10); err != nil {
		return err
	}
	if err := body.check(); err != nil {
		return err
	}
	s.webhook.markRead(id.UserID, body.IDs, body.All) // the app's own record, whatever relay keeps
	changed, unread, err := s.hub.MarkRead(c.Request().Context(), id.UserID, body.IDs, body.All)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"ids": changed, "unread_count": unread})
}

// decodeBody reads a JSON request body of at most limit bytes into v.
func decodeBody(r *http.Request, v any, limit int64) error {
	raw, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return readError(err)
	}
	if int64(len(raw)) > limit {
		return fmt.Errorf("body over %d bytes: %w", limit, events.ErrTooLarge)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("body must be a JSON object: %v: %w", err, events.ErrInvalid)
	}
	return nil
}
