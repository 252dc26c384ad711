package events

import (
	"context"
	"time"
)

// Log is one append-only event log per channel, shared by every relay
// process that uses the same store. store.Memory and store.Redis implement
// it; store/storetest holds the conformance suite both pass.
type Log interface {
	// Append stores drafts and returns the stored events in the same order.
	// When it returns nil, every event is in the log. Events of one channel
	// get consecutive sequence numbers in the order given, and each channel's
	// append is atomic; a batch over several channels is not atomic as a
	// whole (on error, a prefix of it may be stored). Each draft is stored at
	// most once: a store never re-sends an append on its own.
	//
	// A draft with an IdempotencyKey that its channel has seen within
	// IdempotencyWindow is not stored again: Append returns, in its place, an
	// event with Repeat set and the first append's position and time. An
	// error wrapping ErrUnavailable means the outcome is unknown.
	Append(ctx context.Context, drafts []Draft) ([]*Event, error)

	// Read returns up to limit events of channel after position after, oldest
	// first. Read(Beginning) starts at the oldest event kept. It returns
	// ErrCursorGone when the log cannot answer: after's epoch is not the
	// channel's current one, after is ahead of the channel's head, or events
	// after it were trimmed.
	//
	// After an empty position (from Head of a channel with no log), Read
	// returns no events while the channel still has no log, and the events of
	// the epoch created since, from its first, when it can be sure that is
	// every event appended since the position was taken; otherwise
	// ErrCursorGone: the log's generation changed (a restarted or failed-over
	// Redis), the epoch was created MaxAge or more after the position (an
	// epoch could have come and been forgotten in between), or its first
	// event was trimmed. Read creates nothing.
	Read(ctx context.Context, channel string, after Position, limit int) ([]*Event, error)

	// Head returns the position of the channel's newest event, with Seq 0
	// when its epoch has none. A channel with no log (never appended to, or
	// forgotten) has an empty position (see EmptyPosition), which names the
	// log's generation and the time it was taken: Head writes nothing, keeps
	// nothing alive, and a cursor it returns stays answerable (see Read) when
	// the channel's first event arrives. Only Append makes a channel exist.
	Head(ctx context.Context, channel string) (Position, error)

	// Watch calls deliver with every event appended to a channel listened
	// to (Listen; a log may deliver other channels' too), by any
	// process sharing the log, in each channel's append order; it may skip
	// events (a Redis Pub/Sub outage), never reorder them. After such an
	// outage it calls resync, so readers re-read what they may have missed.
	// deliver and resync must not block, and may be called at once from
	// several goroutines, for different channels (each channel's events in
	// order from one). Watch returns once watching is in place; stop ends it
	// and waits for its goroutines.
	Watch(ctx context.Context, deliver func(*Event), resync func()) (stop func(), err error)

	// Listen makes Watch deliver channel's events until release is called
	// (store.Redis: one Pub/Sub channel per relay channel, so a process
	// receives only its clients' channels; store.Memory delivers every
	// channel anyway). It returns only once the log's live feed carries
	// them (Redis has confirmed the subscription): every event appended
	// after Listen has returned is delivered, or followed by a resync.
	// resync is called when the feed of this channel may have skipped
	// events (the Pub/Sub connection serving it dropped, or moved to another
	// Redis node); it must not block. release is idempotent. The hub
	// listens to a channel while it has a local subscriber of it.
	//
	// Listen is part of Log rather than an optional interface: a wrapper
	// that embeds a Log (metrics, tests) forwards it, where a forgotten
	// optional method would leave its process receiving no event at all.
	Listen(ctx context.Context, channel string, resync func()) (release func(), err error)
}

// BatchWatcher is implemented by logs whose live feed brings events in
// batches (store.Redis: every event of one publish script, in one Pub/Sub
// message). The hub watches through it when the log has it, and queues a
// batch to each subscriber at once: a subscriber then wakes, writes and
// flushes once per batch, not once per event. Its contract is Watch's, with
// deliver called with one or more events of one channel, in order; the
// slice is the log's again once deliver returns.
type BatchWatcher interface {
	WatchBatches(ctx context.Context, deliver func([]*Event), resync func()) (stop func(), err error)
}

// IdempotencyWindow is how long a channel remembers an idempotency key: a
// publish retried within it (a backend's timeout, a relay that died
// mid-request) answers the first one's id and stores nothing.
const IdempotencyWindow = 5 * time.Minute

// Retention bounds each channel's history; both bounds apply.
type Retention struct {
	// MaxEvents is the most events kept per channel (default 10,000).
	MaxEvents int
	// MaxAge is how long an event is kept (default 24 h). A channel with no
	// event for MaxAge is forgotten: its next event starts a new epoch.
	MaxAge time.Duration
}

// Default retention bounds.
const (
	DefaultMaxEvents = 10_000
	DefaultMaxAge    = 24 * time.Hour
)

// WithDefaults fills zero fields with the defaults.
func (r Retention) WithDefaults() Retention {
	if r.MaxEvents <= 0 {
		r.MaxEvents = DefaultMaxEvents
	}
	if r.MaxAge <= 0 {
		r.MaxAge = DefaultMaxAge
	}
	return r
}

// Pinger is implemented by logs that can tell whether they answer (readiness).
type Pinger interface {
	Ping(ctx context.Context) error
}
