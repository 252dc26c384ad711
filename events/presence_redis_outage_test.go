package events_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/store/redistest"
)

// outageTTL is the hold lifetime in the Redis outage tests: a heartbeat
// every second.
const outageTTL = 3 * time.Second

// TestPresenceRedisOutage: two relay processes (two trackers, each on its
// own store.Redis) share a private redis-server; alice and carol are
// connected to a, bob and carol to b. Redis restarts empty; or stalls for
// longer than the holds last and comes back with its data; or b alone cannot
// reach it for that long (a sweeps b's users and announces them left). Within one
// heartbeat of Redis answering again, presence lists every connected user
// (alice with the ticket she views), and every left announced for one of
// them is followed by joined.
//
// The announcements go through one in-memory hub that both trackers
// publish to: what is under test is presence, not how the event log itself
// weathers the outage.
func TestPresenceRedisOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts its own redis-server and waits out hold lifetimes; -short skips it")
	}
	for _, tc := range []struct {
		name  string
		p     redistest.Persistence
		fault func(t *testing.T, o *outage)
	}{
		{"RestartedEmpty", redistest.NoPersistence, func(t *testing.T, o *outage) {
			o.srv.Stop(t)
			o.srv.Start(t)
		}},
		{"StalledPastHoldTTL", redistest.AOF, func(t *testing.T, o *outage) {
			// The outage lasts past the holds' lifetime (every hold written
			// before it has expired) and until each process has seen a
			// heartbeat or a sweep fail: a stall both processes noticed. A
			// fixed stall (it was 1.33 hold lifetimes) assumed the second:
			// that each process's first call into the stall had failed by its
			// end (a call waits up to the Redis client's 2 s read timeout, and
			// a heartbeat just before the stall starts that call 1 to 1.5 s
			// in), which a loaded machine need not give; a process whose call
			// is answered when Redis comes back has seen no outage.
			failed := o.beats.failed()
			o.srv.Pause(t)
			paused := time.Now()
			deadline := paused.Add(3 * outageTTL)
			for time.Since(paused) <= outageTTL || !o.beats.failedSince(failed) {
				if time.Now().After(deadline) {
					o.srv.Resume(t)
					t.Fatalf("heartbeats and sweeps failed per process after %v of stall: %v, want one more than %v each", 3*outageTTL, o.beats.failed(), failed)
				}
				time.Sleep(10 * time.Millisecond)
			}
			o.srv.Resume(t)
			t.Logf("stalled %v; heartbeats and sweeps failed per process: %v", time.Since(paused).Round(time.Millisecond), o.beats.failed())
		}},
		{"OneProcessCutOffPastHoldTTL", redistest.NoPersistence, func(t *testing.T, o *outage) {
			a, b := o.a, o.b
			b.Cut()
			// Until a has swept bob (b's hold on carol goes too; a's stays).
			deadline := time.Now().Add(outageTTL + 2*outageTTL/3 + time.Second)
			for online(context.Background(), a, []string{"7 alice", "8 bob", "9 carol"}) {
				if time.Now().After(deadline) {
					t.Fatalf("a still lists bob %v after b was cut off from Redis", outageTTL+2*outageTTL/3+time.Second)
				}
				time.Sleep(10 * time.Millisecond)
			}
			b.Heal()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testPresenceRedisOutage(t, redistest.NewServerWith(t, tc.p), tc.fault)
		})
	}
}

func testPresenceRedisOutage(t *testing.T, srv *redistest.Server, fault func(*testing.T, *outage)) {
	ctx := context.Background()
	const prefix = "relaytest:presence-outage:"
	cfg := events.PresenceConfig{HoldTTL: outageTTL}
	every := outageTTL / 3
	beats := newBeatCounter(slog.NewTextHandler(t.Output(), nil), "a", "b")
	logger := slog.New(beats)

	mem := store.NewMemory(events.Retention{})
	hub := events.NewHub(mem, events.HubOptions{Logger: logger})
	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sub, err := hub.Subscribe(context.Background(), []string{events.PresenceChannel("1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close(); hub.Close(); mem.Close() })
	if err := sub.Replay(ctx, discard{}); err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, srv.Addr) // b's way to Redis
	process := func(name, url string) *events.Tracker {
		r, err := store.OpenRedis(ctx, url, store.RedisOptions{Prefix: prefix, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		tr := events.NewTracker(hub, r.Presence(), cfg, logger.With("process", name))
		tr.Start()
		t.Cleanup(func() { tr.Close(); r.Close() }) // before the hub's cleanup
		return tr
	}
	a := process("a", srv.URL)
	mustConnect(t, a, "1", "7", "alice")
	mustConnect(t, a, "1", "9", "carol")
	ticket := int64(42)
	if err := a.Viewing(ctx, "1", "7", "alice", &ticket); err != nil {
		t.Fatal(err)
	}
	time.Sleep(every / 2) // b's heartbeats fall between a's, so one of them sweeps first
	b := process("b", "redis://"+proxy.addr+"/0")
	mustConnect(t, b, "1", "8", "bob")
	mustConnect(t, b, "1", "9", "carol")
	all := []string{"7 alice", "8 bob", "9 carol"}
	wantOnline(t, a, all...)
	var seen []string
	drain := func() {
		for _, ev := range sub.Take(nil) {
			var m struct {
				Action string `json:"action"`
				UserID string `json:"user_id"`
			}
			if err := json.Unmarshal(ev.JSON(), &m); err == nil && ev.Type == "user_status" {
				seen = append(seen, m.Action+" "+m.UserID)
			}
		}
	}
	drain()
	seen = nil

	fault(t, &outage{srv: srv, b: proxy, a: a, beats: beats})
	back := time.Now()
	// One heartbeat, the loop's tick, and a second for a machine under load.
	deadline := back.Add(every + loopTick + time.Second)
	for !online(ctx, a, all) {
		if time.Now().After(deadline) {
			drain()
			users, err := a.Users(ctx, "1")
			t.Fatalf("%v after Redis answered again: users %+v (%v), want %q; announced %q", time.Since(back), users, err, all, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("every connected user listed %v after Redis answered again", time.Since(back).Round(time.Millisecond))

	// Let each process beat three times more, so any sweep that an outage
	// could still cause has run, then check what was announced.
	waitRefreshed(t, srv, prefix, back.Add(2*every+outageTTL), back.Add(4*every+time.Second))
	drain()
	wantOnline(t, a, all...)
	last := map[string]string{}
	for _, s := range seen {
		action, user, _ := strings.Cut(s, " ")
		last[user] = action
	}
	for user, action := range last {
		if action != "joined" {
			t.Errorf("user %s, still connected, was last announced %s; announced %q", user, action, seen)
		}
	}
	t.Logf("announced after the outage: %q", seen)
}

// outage is what a fault acts on: the Redis, b's way to it, process a, and
// the count of each process's failed heartbeats and sweeps.
type outage struct {
	srv   *redistest.Server
	b     *cutProxy
	a     *events.Tracker
	beats *beatCounter
}

// beatCounter is a slog.Handler in front of the test's log that counts,
// per process (the logger's "process" attribute), the heartbeats and sweeps
// that failed (the tracker logs each).
type beatCounter struct {
	slog.Handler
	process string
	counts  map[string]*atomic.Int64 // made for every process up front
}

func newBeatCounter(h slog.Handler, processes ...string) *beatCounter {
	b := &beatCounter{Handler: h, counts: map[string]*atomic.Int64{}}
	for _, p := range processes {
		b.counts[p] = new(atomic.Int64)
	}
	return b
}

func (b *beatCounter) Handle(ctx context.Context, r slog.Record) error {
	if n := b.counts[b.process]; n != nil && (strings.HasPrefix(r.Message, "presence: heartbeat failed") || r.Message == "presence: sweep failed") {
		n.Add(1)
	}
	return b.Handler.Handle(ctx, r)
}

func (b *beatCounter) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *b
	c.Handler = b.Handler.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == "process" {
			c.process = a.Value.String()
		}
	}
	return &c
}

func (b *beatCounter) WithGroup(name string) slog.Handler {
	c := *b
	c.Handler = b.Handler.WithGroup(name)
	return &c
}

// failed returns each process's failed heartbeats and sweeps so far.
func (b *beatCounter) failed() map[string]int64 {
	m := map[string]int64{}
	for p, n := range b.counts {
		m[p] = n.Load()
	}
	return m
}

// failedSince reports whether every process has failed a heartbeat or a
// sweep since before was taken.
func (b *beatCounter) failedSince(before map[string]int64) bool {
	for p, n := range b.counts {
		if n.Load() <= before[p] {
			return false
		}
	}
	return true
}

// online reports whether tr lists exactly want in project 1, alice viewing 42.
func online(ctx context.Context, tr *events.Tracker, want []string) bool {
	users, err := tr.Users(ctx, "1")
	if err != nil || len(users) != len(want) {
		return false
	}
	for i, u := range users {
		if u.UserID+" "+u.Name != want[i] || u.UserID == "7" && (u.Viewing == nil || *u.Viewing != 42) {
			return false
		}
	}
	return true
}

// waitRefreshed polls until every hold in Redis expires at or after since (its
// process beat since), failing at deadline.
func waitRefreshed(t *testing.T, srv *redistest.Server, prefix string, since, deadline time.Time) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	for {
		holds, err := c.ZRangeWithScores(context.Background(), prefix+"{presence}:holds", 0, -1).Result()
		oldest := int64(-1)
		if err == nil && len(holds) > 0 {
			oldest = int64(holds[0].Score)
			for _, h := range holds {
				oldest = min(oldest, int64(h.Score))
			}
			if oldest >= since.UnixMilli() {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("holds not all refreshed past %v by %v: %v (%v)", since, deadline, holds, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cutProxy forwards TCP connections to a Redis; Cut closes them and refuses
// new ones (the process behind it cannot reach Redis; others can) until Heal.
type cutProxy struct {
	addr string
	ln   net.Listener
	to   string
	mu   sync.Mutex
	cut  bool
	open map[net.Conn]bool
	wg   sync.WaitGroup
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{addr: ln.Addr().String(), ln: ln, to: to, open: map[net.Conn]bool{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() { ln.Close(); p.Cut(); p.wg.Wait() })
	return p
}

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, up) {
			continue
		}
		p.wg.Go(func() { _, _ = io.Copy(up, c); up.Close(); c.Close() })
		p.wg.Go(func() { _, _ = io.Copy(c, up); up.Close(); c.Close() })
	}
}

// track registers a pair of connections, or closes them while cut.
func (p *cutProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		if p.cut {
			c.Close()
		} else {
			p.open[c] = true
		}
	}
	return !p.cut
}

// Cut closes every forwarded connection and refuses new ones until Heal.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.open {
		c.Close()
		delete(p.open, c)
	}
}

// Heal forwards new connections again.
func (p *cutProxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}
