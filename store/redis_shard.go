package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
)

// pubsubShard is one Pub/Sub connection of a redisWatcher and the goroutine
// reading it: every channel on a single node or Sentinel, one node's on
// Cluster (see redisWatcher).
type pubsubShard struct {
	w     *redisWatcher
	key   string        // the node's address on Cluster, else ""
	node  *redis.Client // Cluster: the node's client, which dials the connection
	users int           // listeners and Listen calls in progress; guarded by w.mu

	trk    *pubsubTracker // where the connection went (redis_failover.go)
	base   context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	ps       *redis.PubSub              // nil until the first subscribe is sent
	names    map[string][]*listener     // Pub/Sub channels subscribed or being subscribed
	waiting  map[string][]chan struct{} // Listen calls waiting for a confirmation
	broken   bool                       // single node: the connection failed since the last confirmation
	stopping bool                       // stop was called, or the shard emptied: no new connection
	done     chan struct{}              // closed when the reader ends; nil before it starts
	// unconfirmed, on Cluster, are the channels to resync at their next
	// confirmation: the connection failed or was replaced since theirs.
	unconfirmed map[string]bool
}

// listener is one Listen call's interest in a Pub/Sub channel.
type listener struct {
	resync func()
	sh     *pubsubShard // the shard it is on; guarded by redisWatcher.mu
}

func newShard(w *redisWatcher, key string, node *redis.Client) *pubsubShard {
	trk := &pubsubTracker{}
	base, cancel := context.WithCancel(withTracker(context.Background(), trk))
	return &pubsubShard{w: w, key: key, node: node, trk: trk, base: base, cancel: cancel,
		names: make(map[string][]*listener), waiting: make(map[string][]chan struct{}),
		unconfirmed: make(map[string]bool)}
}

// add registers l as a listener of name and returns once Redis has
// confirmed name's subscription (at once when it already had). On error the
// caller releases l.
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
			sh.dropWaiter(name, confirmed)
			sh.mu.Unlock()
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
	case <-sh.w.closing:
		err = redis.ErrClosed
	case <-t.C:
		err = errors.New("no confirmation of the subscription within " + subscribeTimeout.String())
	}
	// The wait may have moved with name to another shard: drop it where it
	// is now.
	sh.w.mu.Lock()
	at := l.sh
	at.mu.Lock()
	at.dropWaiter(name, confirmed)
	at.mu.Unlock()
	sh.w.mu.Unlock()
	return err
}

// dropWaiter forgets a Listen call's wait. sh.mu must be held.
func (sh *pubsubShard) dropWaiter(name string, confirmed chan struct{}) {
	ws := sh.waiting[name]
	for i, c := range ws {
		if c == confirmed {
			ws = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(sh.waiting, name)
	} else {
		sh.waiting[name] = ws
	}
}

// subscribe sends the subscription of names, connecting first and starting
// the reader when it is the shard's first. sh.mu must be held.
func (sh *pubsubShard) subscribe(ctx context.Context, names ...string) error {
	// Every dial of this connection, go-redis's reconnects included, learns
	// where it went (redis_failover.go).
	ctx = withTracker(ctx, sh.trk)
	if sh.ps != nil {
		return sh.send(ctx, sh.ps, names...)
	}
	ps := sh.newPubSub(ctx)
	if err := sh.send(ctx, ps, names...); err != nil && sh.node == nil {
		_ = ps.Close()
		return err
	}
	// On Cluster a failed send is kept: the reader's next Receive connects
	// again, and the channels resync at their confirmation.
	sh.ps = ps
	sh.start(ps)
	return nil
}

// start runs the shard's reader on ps. sh.mu must be held.
func (sh *pubsubShard) start(ps *redis.PubSub) {
	sh.done = make(chan struct{})
	var follower *masterFollower
	if opt := sh.trk.failover(); opt != nil && len(opt.SentinelAddrs) > 0 {
		follower = &masterFollower{opt: opt, trk: sh.trk, log: sh.w.r.log}
	}
	done := sh.done
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		if follower != nil {
			wg.Go(func() { follower.run(sh.base) })
		}
		sh.read(ps)
		sh.cancel() // a reader that ended on its own ends the follower too
		wg.Wait()
	}()
}

// newPubSub returns a Pub/Sub of no channel yet, hence not connected; on
// Cluster, of the shard's node.
func (sh *pubsubShard) newPubSub(ctx context.Context) *redis.PubSub {
	if sh.node != nil {
		return sh.node.SSubscribe(ctx)
	}
	return sh.w.r.client.Subscribe(ctx)
}

// send subscribes names: one SUBSCRIBE, or on Cluster one SSUBSCRIBE per
// slot (a command may not cross slots).
func (sh *pubsubShard) send(ctx context.Context, ps *redis.PubSub, names ...string) error {
	if sh.node == nil {
		return ps.Subscribe(ctx, names...)
	}
	bySlot := map[uint16][]string{}
	for _, n := range names {
		bySlot[slotOf(n)] = append(bySlot[slotOf(n)], n)
	}
	var first error
	for _, group := range bySlot {
		if err := ps.SSubscribe(ctx, group...); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// remove drops l, unsubscribing name when it was its last listener.
// redisWatcher.mu must be held.
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
	delete(sh.unconfirmed, name)
	if sh.ps == nil || sh.stopping {
		return
	}
	// An unsubscribe that fails leaves a channel nobody reads, until the
	// shard's connection is replaced or closed: harmless.
	ctx, cancel := context.WithTimeout(sh.base, subscribeTimeout)
	defer cancel()
	if sh.node != nil {
		_ = sh.ps.SUnsubscribe(ctx, name)
	} else {
		_ = sh.ps.Unsubscribe(ctx, name)
	}
}

// stop ends the shard's connection and waits for its reader. It is
// idempotent; never call it from the reader.
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
	var evs []*events.Event // one message's, reused
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
			answered := errors.As(err, &rerr) // Redis answered a subscription with an error
			switch {
			case answered && sh.node != nil && failures == 1:
				log.Info("redis cluster refused a subscription (a slot moved?); subscribing again where the slot map says, then subscribers re-read what they missed", "err", err)
			case failures == 1:
				log.Warn("redis pub/sub connection lost; reconnecting, then subscribers re-read what they missed; check that Redis is up and reachable", "err", err)
			}
			if failures > 1 && !sleep(ctx, min(50*time.Millisecond<<min(failures-2, 6), maxRetryDelay)) {
				return
			}
			if sh.node != nil {
				// The slots may be served elsewhere now (a failover, or a
				// MOVED answer), and go-redis's own reconnect sends every
				// channel in one SSUBSCRIBE, which Redis refuses across
				// slots (CROSSSLOT): after an error answer, or an outage that
				// lasts, subscribe again by slot where the map says.
				sh.w.cluster.ReloadState(ctx)
				if answered || failures >= 3 {
					if ps = sh.rehome(ctx, ps); ps == nil {
						return
					}
				}
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
				if sh.node != nil && sh.listened(m.Channel) {
					// Not ours: Redis unsubscribes a slot's channels when the
					// slot leaves its node (migration, failover).
					log.Info("redis cluster slot moved; subscribing where it is now, then subscribers re-read what they missed", "channel", m.Channel)
					sh.w.cluster.ReloadState(ctx)
					if ps = sh.rehome(ctx, ps); ps == nil {
						return
					}
				}
			}
		case *redis.Message:
			var err error
			evs, err = parseMessage(evs[:0], m.Payload)
			for range evs {
				sh.w.r.onReceive()
			}
			if len(evs) > 0 {
				sh.w.deliver(evs)
			}
			clear(evs) // nothing of the message kept past its deliveries
			if err != nil {
				log.Error("redis pub/sub message not understood; resyncing subscribers (are relay versions with different formats sharing this prefix?)", "err", err)
				sh.resyncAll()
			}
		}
	}
}

func (sh *pubsubShard) setBroken() {
	sh.mu.Lock()
	sh.broken = true
	for n := range sh.names {
		sh.unconfirmed[n] = true
	}
	sh.mu.Unlock()
}

// listened reports whether someone listens to name.
func (sh *pubsubShard) listened(name string) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return len(sh.names[name]) > 0
}

// confirmed handles Redis's confirmation of name's subscription: it wakes
// the Listen calls waiting for it and, after a failure, resyncs.
func (sh *pubsubShard) confirmed(log interface{ Info(string, ...any) }, name string) {
	sh.mu.Lock()
	ws := sh.waiting[name]
	delete(sh.waiting, name)
	wasBroken := sh.broken
	sh.broken = false
	var resyncs []func()
	if sh.unconfirmed[name] {
		delete(sh.unconfirmed, name)
		for _, l := range sh.names[name] {
			resyncs = append(resyncs, l.resync)
		}
	}
	sh.mu.Unlock()
	for _, c := range ws {
		close(c)
	}
	switch {
	case sh.node == nil && wasBroken:
		// One SUBSCRIBE subscribes every channel again, so at its first
		// confirmation all of them are subscribed: the whole Watch resyncs.
		log.Info("redis pub/sub subscribed again after a reconnect; resyncing subscribers")
		sh.w.r.onReconnect()
		sh.w.resync()
	case sh.node != nil:
		if wasBroken {
			log.Info("redis pub/sub subscribed again after a reconnect or a move; resyncing its channels")
			sh.w.r.onReconnect()
		}
		for _, f := range resyncs {
			f()
		}
	}
}

// resyncAll tells the readers of the shard's channels to re-read the log.
func (sh *pubsubShard) resyncAll() {
	if sh.node == nil {
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
	if sh.node != nil {
		return "cluster node " + sh.key
	}
	return sh.w.r.prefix + "{…}:p"
}
