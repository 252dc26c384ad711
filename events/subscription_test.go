package events_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
)

// newHub returns a started hub over a memory log with the given retention.
func newHub(t *testing.T, ret events.Retention) *events.Hub {
	t.Helper()
	return newMemoryHub(t, ret, events.HubOptions{})
}

// newMemoryHub is a started hub with opts over a memory log, both closed at
// the end of the test.
func newMemoryHub(t *testing.T, ret events.Retention, opts events.HubOptions) *events.Hub {
	t.Helper()
	mem := store.NewMemory(ret)
	hub := events.NewHub(mem, opts)
	if err := hub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hub.Close()
		mem.Close()
	})
	return hub
}

// publish appends n events to channel and returns them.
func publish(t *testing.T, hub *events.Hub, channel string, n int) []*events.Event {
	t.Helper()
	drafts := make([]events.Draft, n)
	for i := range drafts {
		d, err := events.NewDraft(channel, "t", i)
		if err != nil {
			t.Fatal(err)
		}
		drafts[i] = d
	}
	evs, err := hub.Publish(context.Background(), drafts...)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func subscribe(t *testing.T, hub *events.Hub, channels []string, cur events.Cursor) *events.Subscription {
	t.Helper()
	sub, err := hub.Subscribe(context.Background(), channels, cur)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// sink records what a subscription delivers, as "channel:seq" and "reset:channel".
type sink struct {
	got  []string
	fail error // returned by Event when set
}

func (s *sink) Event(ev *events.Event) error {
	if s.fail != nil {
		return s.fail
	}
	s.got = append(s.got, ev.Channel+":"+ev.Pos.String())
	return nil
}

func (s *sink) Reset(channel string) error {
	s.got = append(s.got, "reset:"+channel)
	return nil
}

// ids formats events as the sink records them.
func ids(evs ...*events.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Channel + ":" + ev.Pos.String()
	}
	return out
}

// drain delivers every queued live event in order.
func drain(t *testing.T, sub *events.Subscription, s *sink) {
	t.Helper()
	for _, ev := range sub.Take(nil) {
		if err := sub.Deliver(context.Background(), ev, s); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHubSubscribers(t *testing.T) {
	hub := newHub(t, events.Retention{})
	a := subscribe(t, hub, []string{"c", "d"}, nil)
	b := subscribe(t, hub, []string{"c"}, nil)
	if n := hub.Subscribers(); n != 2 {
		t.Errorf("Subscribers: got %d, want 2", n)
	}
	a.Close()
	a.Close() // idempotent
	if n := hub.Subscribers(); n != 1 {
		t.Errorf("Subscribers after a Close: got %d, want 1", n)
	}
	publish(t, hub, "d", 1)
	if n := len(a.Take(nil)); n != 0 {
		t.Errorf("a closed subscription got %d live events, want none", n)
	}
	b.Close()
	hub.Close()
	hub.Close() // idempotent
	if _, err := hub.Subscribe(context.Background(), []string{"c"}, nil); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Subscribe after Close: got %v, want ErrClosed", err)
	}
}

// TestReplayThenLive checks the catch-up: live events buffered while the
// history is read are dropped when history already sent them; the rest
// follow with no gap.
func TestReplayThenLive(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		before int // events published before subscribing
		after  int // the cursor's seq; -1: no cursor; 0: Beginning
		during int // events published after subscribing, before Replay
		want   []int
	}{
		// Live only from Subscribe's return: the events published after it
		// (here, before Replay) are delivered; the older ones are not.
		{"no cursor is live from Subscribe", 3, -1, 2, []int{4, 5}},
		{"beginning replays all", 3, 0, 2, []int{1, 2, 3, 4, 5}},
		{"cursor mid-history", 5, 2, 2, []int{3, 4, 5, 6, 7}},
		{"cursor at head", 3, 3, 2, []int{4, 5}},
		{"beginning of an empty channel", 0, 0, 2, []int{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hub := newHub(t, events.Retention{})
			before := publish(t, hub, "c", tc.before)
			var cur events.Cursor
			switch {
			case tc.after == 0:
				cur = events.Cursor{"c": events.Beginning}
			case tc.after > 0:
				cur = events.Cursor{"c": before[tc.after-1].Pos}
			}
			sub := subscribe(t, hub, []string{"c"}, cur)
			during := publish(t, hub, "c", tc.during)
			s := &sink{}
			if err := sub.Replay(ctx, s); err != nil {
				t.Fatal(err)
			}
			drain(t, sub, s)
			all := append(before, during...)
			var want []string
			for _, seq := range tc.want {
				want = append(want, ids(all[seq-1])...)
			}
			if !slices.Equal(s.got, want) {
				t.Errorf("delivered: got %v, want %v", s.got, want)
			}
			// Then strictly live.
			next := publish(t, hub, "c", 1)
			drain(t, sub, s)
			if got := s.got[len(s.got)-1]; got != ids(next...)[0] {
				t.Errorf("live: got %s, want %s", got, ids(next...)[0])
			}
			if got, want := sub.Position("c"), next[0].Pos; got != want {
				t.Errorf("Position: got %v, want %v", got, want)
			}
		})
	}
}

// TestDeliver drives Deliver directly: duplicates are dropped and a gap is
// filled from the log, in order.
func TestDeliver(t *testing.T) {
	ctx := context.Background()
	hub := newHub(t, events.Retention{})
	// Both channels have a log, so the subscription starts at a real head
	// (TestDeliverEmptyPosition covers channels with none).
	publish(t, hub, "c", 1)
	publish(t, hub, "d", 1)
	sub := subscribe(t, hub, []string{"c", "d"}, nil)
	s := &sink{}
	if err := sub.Replay(ctx, s); err != nil {
		t.Fatal(err)
	}
	evs := publish(t, hub, "c", 5)
	d := publish(t, hub, "d", 2)
	if n := len(sub.Take(nil)); n != 7 { // the test hands events to Deliver itself
		t.Fatalf("queued %d live events, want 7", n)
	}
	steps := []struct {
		name string
		ev   *events.Event
		want []string // appended to what the sink has
	}{
		{"next in order", evs[0], ids(evs[0])},
		{"duplicate", evs[0], nil},
		// A fill reads the log to its head, past the event that showed the gap.
		{"gap filled from the log", evs[3], ids(evs[1], evs[2], evs[3], evs[4])},
		{"older than the position", evs[2], nil},
		{"duplicate of a filled event", evs[4], nil},
		{"other channel, own position", d[1], ids(d[0], d[1])},
		{"duplicate on the other channel", d[0], nil},
	}
	for _, st := range steps {
		n := len(s.got)
		if err := sub.Deliver(ctx, st.ev, s); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := s.got[n:]; !slices.Equal(got, st.want) {
			t.Errorf("%s: got %v, want %v", st.name, got, st.want)
		}
	}
	if got := string(sub.AppendCursor(nil)); got != "c="+evs[4].ID()+",d="+d[1].ID() {
		t.Errorf("AppendCursor: got %q, want c=%s,d=%s", got, evs[4].ID(), d[1].ID())
	}
}

// TestDeliverEmptyPosition: a subscription to channels with no log starts at
// empty positions; the first live event of each, whichever it is, fills
// from the log from the new epoch's first event up to itself, and later
// ones are delivered once, in order.
func TestDeliverEmptyPosition(t *testing.T) {
	ctx := context.Background()
	hub := newHub(t, events.Retention{})
	sub := subscribe(t, hub, []string{"c", "d"}, nil)
	for _, ch := range sub.Channels() {
		if p := sub.Position(ch); !p.IsEmpty() {
			t.Fatalf("Position(%s) of a channel with no log = %v, want an empty position", ch, p)
		}
	}
	s := &sink{}
	if err := sub.Replay(ctx, s); err != nil {
		t.Fatal(err)
	}
	evs := publish(t, hub, "c", 3)
	d := publish(t, hub, "d", 1)
	if n := len(sub.Take(nil)); n != 4 { // the test hands events to Deliver itself
		t.Fatalf("queued %d live events, want 4", n)
	}
	for _, st := range []struct {
		name string
		ev   *events.Event
		want []string
	}{
		// The fill stops at the live event: what follows comes live.
		{"a later event first: the epoch from its start", evs[1], ids(evs[0], evs[1])},
		{"then a duplicate", evs[0], nil},
		{"then the next", evs[2], ids(evs[2])},
		{"other channel", d[0], ids(d[0])},
	} {
		n := len(s.got)
		if err := sub.Deliver(ctx, st.ev, s); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := s.got[n:]; !slices.Equal(got, st.want) {
			t.Errorf("%s: got %v, want %v", st.name, got, st.want)
		}
	}
	if got := string(sub.AppendCursor(nil)); got != "c="+evs[2].ID()+",d="+d[0].ID() {
		t.Errorf("AppendCursor: got %q, want c=%s,d=%s", got, evs[2].ID(), d[0].ID())
	}
}

// TestReplayReset checks that a cursor the log cannot answer yields one
// Reset for its channel, then live events from the head.
func TestReplayReset(t *testing.T) {
	ctx := context.Background()
	hub := newHub(t, events.Retention{MaxEvents: 3})
	evs := publish(t, hub, "c", 6)
	keep := publish(t, hub, "d", 2)
	for _, tc := range []struct {
		name string
		cur  events.Position
	}{
		{"trimmed", evs[0].Pos},
		{"unknown epoch", events.Position{Epoch: "zzz", Seq: 1}},
		{"ahead of head", events.Position{Epoch: evs[0].Pos.Epoch, Seq: 99}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := subscribe(t, hub, []string{"c", "d"}, events.Cursor{"c": tc.cur, "d": keep[0].Pos})
			s := &sink{}
			if err := sub.Replay(ctx, s); err != nil {
				t.Fatal(err)
			}
			if want := append([]string{"reset:c"}, ids(keep[1])...); !slices.Equal(s.got, want) {
				t.Errorf("replay: got %v, want %v", s.got, want)
			}
			if got := sub.Position("c"); got != evs[5].Pos {
				t.Errorf("position after reset: got %v, want the head %v", got, evs[5].Pos)
			}
		})
	}
}

// TestReplayLongHistory replays more than one page of history.
func TestReplayLongHistory(t *testing.T) {
	hub := newHub(t, events.Retention{})
	evs := publish(t, hub, "c", 2*events.ReplayPage+7)
	sub := subscribe(t, hub, []string{"c"}, events.Cursor{"c": evs[2].Pos})
	s := &sink{}
	if err := sub.Replay(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	if want := ids(evs[3:]...); !slices.Equal(s.got, want) {
		t.Errorf("replayed %d events, want %d in order", len(s.got), len(want))
	}
}

// TestSinkError stops a replay at the sink's first error.
func TestSinkError(t *testing.T) {
	hub := newHub(t, events.Retention{})
	publish(t, hub, "c", 3)
	sub := subscribe(t, hub, []string{"c"}, events.Cursor{"c": events.Beginning})
	boom := errors.New("client gone")
	if err := sub.Replay(context.Background(), &sink{fail: boom}); !errors.Is(err, boom) {
		t.Errorf("Replay: got %v, want the sink's error", err)
	}
}

// swapLog is a log that can be replaced by a fresh one in place, as a Redis
// restarted empty or flushed is: the same channels, a new epoch. The hub
// watches only the first log; tests hand later events to Deliver.
type swapLog struct {
	*store.Memory // the first log, which the hub watches
	cur           atomic.Pointer[store.Memory]
}

func newSwapLog(t *testing.T) *swapLog {
	l := &swapLog{Memory: store.NewMemory(events.Retention{})}
	l.cur.Store(l.Memory)
	t.Cleanup(func() { l.Memory.Close() })
	return l
}

// swap replaces the log by an empty one and returns it.
func (l *swapLog) swap(t *testing.T) *store.Memory {
	m := store.NewMemory(events.Retention{})
	t.Cleanup(func() { m.Close() })
	l.cur.Store(m)
	return m
}

func (l *swapLog) Append(ctx context.Context, d []events.Draft) ([]*events.Event, error) {
	return l.cur.Load().Append(ctx, d)
}

func (l *swapLog) Read(ctx context.Context, ch string, after events.Position, n int) ([]*events.Event, error) {
	return l.cur.Load().Read(ctx, ch, after, n)
}

func (l *swapLog) Head(ctx context.Context, ch string) (events.Position, error) {
	return l.cur.Load().Head(ctx, ch)
}

// TestDeliverNewEpoch: a client never moves to a new epoch silently. A live
// event of an epoch it has not seen, the new epoch's first or a later one,
// gives a reset of its channel, then the new epoch from its start, each
// event exactly once; an epoch the log does not know gives a reset to the
// head.
func TestDeliverNewEpoch(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		first int // the new epoch's event Deliver sees first (1-based)
	}{
		{"first event of the new epoch", 1},
		{"a later event of the new epoch", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := newSwapLog(t)
			hub := events.NewHub(log, events.HubOptions{})
			if err := hub.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(hub.Close)
			old := publish(t, hub, "c", 2)
			sub := subscribe(t, hub, []string{"c"}, events.Cursor{"c": old[1].Pos})
			s := &sink{}
			if err := sub.Replay(ctx, s); err != nil {
				t.Fatal(err)
			}
			drain(t, sub, s)
			log.swap(t)
			fresh := publish(t, hub, "c", 3) // not watched: the test delivers them
			if fresh[0].Pos.Epoch == old[0].Pos.Epoch {
				t.Fatalf("the swapped log reused epoch %s", old[0].Pos.Epoch)
			}
			if err := sub.Deliver(ctx, fresh[tc.first-1], s); err != nil {
				t.Fatal(err)
			}
			for _, ev := range fresh { // the live feed then brings them all
				if err := sub.Deliver(ctx, ev, s); err != nil {
					t.Fatal(err)
				}
			}
			if want := append([]string{"reset:c"}, ids(fresh...)...); !slices.Equal(s.got, want) {
				t.Errorf("delivered: got %v, want %v", s.got, want)
			}
			if got := sub.Position("c"); got != fresh[2].Pos {
				t.Errorf("Position: got %v, want %v", got, fresh[2].Pos)
			}
		})
	}

	t.Run("epoch the log does not know", func(t *testing.T) {
		hub := newHub(t, events.Retention{})
		evs := publish(t, hub, "c", 2)
		sub := subscribe(t, hub, []string{"c"}, events.Cursor{"c": evs[1].Pos})
		s := &sink{}
		if err := sub.Replay(ctx, s); err != nil {
			t.Fatal(err)
		}
		d, _ := events.NewDraft("c", "t", nil)
		for _, seq := range []uint64{1, 3} {
			s.got = nil
			ev := events.NewEvent(d, events.Position{Epoch: "other", Seq: seq}, time.Now())
			if err := sub.Deliver(ctx, ev, s); err != nil {
				t.Fatal(err)
			}
			if want := []string{"reset:c"}; !slices.Equal(s.got, want) {
				t.Errorf("event %d of an unknown epoch: got %v, want %v", seq, s.got, want)
			}
			if got := sub.Position("c"); got != evs[1].Pos {
				t.Errorf("Position after event %d of an unknown epoch: got %v, want the head %v", seq, got, evs[1].Pos)
			}
		}
	})
}

// lossyLog is a memory log whose live feed can drop events, as a Redis
// Pub/Sub outage does, and then call resync.
type lossyLog struct {
	*store.Memory
	drop   atomic.Bool
	resync func()
}

func (l *lossyLog) Watch(ctx context.Context, deliver func(*events.Event), resync func()) (func(), error) {
	l.resync = resync
	return l.Memory.Watch(ctx, func(ev *events.Event) {
		if !l.drop.Load() {
			deliver(ev)
		}
	}, resync)
}

// TestResync checks that after the live feed lost events, the resync
// marker makes each subscription read what it missed, in order.
func TestResync(t *testing.T) {
	ctx := context.Background()
	log := &lossyLog{Memory: store.NewMemory(events.Retention{})}
	hub := events.NewHub(log, events.HubOptions{})
	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close(); log.Close() })
	sub := subscribe(t, hub, []string{"c", "d"}, nil)
	s := &sink{}
	if err := sub.Replay(ctx, s); err != nil {
		t.Fatal(err)
	}
	a := publish(t, hub, "c", 1)
	log.drop.Store(true)
	lostC := publish(t, hub, "c", 2)
	lostD := publish(t, hub, "d", 1)
	log.drop.Store(false)
	log.resync()
	drain(t, sub, s)
	want := ids(append(append(a, lostC...), lostD...)...)
	if !slices.Equal(s.got, want) {
		t.Errorf("after resync: got %v, want %v", s.got, want)
	}
}

// readCounter is a memory log that counts its Reads.
type readCounter struct {
	*store.Memory
	reads atomic.Int32
}

func (l *readCounter) Read(ctx context.Context, ch string, after events.Position, limit int) ([]*events.Event, error) {
	l.reads.Add(1)
	return l.Memory.Read(ctx, ch, after, limit)
}

// TestDeliverFirstEventReadsNothing: the first event of a channel that had no
// log reaches a live subscriber without a log read, so a first publish to a
// channel with N subscribers costs no burst of N reads.
func TestDeliverFirstEventReadsNothing(t *testing.T) {
	ctx := context.Background()
	log := &readCounter{Memory: store.NewMemory(events.Retention{})}
	hub := events.NewHub(log, events.HubOptions{})
	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close(); log.Close() })
	sub := subscribe(t, hub, []string{"c"}, nil)
	s := &sink{}
	if err := sub.Replay(ctx, s); err != nil {
		t.Fatal(err)
	}
	before := log.reads.Load()
	evs := publish(t, hub, "c", 2)
	for _, ev := range sub.Take(nil) {
		if err := sub.Deliver(ctx, ev, s); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(s.got, ids(evs[0], evs[1])) {
		t.Errorf("got %v, want %v", s.got, ids(evs[0], evs[1]))
	}
	if n := log.reads.Load() - before; n != 0 {
		t.Errorf("%d log reads for the first events, want 0", n)
	}
}
