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

// subscribeTimeout bounds the wait for Redis to confirm a subscription.
const subscribeTimeout = 10 * time.Second

// maxRetryDelay caps the pause between failed reconnects to Pub/Sub: short
// enough that subscribers catch up soon after Redis is back.
const maxRetryDelay = 2 * time.Second

// redisWatcher holds a Redis log's Pub/Sub subscriptions: one Pub/Sub
// channel per relay channel some hub listens to (Listen), shared by every
// Watch of the process and fanned out in memory.
//
// The subscriptions are grouped in shards, each one Pub/Sub connection with
// one reading goroutine: on a single node or Sentinel one shard holds every
// channel (SUBSCRIBE); on Cluster a shard holds the channels of one node
// (SSUBSCRIBE, served by the node of the channel's slot, one command per
// slot), and channels move to another shard when their slot moves. A shard
// lives while it has channels.
type redisWatcher struct {
	r       *Redis
	cluster *redis.ClusterClient // nil: single node or Sentinel

	subs atomic.Pointer[[]*redisSub] // copy on write: no lock per message

	mu      sync.Mutex              // guards shards, retired, closed, and each listener's shard
	shards  map[string]*pubsubShard // by node address on Cluster, else ""
	retired []*pubsubShard          // emptied by moves: their readers end on their own
	closed  bool
	closing chan struct{} // closed by close
}

// redisSub is one Watch caller.
type redisSub struct {
	// mu is read-held during calls, so that stop waits for those in
	// progress; shards' readers call at once without waiting on each other.
	mu      sync.RWMutex
	stopped bool
	deliver func([]*events.Event) // a message's events (Watch's hands them on one at a time)
	resync  func()
}

// Watch calls deliver with every event appended by any process sharing this
// Redis and prefix to a channel listened to (Listen), in each channel's
// order; see events.Log.
//
// Events arrive over Redis Pub/Sub, which is at most once. When a Pub/Sub
// connection drops, go-redis reconnects and subscribes again; once Redis has
// confirmed the new subscription, resync is called (single node, Sentinel),
// or each listener's resync of the channels that connection serves (Cluster),
// so that a caller re-reads (Read) from its cursors what was published during
// the gap. Events delivered after resync may repeat some of what that Read
// returns: skip events at or before the position already sent. stop must not
// be called from deliver or resync. On Cluster, deliver and resync are
// called from one goroutine per Pub/Sub connection, so at once for channels
// of different slots; one channel's events come from one, in order.
//
// On a Sentinel URL (OpenRedis with ?master_name=), Watch also listens to the
// Sentinels and moves its subscription to a promoted master as soon as they
// announce it, then calls resync (redis_failover.go); a log on a client made
// by the caller follows the master only when that connection drops. On
// Cluster, a slot that moves (migration, failover) unsubscribes its channels
// (Redis 7 sends sunsubscribe): the shard subscribes again where the slot is
// now and resyncs them.
func (r *Redis) Watch(ctx context.Context, deliver func(*events.Event), resync func()) (func(), error) {
	return r.WatchBatches(ctx, func(evs []*events.Event) {
		for _, ev := range evs {
			deliver(ev)
		}
	}, resync)
}

// WatchBatches is Watch delivering the events of each Pub/Sub message (all
// those one publish script stored on one channel, or one ephemeral event)
// in one call; see events.BatchWatcher. The slice is reused once deliver
// returns.
func (r *Redis) WatchBatches(ctx context.Context, deliver func([]*events.Event), resync func()) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, r.fail("watch", err)
	}
	s := &redisSub{deliver: deliver, resync: resync}
	if err := r.watcher.add(s); err != nil {
		return nil, err
	}
	return func() { r.watcher.remove(s) }, nil
}

// Listen subscribes to channel's Pub/Sub channel, "<prefix>{<channel>}:p" (in
// the channel's Cluster slot), and returns once Redis has confirmed it; see
// events.Log. Several calls for one channel share one subscription;
// the last release ends it.
func (r *Redis) Listen(ctx context.Context, channel string, resync func()) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, r.fail("listen", err)
	}
	return r.watcher.listen(ctx, r.pubsubChannel(channel), resync)
}

func (w *redisWatcher) add(s *redisSub) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("store: watch: %w", events.ErrClosed)
	}
	w.update(func(subs []*redisSub) []*redisSub { return append(subs, s) })
	return nil
}

// remove ends s's deliveries.
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
	w.update(func(subs []*redisSub) []*redisSub {
		out := make([]*redisSub, 0, len(subs))
		for _, x := range subs {
			if x != s {
				out = append(out, x)
			}
		}
		return out
	})
}

// update replaces the subscriber list with f's result. w.mu must be held.
func (w *redisWatcher) update(f func([]*redisSub) []*redisSub) {
	var old []*redisSub
	if p := w.subs.Load(); p != nil {
		old = *p
	}
	next := f(append([]*redisSub(nil), old...))
	w.subs.Store(&next)
}

// close ends every subscription for good. Later Watch and Listen calls fail.
func (w *redisWatcher) close() {
	w.mu.Lock()
	if !w.closed {
		close(w.closing)
	}
	w.closed = true
	w.subs.Store(&[]*redisSub{})
	shards := w.shards
	w.shards = nil
	retired := w.retired
	w.retired = nil
	w.mu.Unlock()
	for _, sh := range shards {
		sh.stop()
	}
	for _, sh := range retired {
		sh.stop()
	}
}

// listen adds a listener of Pub/Sub channel name and waits for Redis's
// confirmation of its subscription.
func (w *redisWatcher) listen(ctx context.Context, name string, resync func()) (func(), error) {
	key, node := "", (*redis.Client)(nil)
	if w.cluster != nil {
		var err error
		if node, err = w.cluster.MasterForKey(ctx, name); err != nil {
			return nil, w.r.fail("listen: find the node of "+name, err)
		}
		key = node.Options().Addr
	}
	l := &listener{resync: resync}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, fmt.Errorf("store: listen: %w", events.ErrClosed)
	}
	sh := w.shard(key, node)
	sh.users++ // keeps sh while this call runs, and then for its listener
	l.sh = sh
	w.mu.Unlock()
	if err := sh.add(ctx, name, l); err != nil {
		w.release(name, l)
		return nil, w.r.fail("listen: subscribe to "+name, err)
	}
	var once sync.Once
	return func() { once.Do(func() { w.release(name, l) }) }, nil
}

// shard returns the shard of key, making it if needed. w.mu must be held.
func (w *redisWatcher) shard(key string, node *redis.Client) *pubsubShard {
	if w.shards == nil {
		w.shards = make(map[string]*pubsubShard)
	}
	sh := w.shards[key]
	if sh == nil {
		sh = newShard(w, key, node)
		w.shards[key] = sh
	}
	return sh
}

// release drops listener l of name from its shard (the one it is on now:
// a move may have changed it), stopping the shard after its last user.
func (w *redisWatcher) release(name string, l *listener) {
	w.mu.Lock()
	sh := l.sh
	sh.remove(name, l)
	sh.users--
	last := sh.users == 0
	if last && w.shards[sh.key] == sh {
		delete(w.shards, sh.key)
	}
	w.mu.Unlock()
	if last {
		sh.stop()
	}
}

// deliver is the per-message path: one atomic load, then the message's
// events to each watcher at once.
func (w *redisWatcher) deliver(evs []*events.Event) {
	for _, s := range *w.subs.Load() {
		s.mu.RLock()
		if !s.stopped {
			s.deliver(evs)
		}
		s.mu.RUnlock()
	}
}

func (w *redisWatcher) resync() {
	for _, s := range *w.subs.Load() {
		s.mu.RLock()
		if !s.stopped {
			s.resync()
		}
		s.mu.RUnlock()
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

// Broadcast publishes an ephemeral event on its channel's Pub/Sub channel,
// which every process listening to the channel reads, without storing it:
// one PUBLISH (SPUBLISH on Cluster). Like every Pub/Sub
// message it is delivered at most once; a process that misses it (an outage)
// never sees it, which suits typing and viewing.
func (r *Redis) Broadcast(ctx context.Context, ev *events.Event) error {
	if !ev.Ephemeral {
		return fmt.Errorf("store: broadcast: event is not ephemeral; append it instead: %w", events.ErrInvalid)
	}
	name, msg := r.pubsubChannel(ev.Channel), ephemeralMessage(ev)
	var err error
	if r.watcher.cluster != nil {
		err = r.client.SPublish(ctx, name, msg).Err()
	} else {
		err = r.client.Publish(ctx, name, msg).Err()
	}
	if err != nil {
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

// parseMessage appends to dst the events of a message on a channel's Pub/Sub
// channel and returns it. Two formats carry stored events:
//
//   - "r2\n<channel>\n<epoch>\n<first seq>\n<unix ms>\n", then for each
//     event "<len(type)> <len(fields)>\n<type><fields>", their seqs
//     consecutive from the first: what redis_publish.lua publishes, one
//     message for all the events one script stored on one channel;
//   - "r1\n<channel>\n<epoch>\n<seq>\n<unix ms>\n<len(type)>\n<type><fields>",
//     one event, what relay published before r2 (read still, so that
//     processes of the release before can share a Redis with this one
//     during a rolling upgrade);
//
// and Broadcast's "e1\n…" (ephemeralMessage) an ephemeral one. The events of
// one message share its bytes: one copy for all their fields.
func parseMessage(dst []*events.Event, p string) ([]*events.Event, error) {
	if rest, ok := strings.CutPrefix(p, "e1\n"); ok {
		ev, err := parseEphemeral(rest)
		if err != nil {
			return dst, err
		}
		return append(dst, ev), nil
	}
	var f [5]string
	for i := range f {
		var ok bool
		if f[i], p, ok = strings.Cut(p, "\n"); !ok {
			return dst, fmt.Errorf("message has %d lines, want at least 6", i+1)
		}
	}
	if f[0] != "r1" && f[0] != "r2" {
		return dst, fmt.Errorf("message format %q, want r2, r1 or e1", f[0])
	}
	seq, err1 := strconv.ParseUint(f[3], 10, 64)
	ms, err2 := strconv.ParseInt(f[4], 10, 64)
	if err := errors.Join(err1, err2); err != nil || seq == 0 || f[1] == "" || f[2] == "" {
		return dst, fmt.Errorf("malformed message header %q: %v", f[1:], err)
	}
	channel, pos, t := f[1], events.Position{Epoch: f[2], Seq: seq}, time.UnixMilli(ms)
	if f[0] == "r1" {
		head, body, ok := strings.Cut(p, "\n")
		n, err := strconv.Atoi(head)
		if !ok || err != nil || n < 0 || n > len(body) {
			return dst, fmt.Errorf("malformed r1 message: type length %q: %v", head, err)
		}
		d := events.Draft{Channel: channel, Type: body[:n], Fields: []byte(body[n:])}
		return append(dst, events.NewEvent(d, pos, t)), nil
	}
	fields := []byte(p) // the events' fields, sliced from one copy
	at, start := 0, len(dst)
	for at < len(p) {
		head, _, ok := strings.Cut(p[at:], "\n")
		nt, nf, ok2 := strings.Cut(head, " ")
		lt, err1 := strconv.Atoi(nt)
		lf, err2 := strconv.Atoi(nf)
		body := at + len(head) + 1
		if !ok || !ok2 || err1 != nil || err2 != nil || lt < 0 || lf < 0 || lt > len(p)-body || lf > len(p)-body-lt {
			return dst[:start], fmt.Errorf("malformed r2 message: event %d's lengths %q", len(dst)-start+1, head)
		}
		at = body + lt + lf
		d := events.Draft{Channel: channel, Type: p[body : body+lt], Fields: fields[body+lt : at : at]}
		dst = append(dst, events.NewEvent(d, pos, t))
		pos.Seq++
	}
	if len(dst) == start {
		return dst, errors.New("malformed r2 message: no event")
	}
	return dst, nil
}
