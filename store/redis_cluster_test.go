package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/store/redistest"
	"github.com/relaydev/relay/store/storetest"
)

// TestRedisCluster runs the conformance suite, the broadcast suite and the
// interest tests against the Redis store on a private 3-master Redis
// Cluster: sharded Pub/Sub, scripts on each slot's node.
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	c := redistest.NewCluster(t, 3)
	open := func(t *testing.T, opt store.RedisOptions) *store.Redis {
		t.Helper()
		if opt.Prefix == "" {
			opt.Prefix = redistest.Prefix(t)
		}
		return openRedisWith(t, c.URL, opt)
	}
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, opt storetest.Options) events.Log {
			return open(t, store.RedisOptions{Retention: opt.Retention, IdempotencyWindow: opt.IdempotencyWindow})
		})
	})
	t.Run("Broadcast", func(t *testing.T) {
		storetest.RunBroadcast(t, func(t *testing.T) events.Log { return open(t, store.RedisOptions{}) })
	})
	t.Run("OnlyChannelsListenedTo", func(t *testing.T) {
		t.Parallel()
		testOnlyListened(t, func(t *testing.T, prefix string, onReceive func()) *store.Redis {
			return open(t, store.RedisOptions{Prefix: prefix, OnReceive: onReceive})
		})
	})
	t.Run("JoinWhilePublishing", func(t *testing.T) {
		t.Parallel()
		prefix := redistest.Prefix(t)
		testJoinWhilePublishing(t, open(t, store.RedisOptions{Prefix: prefix}), open(t, store.RedisOptions{Prefix: prefix}))
	})
}

// TestRedisInterest runs the interest tests on the single-node Redis.
func TestRedisInterest(t *testing.T) {
	t.Parallel()
	t.Run("OnlyChannelsListenedTo", func(t *testing.T) {
		t.Parallel()
		testOnlyListened(t, func(t *testing.T, prefix string, onReceive func()) *store.Redis {
			return openRedisWith(t, redistest.URL(t), store.RedisOptions{Prefix: prefix, OnReceive: onReceive})
		})
	})
	t.Run("JoinWhilePublishing", func(t *testing.T) {
		t.Parallel()
		prefix := redistest.Prefix(t)
		testJoinWhilePublishing(t, openRedis(t, redistest.URL(t), prefix, events.Retention{}),
			openRedis(t, redistest.URL(t), prefix, events.Retention{}))
	})
}

// testOnlyListened: two processes listening to disjoint channels each
// receive exactly their channels' events, counted by OnReceive, and nothing
// of the other's.
func testOnlyListened(t *testing.T, open func(t *testing.T, prefix string, onReceive func()) *store.Redis) {
	prefix := redistest.Prefix(t)
	const channels, each = 12, 5
	var received [2]atomic.Int64
	var got [2]collector
	var logs [2]*store.Redis
	for i := range logs {
		logs[i] = open(t, prefix, func() { received[i].Add(1) })
		stop, err := logs[i].Watch(context.Background(), got[i].deliver, got[i].resync)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		for c := range channels {
			listen(t, logs[i], got[i].resync, fmt.Sprintf("only_%d_%d", i, c))
		}
	}
	var want [2][]*events.Event
	for n := range each {
		for c := range channels {
			for i := range logs {
				d := events.Draft{Channel: fmt.Sprintf("only_%d_%d", i, c), Type: "t", Fields: fmt.Appendf(nil, `"n":%d`, n)}
				evs, err := logs[1-i].Append(context.Background(), []events.Draft{d})
				if err != nil {
					t.Fatal(err)
				}
				want[i] = append(want[i], evs...)
			}
		}
	}
	// Channels nobody listens to cost nothing to either process.
	for c := range channels {
		if _, err := logs[0].Append(context.Background(), []events.Draft{{Channel: fmt.Sprintf("nobody_%d", c), Type: "t"}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range logs {
		waitFor(t, fmt.Sprintf("process %d did not get its %d events", i, len(want[i])), func() bool {
			evs, _ := got[i].snapshot()
			return len(evs) >= len(want[i])
		})
	}
	// A last event on a channel of each, after everything else: once it is
	// in, anything stray would have arrived (per-node order on Cluster:
	// each node's channels get one).
	for i := range logs {
		for c := range channels {
			d := events.Draft{Channel: fmt.Sprintf("only_%d_%d", i, c), Type: "last"}
			evs, err := logs[0].Append(context.Background(), []events.Draft{d})
			if err != nil {
				t.Fatal(err)
			}
			want[i] = append(want[i], evs...)
		}
	}
	for i := range logs {
		waitFor(t, fmt.Sprintf("process %d did not get its last events", i), func() bool {
			evs, _ := got[i].snapshot()
			return len(evs) >= len(want[i])
		})
		evs, resyncs := got[i].snapshot()
		if len(evs) != len(want[i]) || resyncs != 0 {
			t.Errorf("process %d: got %d events and %d resyncs, want exactly its %d events and none", i, len(evs), resyncs, len(want[i]))
		}
		byCh := map[string][]events.Position{}
		for _, e := range want[i] {
			byCh[e.Channel] = append(byCh[e.Channel], e.Pos)
		}
		gotCh := map[string][]events.Position{}
		for _, e := range evs {
			gotCh[e.Channel] = append(gotCh[e.Channel], e.Pos)
		}
		for ch, ps := range byCh {
			if fmt.Sprint(gotCh[ch]) != fmt.Sprint(ps) {
				t.Errorf("process %d channel %s: got %v, want %v", i, ch, gotCh[ch], ps)
			}
		}
		if n := received[i].Load(); n != int64(len(want[i])) {
			t.Errorf("process %d received %d messages from Redis, want %d (its channels' events only)", i, n, len(want[i]))
		}
	}
}

// sink collects what a subscription delivers.
type sink struct {
	evs    []*events.Event
	resets int
}

func (s *sink) Event(ev *events.Event) error { s.evs = append(s.evs, ev); return nil }
func (s *sink) Reset(string) error           { s.resets++; return nil }

// testJoinWhilePublishing: subscribers join a channel (with a cursor, and
// live only) on one process while another publishes to it as fast as it
// can; each gets every event after its start exactly once, in order. Each
// round uses a channel nobody listened to before, so Subscribe's Listen is
// the channel's first.
func testJoinWhilePublishing(t *testing.T, pub, sub *store.Redis) {
	ctx := context.Background()
	hub := events.NewHub(sub, events.HubOptions{})
	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	const rounds, total = 6, 300
	for round := range rounds {
		ch := fmt.Sprintf("join_%d", round)
		var mu sync.Mutex
		var published []*events.Event
		var wg sync.WaitGroup
		started := make(chan struct{})
		wg.Go(func() {
			for i := range total {
				evs, err := pub.Append(ctx, []events.Draft{{Channel: ch, Type: "t", Fields: fmt.Appendf(nil, `"i":%d`, i)}})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				published = append(published, evs...)
				mu.Unlock()
				if i == total/10 {
					close(started)
				}
			}
		})
		<-started
		mu.Lock()
		at := published[len(published)/2] // a cursor some events back
		mu.Unlock()
		withCursor, err := hub.Subscribe(ctx, []string{ch}, events.Cursor{ch: at.Pos})
		if err != nil {
			t.Fatal(err)
		}
		liveOnly, err := hub.Subscribe(ctx, []string{ch}, nil)
		if err != nil {
			t.Fatal(err)
		}
		head := liveOnly.Position(ch)
		// A fresh channel: its events are seqs 1 to total.
		for _, tc := range []struct {
			name  string
			s     *events.Subscription
			after uint64
		}{{"cursor", withCursor, at.Pos.Seq}, {"live", liveOnly, head.Seq}} {
			wg.Go(func() {
				defer tc.s.Close()
				var k sink
				if err := tc.s.Replay(ctx, &k); err != nil {
					t.Error(err)
					return
				}
				deadline := time.After(20 * time.Second)
				for len(k.evs) == 0 || k.evs[len(k.evs)-1].Pos.Seq < total {
					select {
					case <-tc.s.Ready():
						for _, ev := range tc.s.Take(nil) {
							if err := tc.s.Deliver(ctx, ev, &k); err != nil {
								t.Error(err)
								return
							}
						}
					case <-tc.s.Done():
						t.Errorf("round %d %s: subscription ended: %v", round, tc.name, tc.s.Err())
						return
					case <-deadline:
						t.Errorf("round %d %s: after 20 s got %d events, want up to seq %d", round, tc.name, len(k.evs), total)
						return
					}
				}
				if k.resets != 0 {
					t.Errorf("round %d %s: %d resets, want none", round, tc.name, k.resets)
				}
				for i, e := range k.evs {
					if want := tc.after + uint64(i) + 1; e.Pos.Seq != want || e.Pos.Epoch != at.Pos.Epoch {
						t.Errorf("round %d %s: event %d is %v, want seq %d: a gap or a repeat", round, tc.name, i, e.Pos, want)
						return
					}
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
}

// recording drives a subscription in a goroutine, recording what it
// delivers: events, and a nil for each reset.
type recording struct {
	mu  sync.Mutex
	got []*events.Event
	at  events.Position // where the last reset moved the client

	pos func() events.Position // the current subscription's position; drive's goroutine only
}

func (r *recording) Event(ev *events.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, ev)
	return nil
}

func (r *recording) Reset(string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got, r.at = append(r.got, nil), r.pos()
	return nil
}

// has reports whether the client has reached p: its last event, or the
// position its last reset moved it to.
func (r *recording) has(p events.Position) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return false
	}
	if e := r.got[len(r.got)-1]; e != nil {
		return e.Pos == p
	}
	return r.at == p
}

func (r *recording) snapshot() []*events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*events.Event(nil), r.got...)
}

// drive delivers the events of a subscription to channel ch to r until the
// test ends. Like a client, when delivering fails (the store is down) it
// subscribes again from its position, as a reconnect with Last-Event-ID.
func drive(t *testing.T, hub *events.Hub, ch string, r *recording) {
	t.Helper()
	s, err := hub.Subscribe(context.Background(), []string{ch}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		for ctx.Err() == nil {
			r.pos = func() events.Position { return s.Position(ch) }
			err := run(ctx, s, r)
			pos := s.Position(ch)
			s.Close()
			if ctx.Err() != nil {
				return
			}
			t.Logf("channel %s: %v; subscribing again after %v", ch, err, pos)
			for ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond) // a client's reconnect delay
				if s, err = hub.Subscribe(ctx, []string{ch}, events.Cursor{ch: pos}); err == nil {
					break
				}
			}
		}
	})
}

// run replays s to r, then delivers its live events until ctx ends or
// delivering fails.
func run(ctx context.Context, s *events.Subscription, r *recording) error {
	if err := s.Replay(ctx, r); err != nil {
		return err
	}
	for {
		select {
		case <-s.Ready():
			for _, ev := range s.Take(nil) {
				if err := s.Deliver(ctx, ev, r); err != nil {
					return err
				}
			}
		case <-s.Done():
			return s.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// TestRedisClusterNodeRestart: a cluster node killed and restarted empty
// under a running hub. Channels on the other nodes go on with no gap and no
// reset; the restarted node's channels resubscribe, resync, and get exactly
// one reset (their history is gone), then every later event: no silent loss.
func TestRedisClusterNodeRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a 3-node Redis Cluster and restarts a node")
	}
	t.Parallel()
	c, prefix, pub, hub := clusterHub(t)
	ctx := context.Background()

	// Two channels per node, found by their slot (their hash tag).
	node0 := c.Client(t, 0)
	perNode := make([][]string, len(c.Nodes))
	for i := 0; ; i++ {
		ch := fmt.Sprintf("restart_%d", i)
		slot, err := node0.ClusterKeySlot(ctx, prefix+"{"+ch+"}:m").Result()
		if err != nil {
			t.Fatal(err)
		}
		for n, node := range c.Nodes {
			if node == c.NodeOf(int(slot)) && len(perNode[n]) < 2 {
				perNode[n] = append(perNode[n], ch)
			}
		}
		full := true
		for _, chs := range perNode {
			full = full && len(chs) == 2
		}
		if full {
			break
		}
	}
	recs := map[string]*recording{}
	for _, chs := range perNode {
		for _, ch := range chs {
			recs[ch] = &recording{}
			drive(t, hub, ch, recs[ch])
		}
	}
	last := map[string]events.Position{}
	publish := func(ch string, retry bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			evs, err := pub.Append(ctx, []events.Draft{{Channel: ch, Type: "t"}})
			if err == nil {
				last[ch] = evs[0].Pos
				return
			}
			if !retry || time.Now().After(deadline) {
				t.Fatalf("append to %s: %v", ch, err)
			}
			time.Sleep(50 * time.Millisecond) // the pace of a publisher retrying
		}
	}
	arrived := func(chs ...string) {
		t.Helper()
		for _, ch := range chs {
			waitFor(t, "channel "+ch+" did not get its last event "+last[ch].String(), func() bool { return recs[ch].has(last[ch]) })
		}
	}
	const killed = 1
	var others []string
	for n, chs := range perNode {
		if n != killed {
			others = append(others, chs...)
		}
	}
	for range 5 {
		for _, chs := range perNode {
			for _, ch := range chs {
				publish(ch, false)
			}
		}
	}
	arrived(append(append([]string(nil), others...), perNode[killed]...)...)

	c.Stop(t, killed)
	for range 5 {
		for _, ch := range others {
			publish(ch, false) // the other nodes serve their slots meanwhile
		}
	}
	arrived(others...)
	c.Start(t, killed)
	for range 5 {
		for _, chs := range perNode {
			for _, ch := range chs {
				publish(ch, true)
			}
		}
	}
	arrived(append(append([]string(nil), others...), perNode[killed]...)...)

	for n, chs := range perNode {
		for _, ch := range chs {
			got := recs[ch].snapshot()
			resets := continuous(t, fmt.Sprintf("node %d channel %s", n, ch), got)
			switch {
			case n == killed && resets != 1:
				t.Errorf("channel %s of the restarted node: %d resets, want exactly 1 (its history is gone)", ch, resets)
			case n != killed && (resets != 0 || len(got) != 15 || got[0].Pos.Seq != 1):
				t.Errorf("channel %s of a node that stayed up: %d resets and %d events, want none and seqs 1-15", ch, resets, len(got))
			}
		}
	}
}

// TestRedisClusterSlotMoves: a slot migrated to another node under a
// running hub. Redis unsubscribes the slot's channels; the store subscribes
// them again on the new node and resyncs. The moved channel's keys carry the
// old node's run, so its log starts a new epoch there: exactly one reset,
// then every later event. A channel of another slot on the same node goes on
// with no gap or reset.
func TestRedisClusterSlotMoves(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a 3-node Redis Cluster and migrates a slot")
	}
	t.Parallel()
	c, prefix, pub, hub := clusterHub(t)
	ctx := context.Background()

	node0 := c.Client(t, 0)
	slotOf := func(ch string) int {
		t.Helper()
		s, err := node0.ClusterKeySlot(ctx, prefix+"{"+ch+"}:m").Result()
		if err != nil {
			t.Fatal(err)
		}
		return int(s)
	}
	var chs []string // the channel to move, then one that stays, both on node 0
	for i := 0; len(chs) < 2; i++ {
		ch := fmt.Sprintf("slot_%d", i)
		if s := slotOf(ch); c.NodeOf(s) == c.Nodes[0] && (len(chs) == 0 || s != slotOf(chs[0])) {
			chs = append(chs, ch)
		}
	}
	moved, stays := chs[0], chs[1]
	recs := map[string]*recording{}
	for _, ch := range chs {
		recs[ch] = &recording{}
		drive(t, hub, ch, recs[ch])
	}
	last := map[string]events.Position{}
	publish := func(ch string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			evs, err := pub.Append(ctx, []events.Draft{{Channel: ch, Type: "t"}})
			if err == nil {
				last[ch] = evs[0].Pos
				return
			}
			if time.Now().After(deadline) { // a MOVED fails one call, then the client knows
				t.Fatalf("append to %s: %v", ch, err)
			}
		}
	}
	arrived := func() {
		t.Helper()
		for _, ch := range chs {
			waitFor(t, "channel "+ch+" did not get its last event "+last[ch].String(), func() bool { return recs[ch].has(last[ch]) })
		}
	}
	for range 5 {
		publish(moved)
		publish(stays)
	}
	arrived()
	c.MoveSlot(t, slotOf(moved), 1)
	for range 5 {
		publish(moved)
		publish(stays)
	}
	arrived()
	for _, ch := range chs {
		got := recs[ch].snapshot()
		resets := continuous(t, "channel "+ch, got)
		switch {
		case ch == moved && resets != 1:
			t.Errorf("moved channel %s: %d resets, want exactly 1 (a new epoch on the new node)", ch, resets)
		case ch == stays && (resets != 0 || len(got) != 10):
			t.Errorf("channel %s that stayed: %d resets and %d events, want none and 10", ch, resets, len(got))
		}
	}
}

// TestRedisClusterPubSubDropped: a node drops the Pub/Sub connection that
// serves several of its slots (CLIENT KILL). go-redis's own reconnect sends
// every channel in one SSUBSCRIBE, which Redis refuses across slots; the
// store subscribes again slot by slot and resyncs. Events published while
// the connection was gone arrive with no gap, no repeat and no reset.
func TestRedisClusterPubSubDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a 3-node Redis Cluster")
	}
	t.Parallel()
	c, prefix, pub, hub := clusterHub(t)
	ctx := context.Background()
	node0 := c.Client(t, 0)
	var chs []string // four channels of node 0, in different slots
	slots := map[int64]bool{}
	for i := 0; len(chs) < 4; i++ {
		ch := fmt.Sprintf("drop_%d", i)
		s, err := node0.ClusterKeySlot(ctx, prefix+"{"+ch+"}:m").Result()
		if err != nil {
			t.Fatal(err)
		}
		if c.NodeOf(int(s)) == c.Nodes[0] && !slots[s] {
			slots[s] = true
			chs = append(chs, ch)
		}
	}
	recs := map[string]*recording{}
	for _, ch := range chs {
		recs[ch] = &recording{}
		drive(t, hub, ch, recs[ch])
	}
	last := map[string]events.Position{}
	round := func() {
		t.Helper()
		for _, ch := range chs {
			evs, err := pub.Append(ctx, []events.Draft{{Channel: ch, Type: "t"}})
			if err != nil {
				t.Fatal(err)
			}
			last[ch] = evs[0].Pos
		}
	}
	arrived := func() {
		t.Helper()
		for _, ch := range chs {
			waitFor(t, "channel "+ch+" did not get its last event "+last[ch].String(), func() bool { return recs[ch].has(last[ch]) })
		}
	}
	for range 3 {
		round()
	}
	arrived()
	if n, err := node0.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Int(); err != nil || n != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub on node 0 = %d, %v; want the store's one connection there", n, err)
	}
	for range 3 {
		round()
	}
	arrived()
	for _, ch := range chs {
		got := recs[ch].snapshot()
		if len(got) != 6 {
			t.Errorf("channel %s: got %d deliveries, want its 6 events", ch, len(got))
		}
		for i, e := range got {
			if e == nil || e.Pos.Seq != uint64(i+1) {
				t.Errorf("channel %s: delivery %d is %v, want seq %d (no reset, gap or repeat)", ch, i, e, i+1)
			}
		}
	}
}

// clusterHub starts a private 3-master cluster, and on it a store to
// publish through and a hub of another store, subscribed by interest, both
// under one fresh prefix.
func clusterHub(t *testing.T) (*redistest.Cluster, string, *store.Redis, *events.Hub) {
	t.Helper()
	c := redistest.NewCluster(t, 3)
	prefix := redistest.Prefix(t)
	pub := openRedis(t, c.URL, prefix, events.Retention{})
	sub := openRedis(t, c.URL, prefix, events.Retention{})
	hub := events.NewHub(sub, events.HubOptions{Logger: testLogger(t)})
	if err := hub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	return c, prefix, pub, hub
}

// continuous checks that what a recording holds (events, nil for a reset)
// has no gap and no repeat between resets, and returns how many resets it
// holds.
func continuous(t *testing.T, name string, got []*events.Event) (resets int) {
	t.Helper()
	var prev *events.Event
	for i, e := range got {
		if e == nil {
			resets++
			prev = nil
			continue
		}
		if prev != nil && (e.Pos.Epoch != prev.Pos.Epoch || e.Pos.Seq != prev.Pos.Seq+1) {
			t.Errorf("%s: event %d is %v after %v: a gap or a repeat", name, i, e.Pos, prev.Pos)
		}
		prev = e
	}
	return resets
}
