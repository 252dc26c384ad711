package events

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// ListenLinger is how long the hub keeps listening to a channel after its
// last local subscriber left: a page reload or a client reconnecting
// resubscribes within it, so it costs no round trip to Redis. It bounds how
// long a process receives events nobody reads.
const ListenLinger = 5 * time.Second

// interests is a hub's listening, per channel: the number of local
// subscriptions of it, and the log's release once it is confirmed. It is
// apart from the fan-out lists: Subscribe acquires before it registers, and
// Close releases after it unregisters.
type interests struct {
	log    Log
	resync func(channel string)

	mu     sync.Mutex
	byName map[string]*interest
	closed bool
}

// interest is one channel's listening.
type interest struct {
	refs    int
	ready   chan struct{} // closed once Listen has returned
	err     error         // Listen's error, set before ready is closed
	release func()
	linger  *time.Timer // running while refs is 0
}

func newInterests(log Log, resync func(channel string)) *interests {
	return &interests{log: log, resync: resync, byName: make(map[string]*interest)}
}

// acquire listens to each of channels for one subscription, waiting until
// the log confirms. On error nothing stays acquired.
func (in *interests) acquire(ctx context.Context, channels []string) error {
	for i, ch := range channels {
		if err := in.acquireOne(ctx, ch); err != nil {
			in.release(channels[:i])
			return fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	return nil
}

func (in *interests) acquireOne(ctx context.Context, ch string) error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return ErrClosed
	}
	e, ok := in.byName[ch]
	if !ok {
		// The first subscriber listens; refs counts it from now, so the
		// channel cannot linger out while Listen is in flight.
		e = &interest{refs: 1, ready: make(chan struct{})}
		in.byName[ch] = e
		in.mu.Unlock()
		release, err := in.log.Listen(ctx, ch, func() { in.resync(ch) })
		in.mu.Lock()
		if err == nil && in.closed { // Close ran while Listen did
			release()
			err = ErrClosed
		}
		e.release, e.err = release, err
		if err != nil && in.byName[ch] == e {
			delete(in.byName, ch) // the next subscriber tries again
		}
		close(e.ready)
		in.mu.Unlock()
		return err
	}
	e.refs++
	if e.linger != nil {
		e.linger.Stop()
		e.linger = nil
	}
	in.mu.Unlock()
	select {
	case <-e.ready:
		return e.err // on error e was removed: nothing to release
	case <-ctx.Done():
		in.mu.Lock()
		in.drop(ch, e)
		in.mu.Unlock()
		return ctx.Err()
	}
}

// drop takes one reference off e, ch's interest, starting its linger when it
// was the last. in.mu must be held.
func (in *interests) drop(ch string, e *interest) {
	if in.byName[ch] != e || e.refs == 0 {
		return
	}
	e.refs--
	if e.refs > 0 || in.closed {
		return
	}
	e.linger = time.AfterFunc(ListenLinger, func() { in.expire(ch, e) })
}

// release ends one subscription's interest in channels; a channel nobody
// listens to any more is released after ListenLinger.
func (in *interests) release(channels []string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, ch := range channels {
		if e, ok := in.byName[ch]; ok {
			in.drop(ch, e)
		}
	}
}

// expire releases e if it is still ch's idle interest.
func (in *interests) expire(ch string, e *interest) {
	in.mu.Lock()
	if in.byName[ch] != e || e.refs > 0 || e.linger == nil {
		in.mu.Unlock()
		return
	}
	delete(in.byName, ch)
	in.mu.Unlock()
	e.release()
}

// close releases every channel at once. Later acquires fail.
func (in *interests) close() {
	in.mu.Lock()
	in.closed = true
	var releases []func()
	for ch, e := range in.byName {
		select {
		case <-e.ready:
			if e.release != nil {
				releases = append(releases, e.release)
			}
		default: // Listen in flight: acquireOne releases it
		}
		if e.linger != nil {
			e.linger.Stop()
		}
		delete(in.byName, ch)
	}
	in.mu.Unlock()
	for _, r := range releases {
		r()
	}
}

// listening returns how many channels the hub listens to, for tests.
func (in *interests) listening() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.byName)
}

// resyncChannel tells channel's subscriptions to re-read the log: the log's
// feed of that channel may have skipped events.
func (h *Hub) resyncChannel(channel string) {
	v, ok := h.channels.Load(channel)
	if !ok {
		return
	}
	h.logger.Debug("live feed of a channel resubscribed: its subscriptions re-read the log to fill any gap", "channel", channel)
	v.(*fanout).offer(resyncMarker)
}
