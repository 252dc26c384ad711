package transport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
)

// MaxBatch is the most events one publish request may carry.
const MaxBatch = 1000

// publish is POST /api/publish: one event object, or an array of them. Every
// event is validated before any is stored; the answer comes once all are in
// the log, with the ids subscribers will see.
func (s *Server) publish(c echo.Context) error {
	id, err := s.identify(c.Request())
	if err != nil {
		return err
	}
	body, err := s.readBody(c.Request())
	if err != nil {
		return err
	}
	drafts, batch, err := s.parsePublish(body, id)
	if err != nil {
		return err
	}
	evs, err := s.hub.Publish(c.Request().Context(), drafts...)
	if err != nil {
		return err
	}
	if !batch {
		return c.JSON(http.StatusOK, map[string]string{"id": evs[0].ID()})
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID()
	}
	return c.JSON(http.StatusOK, map[string][]string{"ids": ids})
}

// readBody reads at most one full batch of maximal events.
func (s *Server) readBody(r *http.Request) ([]byte, error) {
	limit := int64(s.cfg.MaxPayload) * 16
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %v: %w", err, events.ErrInvalid)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("request body over %d bytes; send fewer events per request: %w", limit, events.ErrTooLarge)
	}
	return body, nil
}

// parsePublish validates the body and the caller's right to each channel.
func (s *Server) parsePublish(body []byte, id *auth.Identity) ([]events.Draft, bool, error) {
	body = bytes.TrimSpace(body)
	raws := []json.RawMessage{body}
	batch := len(body) > 0 && body[0] == '['
	if batch {
		raws = nil
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, true, fmt.Errorf("body must be an event object or a JSON array of them: %w", events.ErrInvalid)
		}
		if len(raws) == 0 || len(raws) > MaxBatch {
			return nil, true, fmt.Errorf("a batch holds 1 to %d events, not %d: %w", MaxBatch, len(raws), events.ErrInvalid)
		}
	}
	drafts := make([]events.Draft, len(raws))
	for i, raw := range raws {
		d, err := events.ParseDraft(raw, s.cfg.MaxPayload)
		if err != nil {
			return nil, batch, atIndex(err, i, batch)
		}
		if !id.CanPublish(d.Channel) {
			return nil, batch, atIndex(fmt.Errorf("this token may not publish to %s; its publish claim must list a pattern that covers it: %w", d.Channel, auth.ErrForbidden), i, batch)
		}
		drafts[i] = d
	}
	return drafts, batch, nil
}

func atIndex(err error, i int, batch bool) error {
	if !batch {
		return err
	}
	return fmt.Errorf("event %d: %w", i, err)
}
