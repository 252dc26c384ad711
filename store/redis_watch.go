package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
)

// subscribeTimeout bounds the wait for Redis to confirm the subscription.
const subscribeTimeout = 10 * time.Second

// maxRetryDelay caps the pause between failed reconnects to Pub/Sub: short
// enough that subscribers catch up soon after Redis is back.
const maxRetryDelay = 2 * time.Second

// redisWatcher holds a Redis log's one Pub/Sub subscription, shared by every
// Watch: one connection and one goroutine per process, fanned out in memory.
// It runs while at least one Watch does.
type redisWatcher struct {
	r *Redis

	subs atomic.Pointer[[]*redisSub] // copy on write: no lock per message

	mu     sync.Mutex // serialises start and stop; held while subscribing
	ps     *redis.PubSub
	cancel context.CancelFunc
	done   chan struct{} // closed when the reading goroutine ends
	closed bool
}

// redisSub is one Watch caller.
type redisSub struct {
	mu      sync.Mutex // held during calls, so stop waits for one in progress
	stopped bool
	deliver func(*events.Event)
	resync  func()
}

// Watch calls deliver with every event appended by any process sharing this
// Redis and prefix, in each channel's order; see events.Log.
//
// Events arrive over Redis Pub/Sub, which is at most once. When the Pub/Sub
// connection drops, go-redis reconnects and subscribes again; once Redis has
// confirmed the new subscription, resync is called, so that a caller re-reads
// (Read) from its cursors what was published during the gap. Events delivered
// after resync may repeat some of what that Read returns: skip events at or
// before the position already sent. stop must not be called from deliver or
// resync.
//
// On a Sentinel URL (OpenRedis with ?master_name=), Watch also listens to the
// Sentinels and moves its subscription to a promoted master as soon as they
// announce it, then calls resync (redis_failover.go); a log on a client made
// by the caller follows the master only when that connection drops.
func (r *Redis) Watch(ctx context.Context, deliver func(*events.Event), resync func()) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, r.fail("watch", err)
	}
	s := &redisSub{deliver: deliver, resync: resync}
	if err := r.watcher.add(ctx, s); err != nil {
		return nil, err
	}
	return func() { r.watcher.remove(s) }, nil
}

func (w *redisWatcher) add(ctx context.Context, s *redisSub) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("store: watch: %w", events.ErrClosed)
	}
	if w.ps == nil {
		if err := w.start(ctx); err != nil {
			return err
		}
	}
	w.update(func(subs []*redisSub) []*redisSub { return append(subs, s) })
	return nil
}

// remove ends s's deliveries, and the subscription when s was the last.
func (w *redisWatcher) remove(s *redisSub) {
	s.mu.Lock()
	already := s.stopped
	s.stopped = true
	s.mu.Unlock()
	if already {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	left := w.update(func(subs []*redisSub) []*redisSub {
		out := make([]*redisSub, 0, len(subs))
		for _, x := range subs {
			if x != s {
				out = append(out, x)
			}
		}
		return out
	})
	if len(left) == 0 {
		w.stop()
	}
}

// close ends the subscription for good. Later Watch calls fail.
func (w *redisWatcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.subs.Store(&[]*redisSub{})
	w.stop()
}

// update replaces the subscriber list with f's result. w.mu must be held.
func (w *redisWatcher) update(f func([]*redisSub) []*redisSub) []*redisSub {
	var old []*redisSub
	if p := w.subs.Load(); p != nil {
		old = *p
	}
	next := f(append([]*redisSub(nil), old...))
	w.subs.Store(&next)
	return next
}

// start subscribes and returns once Redis has confirmed the subscription, so
// every event published afterwards is seen. w.mu must be held.
func (w *redisWatcher) start(ctx context.Context) error {
	channel := w.r.pubsubChannel()
	// Every dial of this subscription, go-redis's reconnects included, learns
	// where it went (redis_failover.go).
	trk := &pubsubTracker{}
	ctx = withTracker(ctx, trk)
	ps := w.r.client.Subscribe(ctx, channel)
	// A cancelled ctx does not interrupt a blocked read (redis/go-redis#2556);
	// closing the PubSub does.
	unhook := context.AfterFunc(ctx, func() { _ = ps.Close() })
	msg, err := ps.ReceiveTimeout(ctx, subscribeTimeout)
	if !unhook() {
		err = ctx.Err()
	}
	if sub, ok := msg.(*redis.Subscription); err == nil && (!ok || sub.Kind != "subscribe") {
		err = fmt.Errorf("got %v before the subscription's confirmation", msg)
	}
	if err != nil {
		_ = ps.Close()
		return w.r.fail("watch: subscribe to "+channel, err)
	}
	base, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	w.ps, w.cancel, w.done = ps, cancel, done
	var follower *masterFollower
	if opt := trk.failover(); opt != nil && len(opt.SentinelAddrs) > 0 {
		follower = &masterFollower{opt: opt, trk: trk, log: w.r.log}
	}
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		if follower != nil {
			wg.Go(func() { follower.run(base) })
		}
		w.read(withTracker(base, trk), ps, trk)
		wg.Wait()
	}()
	return nil
}

// stop ends the subscription and waits for its goroutine. w.mu must be held.
func (w *redisWatcher) stop() {
	if w.ps == nil {
		return
	}
	w.cancel()
	_ = w.ps.Close() // interrupts the blocked Receive
	<-w.done
	w.ps, w.cancel, w.done = nil, nil, nil
}

// read receives messages until ctx ends. It uses Receive, not go-redis's
// Channel helper, which drops messages when its buffer stays full.
func (w *redisWatcher) read(ctx context.Context, ps *redis.PubSub, trk *pubsubTracker) {
	log := w.r.log.With("channel", w.r.pubsubChannel())
	failures := 0
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
			return
		}
		if err != nil {
			failures++
			if trk.moved.Swap(false) {
				failures = 0 // a move, not an outage: reconnect at once
				continue
			}
			if failures == 1 {
				log.Warn("redis pub/sub connection lost; reconnecting, then subscribers re-read what they missed; check that Redis is up and reachable", "err", err)
			}
			if failures > 1 && !sleep(ctx, min(50*time.Millisecond<<min(failures-2, 6), maxRetryDelay)) {
				return
			}
			continue
		}
		failures = 0
		switch m := msg.(type) {
		case *redis.Subscription:
			// Only a new connection confirms a subscription again.
			if m.Kind == "subscribe" {
				log.Info("redis pub/sub subscribed again after a reconnect; resyncing subscribers")
				w.r.onReconnect()
				w.resync()
			}
		case *redis.Message:
			ev, err := parseMessage(m.Payload)
			if err != nil {
				log.Error("redis pub/sub message not understood; resyncing subscribers (are relay versions with different formats sharing this prefix?)", "err", err)
				w.resync()
				continue
			}
			w.deliver(ev)
		}
	}
}

// sleep waits for d, reporting false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (w *redisWatcher) deliver(ev *events.Event) {
	for _, s := range *w.subs.Load() {
		s.mu.Lock()
		if !s.stopped {
			s.deliver(ev)
		}
		s.mu.Unlock()
	}
}

func (w *redisWatcher) resync() {
	for _, s := range *w.subs.Load() {
		s.mu.Lock()
		if !s.stopped {
			s.resync()
		}
		s.mu.Unlock()
	}
}

// Broadcast publishes an ephemeral event on the Pub/Sub channel every
// process's Watch reads, without storing it: one PUBLISH. Like every Pub/Sub
// message it is delivered at most once; a process that misses it (an outage)
// never sees it, which suits typing and viewing.
func (r *Redis) Broadcast(ctx context.Context, ev *events.Event) error {
	if !ev.Ephemeral {
		return fmt.Errorf("store: broadcast: event is not ephemeral; append it instead: %w", events.ErrInvalid)
	}
	if err := r.client.Publish(ctx, r.pubsubChannel(), ephemeralMessage(ev)).Err(); err != nil {
		return r.fail("broadcast", err)
	}
	return nil
}

// ephemeralMessage is Broadcast's message:
// "e1\n<channel>\n<unix ms>\n<len(type)>\n<type><fields>".
func ephemeralMessage(ev *events.Event) string {
	var b strings.Builder
	b.Grow(32 + len(ev.Channel) + len(ev.Type) + len(ev.Fields))
	b.WriteString("e1\n")
	b.WriteString(ev.Channel)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatInt(ev.Time.UnixMilli(), 10))
	b.WriteByte('\n')
	b.WriteString(strconv.Itoa(len(ev.Type)))
	b.WriteByte('\n')
	b.WriteString(ev.Type)
	b.Write(ev.Fields)
	return b.String()
}

// parseEphemeral parses an ephemeral message after its "e1\n" tag.
func parseEphemeral(p string) (*events.Event, error) {
	var f [3]string
	for i := range f {
		var ok bool
		if f[i], p, ok = strings.Cut(p, "\n"); !ok {
			return nil, fmt.Errorf("ephemeral message has %d lines, want at least 4", i+2)
		}
	}
	ms, err1 := strconv.ParseInt(f[1], 10, 64)
	n, err2 := strconv.Atoi(f[2])
	if err := errors.Join(err1, err2); err != nil || n < 0 || n > len(p) || f[0] == "" {
		return nil, fmt.Errorf("malformed ephemeral message header %q: %v", f, err)
	}
	d := events.Draft{Channel: f[0], Type: p[:n], Fields: []byte(p[n:])}
	return events.NewEphemeral(d, time.UnixMilli(ms)), nil
}

// parseMessage parses what redis_publish.lua publishes:
// "r1\n<channel>\n<epoch>\n<seq>\n<unix ms>\n<len(type)>\n<type><fields>",
// and Broadcast's "e1\n…" (ephemeralMessage).
func parseMessage(p string) (*events.Event, error) {
	if rest, ok := strings.CutPrefix(p, "e1\n"); ok {
		return parseEphemeral(rest)
	}
	var f [6]string
	for i := range f {
		var ok bool
		if f[i], p, ok = strings.Cut(p, "\n"); !ok {
			return nil, fmt.Errorf("message has %d lines, want at least 7", i+1)
		}
	}
	if f[0] != "r1" {
		return nil, fmt.Errorf("message format %q, want r1 or e1", f[0])
	}
	seq, err1 := strconv.ParseUint(f[3], 10, 64)
	ms, err2 := strconv.ParseInt(f[4], 10, 64)
	n, err3 := strconv.Atoi(f[5])
	if err := errors.Join(err1, err2, err3); err != nil || n < 0 || n > len(p) || f[1] == "" || f[2] == "" {
		return nil, fmt.Errorf("malformed message header %q: %v", f[1:], err)
	}
	d := events.Draft{Channel: f[1], Type: p[:n], Fields: []byte(p[n:])}
	return events.NewEvent(d, events.Position{Epoch: f[2], Seq: seq}, time.UnixMilli(ms)), nil
}
