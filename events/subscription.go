package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Sink receives what a subscription delivers, in order. Transports implement
// it: an SSE frame or a WebSocket message per call.
type Sink interface {
	// Event delivers one event. The subscription's cursor already includes it.
	Event(ev *Event) error
	// Reset tells the client that channel's history after its cursor is no
	// longer available (trimmed, or the log was reset): it should refetch its
	// state. The subscription's Position(channel) is already the client's new
	// position (the head, or the start of a new epoch); events after it follow.
	Reset(channel string) error
}

// resyncMarker is offered to every subscription after the log's live feed
// was down: Deliver then re-reads each channel after its position.
var resyncMarker = &Event{}

// Subscription is one connection's view of some channels: exact replay after
// a cursor, then live events with no gap and no duplicate. Live events wait
// in its queue (see QueueLimits) until the owner takes them: on each value
// from Ready, Take the batch and pass its events to Deliver. Replay, Take,
// Deliver, Position and AppendCursor belong to the one goroutine that owns
// it.
type Subscription struct {
	hub      *Hub
	channels []string
	start    Cursor
	pos      map[string]Position // what the client has, per channel

	reset ResetCause // why the reset being sent happened (see ResetCause)

	q         queue // bounded by hub.queue
	done      chan struct{}
	failOnce  sync.Once
	err       error
	closeOnce sync.Once
}

func newSubscription(h *Hub, channels []string, cursor Cursor) *Subscription {
	return &Subscription{
		hub:      h,
		channels: channels,
		start:    cursor,
		pos:      make(map[string]Position, len(channels)),
		q:        queue{ready: make(chan struct{}, 1)},
		done:     make(chan struct{}),
	}
}

// Channels returns the subscription's channels, in the order given.
func (s *Subscription) Channels() []string { return s.channels }

// Done is closed when the hub ends the subscription; Err then says why
// (ErrSlowConsumer or ErrClosed).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why Done was closed, or nil.
func (s *Subscription) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close unregisters the subscription and drops its queue. It is idempotent.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() {
		s.hub.unsubscribe(s)
		s.q.stop()
		s.hub.interest.release(s.channels)
	})
}

// fail ends the subscription with err, once: Done closes and the queue takes
// nothing more.
func (s *Subscription) fail(err error) {
	s.failOnce.Do(func() {
		s.err = err
		close(s.done)
		s.q.stop()
	})
}

// ResetCause is why a channel's history after a client's cursor is gone.
type ResetCause uint8

const (
	// ResetTrimmed: the events after the cursor were trimmed by retention
	// (or the cursor is ahead of the log), in the channel's current epoch.
	ResetTrimmed ResetCause = iota
	// ResetNewEpoch: the channel's log started again (reset, a restarted
	// or failed-over Redis, a channel forgotten after MaxAge), so the
	// cursor's epoch is not the current one.
	ResetNewEpoch
)

// ResetCause is the cause of the reset a Sink is being told of: call it from
// Sink.Reset.
func (s *Subscription) ResetCause() ResetCause { return s.reset }

// Position returns the client's position on channel.
func (s *Subscription) Position(channel string) Position { return s.pos[channel] }

// AppendCursor appends the subscription's whole cursor, in its text form (see
// Cursor), to b.
func (s *Subscription) AppendCursor(b []byte) []byte {
	return AppendCursor(b, s.channels, s.Position)
}

// Replay sends each channel's history after the cursor to sink. Channels
// without a cursor have their head from Subscribe and replay nothing. Call
// it once, first.
func (s *Subscription) Replay(ctx context.Context, sink Sink) error {
	for _, ch := range s.channels {
		p, ok := s.start[ch]
		if !ok {
			continue
		}
		s.pos[ch] = p
		if err := s.fill(ctx, ch, sink, false); err != nil {
			return err
		}
	}
	return nil
}

// Deliver sends a live event to sink unless the client already has it; when
// the event shows a gap, it first reads the missing events from the log. An
// event of an epoch the client has not seen is never delivered silently: the
// client gets a Reset of its channel, then the new epoch from its start.
func (s *Subscription) Deliver(ctx context.Context, ev *Event, sink Sink) error {
	if ev == resyncMarker {
		for _, ch := range s.channels {
			if err := s.fill(ctx, ch, sink, false); err != nil {
				return err
			}
		}
		return nil
	}
	if ev.Ephemeral {
		return sink.Event(ev)
	}
	ch := ev.Channel
	p := s.pos[ch]
	switch {
	case (p.IsBeginning() || p.IsEmpty()) && ev.Pos.Seq == 1:
		// The channel's first event, while the client has nothing of it: the
		// history read at subscribe (or a resync, which comes first after any
		// outage) already vouched for the empty position, so this is the next
		// event. No log read: a first event reaches N subscribers with no
		// burst of N reads.
	case p.IsBeginning(), p.IsEmpty():
		// History was empty, or the channel had no log: read it again, up to
		// this event (later ones follow live, so the connection keeps the
		// order events were published in across its channels). The log's
		// Read says whether an empty position still answers (this event's
		// epoch started after it) or is gone.
		return s.fillTo(ctx, ch, sink, ev.Pos)
	case ev.Pos.Epoch != p.Epoch:
		// The log started a new epoch (reset, restarted, forgotten): the
		// client's history ends here. Read the new epoch from its start.
		s.pos[ch] = Position{Epoch: ev.Pos.Epoch}
		return s.fill(ctx, ch, sink, true)
	case ev.Pos.Seq <= p.Seq:
		return nil // history already sent it
	case ev.Pos.Seq > p.Seq+1:
		return s.fill(ctx, ch, sink, false)
	}
	s.pos[ch] = ev.Pos
	return sink.Event(ev)
}

// fill sends channel's events after the client's position, page by page.
// When the log cannot answer, it sends a reset and moves the client to the
// head. With reset set (the position was moved to a new epoch's start), it
// sends the reset before the first event: exactly one reset either way.
func (s *Subscription) fill(ctx context.Context, ch string, sink Sink, reset bool) error {
	return s.fillUntil(ctx, ch, sink, reset, Position{})
}

// fillTo is fill that stops once it has sent the live event at pos: the
// events after it reach the subscription live.
func (s *Subscription) fillTo(ctx context.Context, ch string, sink Sink, pos Position) error {
	return s.fillUntil(ctx, ch, sink, false, pos)
}

func (s *Subscription) fillUntil(ctx context.Context, ch string, sink Sink, reset bool, until Position) error {
	for {
		evs, err := s.hub.log.Read(ctx, ch, s.pos[ch], ReplayPage)
		if errors.Is(err, ErrCursorGone) {
			head, err := s.hub.log.Head(ctx, ch)
			if err != nil {
				return fmt.Errorf("read %s head: %w", ch, err)
			}
			s.reset = ResetTrimmed
			if head.Epoch != s.pos[ch].Epoch {
				s.reset = ResetNewEpoch
			}
			s.pos[ch] = head
			return sink.Reset(ch)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", ch, err)
		}
		if reset {
			s.reset = ResetNewEpoch
			if err := sink.Reset(ch); err != nil {
				return err
			}
			reset = false
		}
		for _, ev := range evs {
			s.pos[ch] = ev.Pos
			if err := sink.Event(ev); err != nil {
				return err
			}
			if ev.Pos == until {
				return nil
			}
		}
		if len(evs) < ReplayPage {
			return nil
		}
	}
}
