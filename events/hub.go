package events

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ReplayPage is how many events a catch-up reads from the log per call.
const ReplayPage = 500

// Hub fans the events of a Log out to subscriptions. One Hub serves a whole
// process; its per-event path takes no shared lock: each subscriber's queue
// has its own, uncontended but for that subscriber's owner.
type Hub struct {
	log    Log
	logger *slog.Logger
	notes  Notifications // nil: notifications are not kept
	obs    Observer
	queue  QueueLimits // each subscription's

	channels sync.Map // channel name -> *fanout

	mu      sync.Mutex // serialises changes to subscriber lists
	subs    map[*Subscription]struct{}
	fanouts map[string]*fanout // what channels holds, for writers under mu

	interest *interests // the channels the log is asked to deliver (interest.go)

	stop   func()
	closed atomic.Bool
}

// HubOptions are a hub's optional collaborators.
type HubOptions struct {
	// Notifications, when set, keeps the events published to users'
	// notifications channels as notifications (see Publish), and serves
	// MarkRead. Nil: notifications are not kept.
	Notifications Notifications
	// Logger receives the hub's warnings; nil discards them.
	Logger *slog.Logger
	// Observer, when set, is told of every publish (metrics).
	Observer Observer
	// Queue bounds each subscription's queue of live events (zero fields:
	// the defaults); a subscription over it ends with ErrSlowConsumer.
	Queue QueueLimits
}

// Observer is told what the hub does, for metrics. Its methods are called on
// the publishing goroutine: they must be cheap and never block.
type Observer interface {
	// Published reports one Publish call: how many events it stored (repeats
	// of an idempotency key are not counted), how long it took, and its
	// error.
	Published(stored int, took time.Duration, err error)
}

type nopObserver struct{}

func (nopObserver) Published(int, time.Duration, error) {}

// NewHub returns a hub over log. Start it before subscribing.
func NewHub(log Log, opts HubOptions) *Hub {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	obs := opts.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	h := &Hub{log: log, logger: logger, notes: opts.Notifications, obs: obs, queue: opts.Queue.withDefaults(),
		subs: make(map[*Subscription]struct{}), fanouts: make(map[string]*fanout)}
	h.interest = newInterests(log, h.resyncChannel)
	return h
}

// Start begins watching the log; it returns once watching is in place.
func (h *Hub) Start(ctx context.Context) error {
	var stop func()
	var err error
	if bw, ok := h.log.(BatchWatcher); ok {
		stop, err = bw.WatchBatches(ctx, h.deliverBatch, h.resync)
	} else {
		stop, err = h.log.Watch(ctx, h.deliver, h.resync)
	}
	if err != nil {
		return fmt.Errorf("hub: watch log: %w", err)
	}
	h.stop = stop
	return nil
}

// Close stops watching the log and ends every subscription with ErrClosed.
// It is idempotent.
func (h *Hub) Close() {
	if h.closed.Swap(true) {
		return
	}
	if h.stop != nil {
		h.stop()
	}
	h.interest.close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.fail(ErrClosed)
	}
}

// Publish appends drafts to the log; subscribers receive them through Watch.
//
// Events on users' notifications channels are also recorded as
// notifications (HubOptions.Notifications), in a second write after the
// append. That record is best effort, not atomic with the append: once the
// events are in the log subscribers have them, so a failure to record them is
// logged at error level, with the events, and does not fail the publish. An
// error from Publish therefore always means the events may not be in the log
// (a retry with the same idempotency key stores them once); never that they
// were delivered but not recorded. A retry with the same idempotency key does
// not record them either: its events are repeats, which are never recorded.
func (h *Hub) Publish(ctx context.Context, drafts ...Draft) ([]*Event, error) {
	start := time.Now()
	evs, err := h.log.Append(ctx, drafts)
	h.obs.Published(stored(evs), time.Since(start), err)
	if err != nil {
		return evs, fmt.Errorf("publish: %w", err)
	}
	if err := h.record(ctx, evs); err != nil {
		h.logger.Error("events stored and delivered, but not recorded as notifications: they are missing from GET /api/notifications; check the store",
			"err", err, "events", len(evs), "first", evs[0], "last", evs[len(evs)-1])
	}
	return evs, nil
}

// stored counts the events of evs that are not repeats.
func stored(evs []*Event) int {
	n := 0
	for _, ev := range evs {
		if ev != nil && !ev.Repeat {
			n++
		}
	}
	return n
}

// Broadcast sends an ephemeral event (typing, viewing) to every process's
// subscribers of its channel, without storing it.
func (h *Hub) Broadcast(ctx context.Context, d Draft) error {
	ev := NewEphemeral(d, time.Now())
	if b, ok := h.log.(Broadcaster); ok {
		if err := b.Broadcast(ctx, ev); err != nil {
			return fmt.Errorf("broadcast: %w", err)
		}
		return nil
	}
	h.deliver(ev)
	return nil
}

// deliver is the per-event path: one map load, one atomic load per shard
// of subscribers (see fanout), one queued event (an uncontended lock of its
// own) per subscriber.
func (h *Hub) deliver(ev *Event) {
	v, ok := h.channels.Load(ev.Channel)
	if !ok {
		return
	}
	ev.encode() // once, before any subscriber's goroutine reads it
	v.(*fanout).offer(ev)
}

// deliverBatch is deliver for a batch of events (BatchWatcher): each
// subscriber of a channel gets the channel's events of the batch in one
// offer, so it wakes once for all of them.
func (h *Hub) deliverBatch(evs []*Event) {
	for len(evs) > 0 {
		n := 1
		for n < len(evs) && evs[n].Channel == evs[0].Channel {
			n++
		}
		run := evs[:n]
		evs = evs[n:]
		v, ok := h.channels.Load(run[0].Channel)
		if !ok {
			continue
		}
		for _, ev := range run {
			ev.encode() // once, before any subscriber's goroutine reads it
		}
		v.(*fanout).offerAll(run)
	}
}

// resync tells every subscription to re-read the log: events may have been
// missed while the log's live feed was down.
func (h *Hub) resync() {
	h.logger.Warn("live feed reconnected: subscriptions re-read the log to fill any gap")
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.offer(resyncMarker)
	}
}

// Head returns the cursor a live-only subscriber of channel would start
// from now (an empty position for a channel with no log): a backend that
// takes it before reading its own state, and hands both to a page that
// subscribes from it, misses nothing in between. It registers nothing.
func (h *Hub) Head(ctx context.Context, channel string) (Position, error) {
	head, err := h.log.Head(ctx, channel)
	if err != nil {
		return Position{}, fmt.Errorf("head %s: %w", channel, err)
	}
	return head, nil
}

// Subscribe registers a subscription to channels, resuming after cursor (nil:
// live only). Live events are held in its queue from this moment; the owner
// calls Replay, then Deliver for each event it Takes, and Close at the end.
//
// A channel without a cursor starts at its head, taken here, after the
// subscription is in the fan-out lists, and after the log has confirmed it
// delivers the channel (Listen): every event appended once Subscribe has
// returned reaches the subscription. Transports call it before they
// answer a client (200 or 101), so "live only" means every event published
// after the client has its answer. When a head cannot be read, the
// subscription is closed and the error returned.
func (h *Hub) Subscribe(ctx context.Context, channels []string, cursor Cursor) (*Subscription, error) {
	s := newSubscription(h, channels, cursor)
	if err := h.interest.acquire(ctx, s.channels); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if err := h.register(s); err != nil {
		h.interest.release(s.channels)
		return nil, err
	}
	for _, ch := range s.channels {
		if _, ok := cursor[ch]; ok {
			continue
		}
		head, err := h.Head(ctx, ch)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("subscribe: %w", err)
		}
		s.pos[ch] = head
	}
	return s, nil
}

// register adds s to the fan-out lists of its channels. The closed check is
// under the lock Close takes, so a subscription registered while the hub
// closes is ended by Close, never left open.
func (h *Hub) register(s *Subscription) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed.Load() {
		return ErrClosed
	}
	h.subs[s] = struct{}{}
	for _, ch := range s.channels {
		f, ok := h.fanouts[ch]
		if !ok {
			f = newFanout()
			h.fanouts[ch] = f
			h.channels.Store(ch, f)
		}
		f.add(s)
	}
	return nil
}

// unsubscribe removes s from its channels' fan-out lists: O(shardSize) per
// channel whatever the channel's number of subscribers.
func (h *Hub) unsubscribe(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
	for _, ch := range s.channels {
		f, ok := h.fanouts[ch]
		if !ok {
			continue
		}
		f.remove(s)
		if f.len() == 0 {
			delete(h.fanouts, ch)
			h.channels.Delete(ch)
		}
	}
}

// Subscribers returns the number of subscriptions, for metrics and tests.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}
