package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
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

// failure is how one kind of error looks on the wire: as a refusal (an HTTP
// status and JSON code, or a WebSocket close at connect) and, for the errors
// that end a stream once it is live, as that ending (see ending).
type failure struct {
	status int
	code   string
	close  int    // the close code refusing a WebSocket with this error
	hint   string // a close reason short enough for a close frame
	// end is the SSE event ending a live stream with this error (""
	// ends it with "error"); endClose the WebSocket close code of that
	// ending (0: close). The two differ where a refusal and an ending ask
	// different things of the client: an expired token is refused with
	// 4001 (get a token) but ends a live stream with 4002 (refresh, then
	// resume from the cursor).
	end      string
	endClose int
	retry    retryHint // the SSE retry hint of the ending
	// reason names a stream ended by this error in the relay.disconnect
	// log line and relay_disconnects_total ("": reasonError).
	reason string
}

// retryHint is the reconnect delay an SSE stream's ending sends.
type retryHint uint8

const (
	retryNone   retryHint = iota // no retry line: the browser's own delay
	retryBase                    // Config.Retry
	retrySpread                  // a shutdown's: Config.Retry, after an ending spread over Config.ShutdownSpread
)

// failures maps relay's sentinel errors to HTTP statuses, JSON error codes,
// WebSocket close codes and stream endings, in one place. The first match
// wins.
var failures = []struct {
	err error
	failure
}{
	{auth.ErrTokenExpired, failure{status: http.StatusUnauthorized, code: "token_expired", close: CloseUnauthorized,
		hint: "token expired: fetch a fresh token and reconnect",
		end:  "token_expired", endClose: CloseTokenExpired, reason: reasonTokenExpired}},
	{auth.ErrUnauthenticated, failure{status: http.StatusUnauthorized, code: "unauthorized", close: CloseUnauthorized,
		hint: "unauthorized: send a valid token as ?token="}},
	{errAccessEnded, failure{status: http.StatusForbidden, code: "forbidden", close: CloseForbidden,
		hint: "forbidden: the app's backend ended your access", end: "forbidden", endClose: CloseForbidden}},
	{auth.ErrForbidden, failure{status: http.StatusForbidden, code: "forbidden", close: CloseForbidden,
		hint: "forbidden: this token may not read this channel"}},
	{ErrTooManyConnections, failure{status: http.StatusTooManyRequests, code: "too_many_connections", close: CloseRateLimited,
		hint: "too many connections: close one, or multiplex channels on one connection", reason: reasonRateLimited}},
	{ErrRateLimited, failure{status: http.StatusTooManyRequests, code: "rate_limited", close: CloseRateLimited,
		hint: "rate limited: reconnect later, and send less", reason: reasonRateLimited}},
	{errBodyTimeout, failure{status: http.StatusRequestTimeout, code: "request_timeout", close: CloseBadRequest}},
	{events.ErrInvalid, failure{status: http.StatusBadRequest, code: "bad_request", close: CloseBadRequest}},
	{events.ErrTooLarge, failure{status: http.StatusRequestEntityTooLarge, code: "payload_too_large", close: CloseTooBig}},
	{events.ErrNotFound, failure{status: http.StatusNotFound, code: "not_found", close: CloseNotFound}},
	{events.ErrSlowConsumer, failure{status: http.StatusServiceUnavailable, code: "slow_consumer", close: CloseSlowConsumer,
		hint: "you fell behind the event rate; reconnect with your last event id",
		end:  "slow_consumer", reason: reasonSlowConsumer}},
	{events.ErrUnavailable, failure{status: http.StatusServiceUnavailable, code: "store_unavailable", close: CloseTryAgain,
		hint: "relay's store is unavailable; retry shortly with your last event id", retry: retryBase,
		reason: reasonStoreUnavailable}},
	{events.ErrClosed, failure{status: http.StatusServiceUnavailable, code: "shutting_down", close: CloseGoingAway,
		hint: "relay is restarting; reconnect with your last event id",
		end:  "shutdown", retry: retrySpread, reason: reasonShutdown}},
}

var internal = failure{status: http.StatusInternalServerError, code: "internal", close: CloseInternal,
	hint: "relay failed; reconnect with your last event id", retry: retryBase}

// The errors that end a live stream by relay's choice; the sentinel of each
// picks its ending from the table, and the words before it are the message
// the client reads (the SSE event's "message", the WebSocket close reason).
var (
	errRestarting   = fmt.Errorf("relay is restarting; reconnect with your last event id: %w", events.ErrClosed)
	errTokenExpired = fmt.Errorf("your token expired: fetch a fresh token and reconnect with your last event id: %w", auth.ErrTokenExpired)
	errSlowConsumer = fmt.Errorf("you fell behind the event rate; reconnect with your last event id: %w", events.ErrSlowConsumer)
)

// Why a stream ended: the reason of the relay.disconnect log line and the
// label of relay_disconnects_total.
const (
	reasonClientClosed     = "client_closed"     // the client went away (or closed the WebSocket)
	reasonTokenExpired     = "token_expired"     // the token's exp passed during the stream
	reasonSlowConsumer     = "slow_consumer"     // the client fell behind its live buffer
	reasonShutdown         = "shutdown"          // relay is draining
	reasonWriteTimeout     = "write_timeout"     // a write to the client did not finish within WriteTimeout
	reasonRateLimited      = "rate_limited"      // a WebSocket client flooded past its message rate
	reasonStoreUnavailable = "store_unavailable" // the store did not answer a history read
	reasonError            = "error"             // anything else: a fault of relay's
)

// reasons is every reason, in the order above.
var reasons = []string{reasonClientClosed, reasonTokenExpired, reasonSlowConsumer, reasonShutdown,
	reasonWriteTimeout, reasonRateLimited, reasonStoreUnavailable, reasonError}

// disconnectReason is why a stream that stopped with err ended (ctx is the
// stream's: ended when the client went away).
func disconnectReason(ctx context.Context, err error) string {
	var we writeError
	switch {
	case err == nil, ctx.Err() != nil:
		return reasonClientClosed
	case errors.As(err, &we):
		if timedOut(err) {
			return reasonWriteTimeout
		}
		return reasonClientClosed
	}
	if r := classify(err).reason; r != "" {
		return r
	}
	return reasonError
}

// timedOut reports whether a write failed for its deadline: the client is
// stuck rather than gone.
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// ending is how a live stream ends, on both transports: the SSE event
// (with its retry hint) and the WebSocket close code, with one message.
type ending struct {
	event   string
	close   int
	message string // at most 123 bytes: it is also the close reason
	retry   retryHint
	failure failure
}

// endingOf is the ending of a live stream that stops with err.
func endingOf(err error) ending {
	f := classify(err)
	e := ending{event: f.end, close: f.endClose, message: closeReason(err), retry: f.retry, failure: f}
	if e.event == "" {
		e.event = "error"
	}
	if e.close == 0 {
		e.close = f.close
	}
	return e
}

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
