package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// pubsubShard is one Pub/Sub connection of a redisWatcher and the goroutine
// reading it: every channel on a single node or Sentinel, one hash slot's on
// Cluster (see redisWatcher).
type pubsubShard struct {
	w     *redisWatcher
	key   int // the slot on Cluster, else 0
	users int // listeners and Listen calls in progress; guarded by w.mu

	trk    *pubsubTracker // where the connection went (redis_failover.go)
	base   context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	ps       *redis.PubSub              // nil until the first subscribe is sent
	names    map[string][]*listener     // Pub/Sub channels subscribed or being subscribed
	waiting  map[string][]chan struct{} // Listen calls waiting for a confirmation
	broken   bool                       // the connection failed since the last confirmation
	stopping bool                       // stop was called: no new connection
	done     chan struct{}              // closed when the reader ends; nil before it starts
}

// listener is one Listen call's interest in a Pub/Sub channel.
type listener struct{ resync func() }

func newShard(w *redisWatcher, key int) *pubsubShard {
	trk := &pubsubTracker{}
	base, cancel := context.WithCancel(withTracker(context.Background(), trk))
	return &pubsubShard{w: w, key: key, trk: trk, base: base, cancel: cancel,
		names: make(map[string][]*listener), waiting: make(map[string][]chan struct{})}
}

// add registers l as a listener of name and returns once Redis has
// confirmed name's subscription (at once when it already had).
func (sh *pubsubShard) add(ctx context.Context, name string, l *listener) error {
	sh.mu.Lock()
	if sh.stopping {
		sh.mu.Unlock()
		return redis.ErrClosed
	}
	ls, had := sh.names[name]
	sh.names[name] = append(ls, l)
	if had && len(sh.waiting[name]) == 0 {
		sh.mu.Unlock()
		return nil // confirmed; a reconnect since then calls l.resync
	}
	confirmed := make(chan struct{})
	sh.waiting[name] = append(sh.waiting[name], confirmed)
	if !had {
		if err := sh.subscribe(ctx, name); err != nil {
			sh.mu.Unlock()
			sh.remove(name, l)
			return err
		}
	}
	sh.mu.Unlock()
	t := time.NewTimer(subscribeTimeout)
	defer t.Stop()
	var err error
	select {
	case <-confirmed:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-sh.base.Done():
		err = redis.ErrClosed
	case <-t.C:
		err = errors.New("no confirmation of the subscription within " + subscribeTimeout.String())
	}
	sh.mu.Lock()
	ws := sh.waiting[name]
	for i, c := range ws {
		if c == confirmed {
			sh.waiting[name] = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	sh.mu.Unlock()
	sh.remove(name, l)
	return err
}

// subscribe sends the subscription of name, connecting first and starting
// the reader when it is the shard's first. sh.mu must be held.
func (sh *pubsubShard) subscribe(ctx context.Context, name string) error {
	// Every dial of this connection, go-redis's reconnects included, learns
	// where it went (redis_failover.go).
	ctx = withTracker(ctx, sh.trk)
	if sh.ps != nil {
		return sh.send(ctx, sh.ps, name)
	}
	ps := sh.newPubSub(ctx)
	if err := sh.send(ctx, ps, name); err != nil {
		_ = ps.Close()
		return err
	}
	sh.ps = ps
	sh.done = make(chan struct{})
	var follower *masterFollower
	if opt := sh.trk.failover(); opt != nil && len(opt.SentinelAddrs) > 0 {
		follower = &masterFollower{opt: opt, trk: sh.trk, log: sh.w.r.log}
	}
	go func() {
		defer close(sh.done)
		var wg sync.WaitGroup
		if follower != nil {
			wg.Go(func() { follower.run(sh.base) })
		}
		sh.read(ps)
		sh.cancel() // a reader that ended on its own ends the follower too
		wg.Wait()
	}()
	return nil
}

// newPubSub returns a Pub/Sub of no channel yet, hence not connected: on
// Cluster the first SSUBSCRIBE picks the node of its channel's slot.
func (sh *pubsubShard) newPubSub(ctx context.Context) *redis.PubSub {
	if sh.w.cluster != nil {
		return sh.w.cluster.SSubscribe(ctx)
	}
	return sh.w.r.client.Subscribe(ctx)
}

func (sh *pubsubShard) send(ctx context.Context, ps *redis.PubSub, names ...string) error {
	if sh.w.cluster != nil {
		return ps.SSubscribe(ctx, names...)
	}
	return ps.Subscribe(ctx, names...)
}

// remove drops l, unsubscribing name when it was its last listener.
func (sh *pubsubShard) remove(name string, l *listener) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	ls := sh.names[name]
	for i, x := range ls {
		if x == l {
			ls = append(ls[:i:i], ls[i+1:]...)
			break
		}
	}
	if len(ls) > 0 {
		sh.names[name] = ls
		return
	}
	delete(sh.names, name)
	if sh.ps == nil || sh.stopping {
		return
	}
	// An unsubscribe that fails leaves a channel nobody reads, until the
	// shard's connection is replaced or closed: harmless.
	ctx, cancel := context.WithTimeout(sh.base, subscribeTimeout)
	defer cancel()
	if sh.w.cluster != nil {
		_ = sh.ps.SUnsubscribe(ctx, name)
	} else {
		_ = sh.ps.Unsubscribe(ctx, name)
	}
}

// stop ends the shard's connection and waits for its reader. It is
// idempotent.
func (sh *pubsubShard) stop() {
	sh.mu.Lock()
	sh.stopping = true
	ps, done := sh.ps, sh.done
	sh.mu.Unlock()
	sh.cancel()
	if ps != nil {
		_ = ps.Close() // interrupts the blocked Receive
	}
	if done != nil {
		<-done
	}
}

// read receives messages until the shard stops. It uses Receive, not
// go-redis's Channel helper, which drops messages when its buffer stays full.
func (sh *pubsubShard) read(ps *redis.PubSub) {
	ctx := sh.base
	log := sh.w.r.log.With("pubsub", sh.describe())
	failures := 0
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
			return
		}
		if err != nil {
			failures++
			sh.setBroken()
			if sh.trk.moved.Swap(false) {
				failures = 0 // a move, not an outage: reconnect at once
				continue
			}
			var rerr redis.Error
			answered := errors.As(err, &rerr) // Redis answered the subscription with an error
			switch {
			case answered && sh.w.cluster != nil && failures == 1:
				log.Info("redis cluster refused the subscription (the slot moved?); subscribing again where the slot map says, then subscribers re-read what they missed", "err", err)
			case failures == 1:
				log.Warn("redis pub/sub connection lost; reconnecting, then subscribers re-read what they missed; check that Redis is up and reachable", "err", err)
			}
			if sh.w.cluster != nil {
				// The slot may be served elsewhere now (a failover): go-redis
				// reconnects to the node its slot map names, so refresh it. A
				// node that answers with an error (MOVED: not the slot's
				// node) needs a new connection, not a retry on this one.
				sh.w.cluster.ReloadState(ctx)
				if answered {
					if ps = sh.replace(ps); ps == nil {
						return
					}
				}
			}
			if failures > 1 && !sleep(ctx, min(50*time.Millisecond<<min(failures-2, 6), maxRetryDelay)) {
				return
			}
			continue
		}
		failures = 0
		switch m := msg.(type) {
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				sh.confirmed(log, m.Channel)
			case "unsubscribe", "sunsubscribe":
				if sh.w.cluster != nil && sh.listened(m.Channel) {
					// Not ours: Redis unsubscribes a slot's channels when the
					// slot leaves its node (migration, failover).
					log.Info("redis cluster slot moved; subscribing where it is now, then subscribers re-read what they missed", "channel", m.Channel)
					sh.w.cluster.ReloadState(ctx)
					if ps = sh.replace(ps); ps == nil {
						return
					}
				}
			}
		case *redis.Message:
			sh.w.r.onReceive()
			ev, err := parseMessage(m.Payload)
			if err != nil {
				log.Error("redis pub/sub message not understood; resyncing subscribers (are relay versions with different formats sharing this prefix?)", "err", err)
				sh.resync()
				continue
			}
			sh.w.deliver(ev)
		}
	}
}

func (sh *pubsubShard) setBroken() {
	sh.mu.Lock()
	sh.broken = true
	sh.mu.Unlock()
}

// listened reports whether someone listens to name.
func (sh *pubsubShard) listened(name string) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return len(sh.names[name]) > 0
}

// replace closes old and subscribes every channel of the shard again on a new
// connection (on Cluster the node of the slot as the slot map names it now),
// whose confirmation resyncs them. It returns nil when the shard stops.
func (sh *pubsubShard) replace(old *redis.PubSub) *redis.PubSub {
	_ = old.Close()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.stopping {
		return nil
	}
	sh.broken = true
	ps := sh.newPubSub(sh.base)
	sh.ps = ps
	names := make([]string, 0, len(sh.names))
	for n := range sh.names {
		names = append(names, n)
	}
	if len(names) > 0 {
		// On failure go-redis keeps the channels and sends them again with
		// the next Receive's connection.
		_ = sh.send(sh.base, ps, names...)
	}
	return ps
}

// confirmed handles Redis's confirmation of name's subscription: it wakes
// the Listen calls waiting for it and, after a failure, resyncs.
func (sh *pubsubShard) confirmed(log interface{ Info(string, ...any) }, name string) {
	sh.mu.Lock()
	ws := sh.waiting[name]
	delete(sh.waiting, name)
	wasBroken := sh.broken
	sh.broken = false
	sh.mu.Unlock()
	for _, c := range ws {
		close(c)
	}
	if wasBroken {
		// One command subscribes every channel again, so at its first
		// confirmation all of them are subscribed.
		log.Info("redis pub/sub subscribed again after a reconnect; resyncing subscribers")
		sh.w.r.onReconnect()
		sh.resync()
	}
}

// resync tells the readers of the shard's channels to re-read the log: the
// whole Watch on a single node or Sentinel (one shard holds every channel),
// the shard's listeners on Cluster.
func (sh *pubsubShard) resync() {
	if sh.w.cluster == nil {
		sh.w.resync()
		return
	}
	sh.mu.Lock()
	var fs []func()
	for _, ls := range sh.names {
		for _, l := range ls {
			fs = append(fs, l.resync)
		}
	}
	sh.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func (sh *pubsubShard) describe() string {
	if sh.w.cluster != nil {
		return "cluster slot " + strconv.Itoa(sh.key)
	}
	return sh.w.r.prefix + "{…}:p"
}

// slotOf is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash
// tag (the part between the first '{' and the next '}', when not empty) or
// of the whole key, modulo 16384.
func slotOf(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}
