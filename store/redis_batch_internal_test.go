package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store/redistest"
)

// writerState polls r's writer until cond holds of (calls taken, calls
// queued), or fails after 5 s.
func writerState(t *testing.T, r *Redis, what string, cond func(taken, queued int) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		r.writer.mu.Lock()
		ok := cond(r.writer.taken, len(r.writer.queue))
		r.writer.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
	}
}

type result struct {
	evs []*events.Event
	err error
}

func appendAsync(ctx context.Context, r *Redis, typ string) chan result {
	ch := make(chan result, 1)
	go func() {
		evs, err := r.Append(ctx, []events.Draft{{Channel: "q", Type: typ}})
		ch <- result{evs, err}
	}()
	return ch
}

// stalledWriter opens a store on a private Redis, pauses it and starts one
// append, returning once that append is in flight (taken by the writer).
func stalledWriter(t *testing.T) (*Redis, *redistest.Server, chan result) {
	t.Helper()
	srv := redistest.NewServer(t)
	r, err := OpenRedis(context.Background(), srv.URL, RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if _, err := r.Append(context.Background(), []events.Draft{{Channel: "q", Type: "warm"}}); err != nil {
		t.Fatal(err) // a connection in the pool
	}
	srv.Pause(t)
	t.Cleanup(func() { srv.Resume(t) })
	inFlight := appendAsync(context.Background(), r, "in-flight")
	writerState(t, r, "the first append was not sent", func(taken, queued int) bool { return taken == 2 && queued == 0 })
	return r, srv, inFlight
}

// TestRedisWriterWithdrawsUnsent: an append whose context ends while it
// waits behind a stalled pipeline is removed, and never stored.
func TestRedisWriterWithdrawsUnsent(t *testing.T) {
	t.Parallel()
	r, srv, inFlight := stalledWriter(t)
	ctx, cancel := context.WithCancel(context.Background())
	withdrawn := appendAsync(ctx, r, "withdrawn")
	writerState(t, r, "the second append was not queued", func(_, queued int) bool { return queued == 1 })
	cancel()
	if res := <-withdrawn; !errors.Is(res.err, context.Canceled) || res.evs != nil {
		t.Errorf("withdrawn Append = %v, %v; want context.Canceled and no events", res.evs, res.err)
	}
	srv.Resume(t)
	<-inFlight // stored or not (the read timeout may have passed): Redis ran it
	last, err := r.Append(context.Background(), []events.Draft{{Channel: "q", Type: "last"}})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := r.Read(context.Background(), "q", events.Beginning, 10)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if want := []string{"warm", "in-flight", "last"}; !slices.Equal(types, want) || evs[len(evs)-1].Pos != last[0].Pos {
		t.Errorf("log holds %v, want %v (the withdrawn append never sent)", types, want)
	}
}

// TestRedisWriterCloseEndsQueued: Close ends the appends still queued with
// ErrClosed at once, lets the one in flight answer, and Append fails with
// ErrClosed after.
func TestRedisWriterCloseEndsQueued(t *testing.T) {
	t.Parallel()
	r, _, inFlight := stalledWriter(t)
	var queued []chan result
	for range 3 {
		queued = append(queued, appendAsync(context.Background(), r, "queued"))
	}
	writerState(t, r, "three appends were not queued", func(_, n int) bool { return n == 3 })
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	for i, ch := range queued {
		if res := <-ch; !errors.Is(res.err, events.ErrClosed) || res.evs != nil {
			t.Errorf("queued Append %d after Close = %v, %v; want ErrClosed and no events", i, res.evs, res.err)
		}
	}
	// The paused Redis answers nothing: the one in flight fails at the read
	// timeout, and only then does Close return.
	if res := <-inFlight; !errors.Is(res.err, events.ErrUnavailable) && !errors.Is(res.err, events.ErrClosed) {
		t.Errorf("in-flight Append = %v, want ErrUnavailable or ErrClosed", res.err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close = %v", err)
	}
	if _, err := r.Append(context.Background(), []events.Draft{{Channel: "q", Type: "after"}}); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
}

// TestAppendedReply: the publish script's reply (redis_publish.lua) read
// back into events: stored ones numbered on from the first seq, repeats with
// the id their key recorded, and a malformed reply refused.
func TestAppendedReply(t *testing.T) {
	c := &appendCall{drafts: []events.Draft{{Channel: "a", Type: "x"}, {Channel: "a", Type: "y"}, {Channel: "a", Type: "z"}}}
	g := group{channel: "a", entries: []entry{{c, 0}, {c, 1}, {c, 2}}}
	for _, tc := range []struct {
		name  string
		reply []any
		want  []string // "<id> <ms> <repeat>"; nil: an error
	}{
		{"stored, a repeat between", []any{"ep", int64(7), "1700000000000", int64(0), "old 3 1600000000000", int64(0)},
			[]string{"ep-7 1700000000000 false", "old-3 1600000000000 true", "ep-8 1700000000000 false"}},
		{"all repeats", []any{"", int64(0), "0", "e 1 5", "e 2 6", "e 1 5"},
			[]string{"e-1 5 true", "e-2 6 true", "e-1 5 true"}},
		{"one value short", []any{"ep", int64(7), "1700000000000", int64(0), int64(0)}, nil},
		{"stored with no epoch", []any{"", int64(0), "0", int64(0), int64(0), int64(0)}, nil},
		{"a malformed repeat", []any{"ep", int64(7), "1", int64(0), "old 3", int64(0)}, nil},
		{"a value of another type", []any{"ep", int64(7), "1", int64(0), []any{}, int64(0)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := redis.NewCmd(context.Background())
			cmd.SetVal(tc.reply)
			evs, err := appended(g, cmd)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("appended(%v) = %d events, want an error", tc.reply, len(evs))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, ev := range evs {
				if ev.Type != c.drafts[i].Type {
					t.Errorf("event %d has type %q, want %q", i, ev.Type, c.drafts[i].Type)
				}
				got = append(got, fmt.Sprintf("%s %d %v", ev.ID(), ev.Time.UnixMilli(), ev.Repeat))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
