package transport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
)

// WebSocket close codes relay sends. Browsers may only see 1000 and
// 3000-4999 from an application, so refusals use the 4000 range; 4001 and
// 4003 are the codes the Django Channels clients already handle.
const (
	CloseBadRequest   = 4000 // malformed cursor, channel or message
	CloseUnauthorized = 4001 // no token, or an invalid one: fetch a token, reconnect
	CloseTokenExpired = 4002 // the token expired during the connection: refresh, resume
	CloseForbidden    = 4003 // the token does not allow this channel: do not retry
	CloseNotFound     = 4004 // no such endpoint or resource
	CloseSlowConsumer = 4008 // fell behind its buffer: reconnect with the cursor
	CloseRateLimited  = 4029 // too many connections or messages: reconnect later, slower
	CloseGoingAway    = 1001 // the server is shutting down: reconnect elsewhere
	CloseTooBig       = 1009 // a message over the size limit
	CloseInternal     = 1011 // a server fault
	CloseTryAgain     = 1013 // the store is unavailable: reconnect after a pause
)

// failure is how one kind of error looks on the wire.
type failure struct {
	status int
	code   string
	close  int
	hint   string // a close reason short enough for a close frame
}

// failures maps relay's sentinel errors to HTTP statuses, JSON error codes
// and WebSocket close codes, in one place. The first match wins.
var failures = []struct {
	err error
	failure
}{
	{auth.ErrTokenExpired, failure{http.StatusUnauthorized, "token_expired", CloseUnauthorized,
		"token expired: fetch a fresh token and reconnect"}},
	{auth.ErrUnauthenticated, failure{http.StatusUnauthorized, "unauthorized", CloseUnauthorized,
		"unauthorized: send a valid token as ?token="}},
	{auth.ErrForbidden, failure{http.StatusForbidden, "forbidden", CloseForbidden,
		"forbidden: this token may not read this channel"}},
	{ErrTooManyConnections, failure{http.StatusTooManyRequests, "too_many_connections", CloseRateLimited,
		"too many connections: close one, or multiplex channels on one connection"}},
	{ErrRateLimited, failure{http.StatusTooManyRequests, "rate_limited", CloseRateLimited,
		"rate limited: reconnect later, and send less"}},
	{errBodyTimeout, failure{http.StatusRequestTimeout, "request_timeout", CloseBadRequest, ""}},
	{events.ErrInvalid, failure{http.StatusBadRequest, "bad_request", CloseBadRequest, ""}},
	{events.ErrTooLarge, failure{http.StatusRequestEntityTooLarge, "payload_too_large", CloseTooBig, ""}},
	{events.ErrNotFound, failure{http.StatusNotFound, "not_found", CloseNotFound, ""}},
	{events.ErrSlowConsumer, failure{http.StatusServiceUnavailable, "slow_consumer", CloseSlowConsumer,
		"you fell behind the event rate; reconnect with last_event_id"}},
	{events.ErrUnavailable, failure{http.StatusServiceUnavailable, "store_unavailable", CloseTryAgain,
		"relay's store is unavailable; retry shortly with last_event_id"}},
	{events.ErrClosed, failure{http.StatusServiceUnavailable, "shutting_down", CloseGoingAway,
		"relay is restarting; reconnect with last_event_id"}},
}

var internal = failure{http.StatusInternalServerError, "internal", CloseInternal,
	"relay failed; reconnect with last_event_id"}

func classify(err error) failure {
	for _, f := range failures {
		if errors.Is(err, f.err) {
			return f.failure
		}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return failure{status: he.Code, code: httpCode(he.Code), close: CloseBadRequest}
	}
	return internal
}

func httpCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusNotAcceptable:
		return "not_acceptable"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type"
	}
	if status >= 500 {
		return "internal"
	}
	return "bad_request"
}

// errorBody is every error answer: {"error": code, "message": what to do}.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// message is the text a client sees: the error's own words for errors of the
// table (they say what to do next), a generic one for faults.
func message(err error, f failure) string {
	if f == internal {
		return "relay failed to answer; retry, and if it persists check relay's log"
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if m, ok := he.Message.(string); ok {
			return m
		}
		return http.StatusText(he.Code)
	}
	// The sentinel at the end of the chain is for code, not for people.
	msg := err.Error()
	for _, f := range failures {
		if errors.Is(err, f.err) {
			return strings.TrimSuffix(msg, ": "+f.err.Error())
		}
	}
	return msg
}

// closeReason is the message, or the failure's hint when the message is over
// the 123 bytes a close frame can carry.
func closeReason(err error) string {
	f := classify(err)
	msg := message(err, f)
	if len(msg) <= 123 {
		return msg
	}
	if f.hint != "" {
		return f.hint
	}
	return strings.ToValidUTF8(msg[:120], "") + "..." // not in the middle of a character
}

// handleError is Echo's one error handler: it maps err once and logs faults.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	f := classify(err)
	if f.status >= 500 && f != classify(events.ErrClosed) {
		s.logger.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	}
	if ra := retryAfter(err); ra != "" {
		c.Response().Header().Set("Retry-After", ra)
	}
	_ = c.JSON(f.status, errorBody{Error: f.code, Message: message(err, f)})
}

// storeError reports a store call that ran out of StoreTimeout as
// ErrUnavailable (the store did not answer in time), and logs what the store
// said; other errors pass unchanged.
func (s *Server) storeError(ctx context.Context, err error) error {
	if errors.Is(err, events.ErrUnavailable) || !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return err
	}
	s.logger.Warn("store did not answer in time", "timeout", s.cfg.StoreTimeout, "err", err)
	return fmt.Errorf("relay's store did not answer within %v; retry shortly: %w", s.cfg.StoreTimeout, events.ErrUnavailable)
}
