// Package events is the centre of relay: the event envelope, channel names and
// access patterns, cursors, the Log contract stores implement, and the hub that
// fans events out to subscriptions. It imports nothing of HTTP or Redis.
package events

import "errors"

// The sentinel errors of relay's domain. Callers wrap them with "op: %w"; the
// transports map each to one HTTP status and one WebSocket close code.
var (
	// ErrInvalid: the input is malformed (bad JSON, bad channel name, bad cursor,
	// missing field). Nothing was changed.
	ErrInvalid = errors.New("invalid input")
	// ErrTooLarge: a payload is over the configured limit. Nothing was changed.
	ErrTooLarge = errors.New("payload too large")
	// ErrNotFound: the thing named does not exist, or the caller may not know
	// whether it does.
	ErrNotFound = errors.New("not found")
	// ErrCursorGone: the log can no longer answer a cursor: its epoch is not the
	// channel's (the log was reset) or events after it were trimmed.
	ErrCursorGone = errors.New("cursor no longer answerable")
	// ErrSlowConsumer: a subscription fell further behind than its queue allows
	// (QueueLimits: bytes held, or an event's wait).
	ErrSlowConsumer = errors.New("subscriber too slow")
	// ErrClosed: the hub or store was closed.
	ErrClosed = errors.New("closed")
	// ErrUnavailable: the store did not answer in time (down, stalled,
	// failing over). For an append the outcome is unknown: the events may or
	// may not be stored, so a retry must carry the same idempotency keys.
	ErrUnavailable = errors.New("store unavailable")
)
