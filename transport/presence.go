package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
)

// Presence is who is online where; *events.Tracker is the one relay uses.
type Presence interface {
	Connect(ctx context.Context, project, userID, name string) (release func(), err error)
	Typing(ctx context.Context, project, userID, name string, ticket int64, on bool) error
	Viewing(ctx context.Context, project, userID, name string, ticket *int64) error
	Page(ctx context.Context, project, after string, limit int) (events.PresencePage, error)
	State(ctx context.Context, project string) (*events.Event, error)
}

// presenceProjects are the projects whose presence channel req reads.
func presenceProjects(channels []string) []string {
	var out []string
	for _, ch := range channels {
		if p, ok := events.ProjectOf(ch); ok && ch == events.PresenceChannel(p) {
			out = append(out, p)
		}
	}
	return out
}

// goOnline marks the user online in every project whose presence channel
// the stream reads, and returns the release to call when the stream ends.
func (s *Server) goOnline(ctx context.Context, req *streamRequest) (func(), error) {
	projects := presenceProjects(req.channels)
	if s.presence == nil || len(projects) == 0 {
		return func() {}, nil
	}
	var releases []func()
	release := func() {
		for _, r := range releases {
			r()
		}
	}
	for _, p := range projects {
		r, err := s.presence.Connect(ctx, p, req.id.UserID, req.id.Name)
		if err != nil {
			release()
			return nil, err
		}
		releases = append(releases, r)
	}
	return release, nil
}

// presenceStates returns the presence_state messages to send after history,
// one per project whose presence channel the stream reads.
func (s *Server) presenceStates(ctx context.Context, req *streamRequest) ([]*events.Event, error) {
	projects := presenceProjects(req.channels)
	if s.presence == nil || len(projects) == 0 {
		return nil, nil
	}
	states := make([]*events.Event, 0, len(projects))
	for _, p := range projects {
		st, err := s.presence.State(ctx, p)
		if err != nil {
			return nil, err
		}
		states = append(states, st)
	}
	return states, nil
}

// action is a client's presence action: typing or viewing.
type action struct {
	Type      string          `json:"type"`
	ProjectID json.RawMessage `json:"project_id"`
	TicketID  json.RawMessage `json:"ticket_id"`
	IsTyping  *bool           `json:"is_typing"`
}

// ticket reads ticket_id: a whole number, or null/absent (nil).
func (a action) ticket() (*int64, error) {
	if len(a.TicketID) == 0 || string(a.TicketID) == "null" {
		return nil, nil
	}
	n, err := strconv.ParseInt(string(a.TicketID), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("ticket_id %s must be a whole number or null: %w", a.TicketID, events.ErrInvalid)
	}
	return &n, nil
}

// project reads project_id, a number or a string; "" when absent.
func (a action) project() (string, error) {
	if len(a.ProjectID) == 0 || string(a.ProjectID) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(a.ProjectID, &s); err != nil {
		s = string(a.ProjectID)
	}
	if err := events.ValidateID("project", s); err != nil {
		return "", err
	}
	return s, nil
}

// act applies a typing or viewing action of id in project.
func (s *Server) act(ctx context.Context, id *auth.Identity, project string, a action) error {
	if s.presence == nil {
		return fmt.Errorf("presence is not enabled on this relay: %w", events.ErrNotFound)
	}
	if !id.CanSubscribe(events.PresenceChannel(project)) {
		return fmt.Errorf("this token may not join project %s: %w", project, auth.ErrForbidden)
	}
	ticket, err := a.ticket()
	if err != nil {
		return err
	}
	switch a.Type {
	case "typing":
		if ticket == nil || a.IsTyping == nil {
			return fmt.Errorf(`typing needs "ticket_id" and "is_typing": %w`, events.ErrInvalid)
		}
		if s.limits.typingRepeat(id.UserID, project, *ticket, *a.IsTyping) {
			return nil // just applied: not re-broadcast
		}
		if err := s.presence.Typing(ctx, project, id.UserID, id.Name, *ticket, *a.IsTyping); err != nil {
			return err
		}
		s.limits.typingApplied(id.UserID, project, *ticket, *a.IsTyping)
		return nil
	case "viewing":
		return s.presence.Viewing(ctx, project, id.UserID, id.Name, ticket)
	}
	return fmt.Errorf(`presence action type %q: use "typing" or "viewing": %w`, a.Type, events.ErrInvalid)
}

// projectParam reads and checks the :id of a project route.
func projectParam(c echo.Context, id *auth.Identity) (string, error) {
	pid := c.Param("id")
	if err := events.ValidateID("project", pid); err != nil {
		return "", err
	}
	if !id.CanSubscribe(events.PresenceChannel(pid)) {
		return "", fmt.Errorf("this token may not see project %s: %w", pid, auth.ErrForbidden)
	}
	return pid, nil
}

// postPresence is POST /api/projects/{id}/presence: a typing or viewing
// action for clients that cannot send on their stream (SSE).
func (s *Server) postPresence(c echo.Context) error {
	id, err := s.identify(c.Request())
	if err != nil {
		return err
	}
	pid, err := projectParam(c, id)
	if err != nil {
		return err
	}
	if err := s.limits.userAction(s.limits.user(id.UserID)); err != nil {
		return err
	}
	var a action
	if err := decodeBody(c.Request(), &a, 4<<10); err != nil {
		return err
	}
	if err := s.act(c.Request().Context(), id, pid, a); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// getPresence is GET /api/projects/{id}/presence?limit=&after=: who is
// online now, a page at a time, ordered by user id (as bytes); after is the
// user_id of the last user of the previous page (or of presence_state).
func (s *Server) getPresence(c echo.Context) error {
	id, err := s.identify(c.Request())
	if err != nil {
		return err
	}
	pid, err := projectParam(c, id)
	if err != nil {
		return err
	}
	if s.presence == nil {
		return fmt.Errorf("presence is not enabled on this relay: %w", events.ErrNotFound)
	}
	limit := events.DefaultPresencePage
	if raw := c.QueryParam("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > events.MaxPresencePage {
			return fmt.Errorf("limit=%q: want 1 to %d: %w", raw, events.MaxPresencePage, events.ErrInvalid)
		}
		limit = n
	}
	after := c.QueryParam("after")
	if after != "" {
		if err := events.ValidateID("after: user", after); err != nil {
			return err
		}
	}
	page, err := s.presence.Page(c.Request().Context(), pid, after, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct {
		ProjectID string `json:"project_id"`
		events.PresencePage
	}{pid, page})
}
