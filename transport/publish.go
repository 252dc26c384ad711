package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
// the log, with the ids subscribers will see, and within StoreTimeout.
//
// An idempotency key (the Idempotency-Key header for a single event, an
// idempotency_key member per event) makes a retry safe: a key its channel
// has seen within events.IdempotencyWindow stores nothing and answers the
// first publish's id, in the same body, with Idempotent-Replayed: true when
// every event of the request was such a repeat.
func (s *Server) publish(c echo.Context) error {
	id, body, err := s.publisherRequest(c)
	if err != nil {
		return err
	}
	drafts, batch, err := s.parsePublish(body, id)
	if err != nil {
		return err
	}
	if err := headerKey(c.Request().Header, drafts, batch); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.StoreTimeout)
	defer cancel()
	evs, err := s.hub.Publish(ctx, drafts...)
	if err != nil {
		return s.publishFailed(c, s.storeError(ctx, err))
	}
	replayed := true
	for _, ev := range evs {
		replayed = replayed && ev.Repeat
	}
	if replayed {
		c.Response().Header().Set(HeaderIdempotentReplayed, "true")
	}
	if !batch && c.Request().URL.RawQuery == "" { // no ?pretty: the bytes c.JSON writes, without reflection
		body := make([]byte, 0, 16+len(evs[0].ID()))
		body = append(append(append(body, `{"id":"`...), evs[0].ID()...), "\"}\n"...) // an id is letters, digits and '-'
		return c.JSONBlob(http.StatusOK, body)
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

// The idempotency headers of the publish API.
const (
	HeaderIdempotencyKey     = "Idempotency-Key"
	HeaderIdempotentReplayed = "Idempotent-Replayed"
)

// headerKey applies the Idempotency-Key header to a single event's draft.
// A batch carries its keys in its events, one each.
func headerKey(h http.Header, drafts []events.Draft, batch bool) error {
	vals := h.Values(HeaderIdempotencyKey)
	switch {
	case len(vals) == 0:
		return nil
	case batch:
		return fmt.Errorf("the %s header is for a single event; in a batch put an \"idempotency_key\" member in each event: %w", HeaderIdempotencyKey, events.ErrInvalid)
	case len(vals) > 1:
		return fmt.Errorf("send one %s header, not %d: %w", HeaderIdempotencyKey, len(vals), events.ErrInvalid)
	}
	key := vals[0]
	if err := events.ValidateIdempotencyKey(key); err != nil {
		return fmt.Errorf("%s header: %w", HeaderIdempotencyKey, err)
	}
	if k := drafts[0].IdempotencyKey; k != "" && k != key {
		return fmt.Errorf("the %s header and the event's \"idempotency_key\" differ; send one of them: %w", HeaderIdempotencyKey, events.ErrInvalid)
	}
	drafts[0].IdempotencyKey = key
	return nil
}

// publishFailed answers a failed publish. When the store is unavailable the
// outcome is unknown: the answer says so, and asks for a retry, after
// Retry-After, with the same idempotency keys.
func (s *Server) publishFailed(c echo.Context, err error) error {
	if !errors.Is(err, events.ErrUnavailable) {
		return err
	}
	s.logger.Warn("publish: store unavailable; the outcome is unknown", "err", err)
	c.Response().Header().Set("Retry-After", "1")
	f := classify(err)
	return c.JSON(f.status, errorBody{Error: f.code, Message: "relay's store did not answer: the events may or may not be stored. " +
		"Retry shortly with the same idempotency key (the Idempotency-Key header, or each event's idempotency_key) so nothing is stored twice"})
}

// readBody reads at most one full batch of maximal events.
func (s *Server) readBody(r *http.Request) ([]byte, error) {
	limit := int64(s.cfg.MaxPayload) * 16
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, readError(err)
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
			return nil, batch, atIndex(notAllowed(id, d.Channel), i, batch)
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

// notAllowed says why id may not publish to channel, and what to change.
func notAllowed(id *auth.Identity, channel string) error {
	if id.PublishKey != "" {
		return fmt.Errorf("publish key %s may not publish to %s; add a pattern that covers it to its entry in RELAY_PUBLISH_KEYS: %w", id.PublishKey, channel, auth.ErrForbidden)
	}
	return fmt.Errorf("this token may not publish to %s; its publish claim must list a pattern that covers it: %w", channel, auth.ErrForbidden)
}

// publisherRequest authenticates a backend's request (a publish key or a
// token with a publish claim) and reads its body, for the routes authorized
// like publishing.
func (s *Server) publisherRequest(c echo.Context) (*auth.Identity, []byte, error) {
	id, err := s.identifyPublisher(c.Request())
	if err != nil {
		return nil, nil, err
	}
	body, err := s.readBody(c.Request())
	if err != nil {
		return nil, nil, err
	}
	return id, body, nil
}
