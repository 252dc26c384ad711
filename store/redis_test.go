package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/store/redistest"
	"github.com/relaydev/relay/store/storetest"
)

func TestRedis(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, opt storetest.Options) events.Log {
		return openRedisWith(t, redistest.URL(t), store.RedisOptions{Prefix: redistest.Prefix(t),
			Retention: opt.Retention, IdempotencyWindow: opt.IdempotencyWindow})
	})
}

func openRedis(t *testing.T, url, prefix string, ret events.Retention) *store.Redis {
	t.Helper()
	return openRedisWith(t, url, store.RedisOptions{Prefix: prefix, Retention: ret})
}

func openRedisWith(t *testing.T, url string, opt store.RedisOptions) *store.Redis {
	t.Helper()
	opt.Logger = testLogger(t)
	r, err := store.OpenRedis(context.Background(), url, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func newRedis(t *testing.T, client redis.UniversalClient, prefix string) *store.Redis {
	t.Helper()
	r, err := store.NewRedis(context.Background(), client, store.RedisOptions{Prefix: prefix, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// listen makes r's Watch deliver channels until the test ends; a channel's
// resyncs call resync.
func listen(t *testing.T, r *store.Redis, resync func(), channels ...string) {
	t.Helper()
	for _, ch := range channels {
		release, err := r.Listen(context.Background(), ch, resync)
		if err != nil {
			t.Fatalf("Listen(%s): %v", ch, err)
		}
		t.Cleanup(release)
	}
}

// testLogger logs to t; stores log only before Close returns, which is before
// t ends.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// collector records deliveries and resyncs without blocking.
type collector struct {
	mu      sync.Mutex
	got     []*events.Event
	resyncs int
}

func (c *collector) deliver(e *events.Event) { c.mu.Lock(); c.got = append(c.got, e); c.mu.Unlock() }
func (c *collector) resync()                 { c.mu.Lock(); c.resyncs++; c.mu.Unlock() }

func (c *collector) snapshot() ([]*events.Event, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got), c.resyncs
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %s", what)
		}
	}
}

func ids(evs []*events.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Channel+"/"+e.Pos.String())
	}
	return out
}

// TestRedisSharedByTwoProcesses: two stores on two clients with one prefix,
// like two relay processes; what one appends, the other's Watch gets exactly
// once, in order.
func TestRedisSharedByTwoProcesses(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	a := newRedis(t, redistest.NewClient(t), prefix)
	b := newRedis(t, redistest.NewClient(t), prefix)
	var got collector
	stop, err := b.Watch(context.Background(), got.deliver, got.resync)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	listen(t, b, got.resync, "p1", "p2")
	var want []*events.Event
	for i := range 10 {
		evs, err := a.Append(context.Background(), []events.Draft{
			{Channel: "p1", Type: "t", Fields: fmt.Appendf(nil, `"i":%d`, i)},
			{Channel: "p2", Type: "t", Fields: fmt.Appendf(nil, `"i":%d`, i)},
		})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, evs...)
	}
	// A last event through b itself: once it is in, every earlier one is too.
	last, err := b.Append(context.Background(), []events.Draft{{Channel: "p1", Type: "last"}})
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, last...)
	waitFor(t, "b's Watch did not get the last event", func() bool {
		evs, _ := got.snapshot()
		return len(evs) > 0 && evs[len(evs)-1].Pos == last[0].Pos
	})
	evs, resyncs := got.snapshot()
	if !slices.Equal(ids(evs), ids(want)) {
		t.Errorf("b's Watch got %v, want %v", ids(evs), ids(want))
	}
	if resyncs != 0 {
		t.Errorf("resync called %d times without an outage", resyncs)
	}
}

// TestRedisWatchResyncsAfterDroppedConnection: when the Pub/Sub connection is
// killed, the store reconnects, calls resync, and delivers again.
func TestRedisWatchResyncsAfterDroppedConnection(t *testing.T) {
	t.Parallel()
	client := redistest.NewClient(t)
	r := newRedis(t, client, redistest.Prefix(t))
	var got collector
	stop, err := r.Watch(context.Background(), got.deliver, got.resync)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	listen(t, r, got.resync, "d")
	appendOne := func(typ string) events.Position {
		t.Helper()
		evs, err := r.Append(context.Background(), []events.Draft{{Channel: "d", Type: typ}})
		if err != nil {
			t.Fatal(err)
		}
		return evs[0].Pos
	}
	received := func(p events.Position) func() bool {
		return func() bool {
			evs, _ := got.snapshot()
			return slices.ContainsFunc(evs, func(e *events.Event) bool { return e.Pos == p })
		}
	}
	waitFor(t, "event before the outage not delivered", received(appendOne("before")))

	for round := 1; round <= 2; round++ {
		if n := redistest.KillClients(t, client.Options().ClientName, "pubsub"); n != 1 {
			t.Fatalf("killed %d pub/sub connections, want 1", n)
		}
		waitFor(t, "resync not called after the connection was killed", func() bool {
			_, resyncs := got.snapshot()
			return resyncs == round
		})
		waitFor(t, "event after the outage not delivered", received(appendOne("after")))
	}
}

// TestRedisKeys: a channel's keys share one Cluster hash slot through the
// {channel} hash tag, and expire.
func TestRedisKeys(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	client := redistest.NewClient(t)
	r := newRedis(t, client, prefix)
	if _, err := r.Append(context.Background(), []events.Draft{{Channel: "project_7:tickets", Type: "t"}}); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{prefix + "{project_7:tickets}:m", prefix + "{project_7:tickets}:s"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	for _, k := range want {
		if ttl := client.PTTL(context.Background(), k).Val(); ttl <= 0 || ttl > events.DefaultMaxAge {
			t.Errorf("PTTL %s = %v, want up to %v", k, ttl, events.DefaultMaxAge)
		}
	}
	// An idempotency key is a string in the channel's slot, kept one window.
	if _, err := r.Append(context.Background(), []events.Draft{{Channel: "project_7:tickets", Type: "t", IdempotencyKey: "k-1"}}); err != nil {
		t.Fatal(err)
	}
	key := prefix + "{project_7:tickets}:i:k-1"
	if ttl := client.PTTL(context.Background(), key).Val(); ttl <= 0 || ttl > events.IdempotencyWindow {
		t.Errorf("PTTL %s = %v, want up to %v", key, ttl, events.IdempotencyWindow)
	}
}

// TestRedisAppendTrimsByAge: an append drops the entries older than MaxAge
// from the front of the stream when the meta hash's o (a time no later than
// the oldest entry's, which spares reading the stream while it is within
// MaxAge) says some may have aged, or is missing (an older relay's hash),
// and records the oldest kept entry's time as o.
func TestRedisAppendTrimsByAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		o    func(old int64) []any // HSET arguments for o, nil: HDEL o
	}{
		{"NoOldest", nil},
		{"OldestAged", func(old int64) []any { return []any{"o", old} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix := redistest.Prefix(t)
			client := redistest.NewClient(t)
			r := newRedis(t, client, prefix)
			first := appendN(t, r, "a", 2)
			meta, stream := prefix+"{a}:m", prefix+"{a}:s"
			if o, err := client.HGet(ctx, meta, "o").Int64(); err != nil || o != first[0].Time.UnixMilli() {
				t.Fatalf("o = %d, %v after the first appends; want the first event's time %d", o, err, first[0].Time.UnixMilli())
			}
			// Age the first entry past MaxAge, as if written a day ago, and
			// the second an hour ago.
			old := first[0].Time.Add(-events.DefaultMaxAge - time.Hour).UnixMilli()
			kept := first[1].Time.Add(-time.Hour).UnixMilli()
			pipe := client.TxPipeline()
			pipe.Del(ctx, stream)
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: "1-0", Values: []any{"d", "", "t", old, "y", "t"}})
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: "2-0", Values: []any{"d", "", "t", kept, "y", "t"}})
			if tc.o == nil {
				pipe.HDel(ctx, meta, "o")
			} else {
				pipe.HSet(ctx, meta, tc.o(old)...)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			last := appendN(t, r, "a", 1)[0]
			if last.Pos.Seq != 3 {
				t.Fatalf("appended at %v, want seq 3", last.Pos)
			}
			ids, err := client.XRange(ctx, stream, "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != 2 || ids[0].ID != "2-0" || ids[1].ID != "3-0" {
				t.Errorf("stream holds %v after the append, want 2-0 and 3-0 (1-0 aged)", ids)
			}
			if o, err := client.HGet(ctx, meta, "o").Int64(); err != nil || o != kept {
				t.Errorf("o = %d, %v after trimming; want the oldest kept entry's time %d", o, err, kept)
			}
		})
	}
}

func TestRedisOptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := store.NewRedis(ctx, redistest.NewClient(t), store.RedisOptions{Prefix: "a{b}:"}); err == nil {
		t.Error("NewRedis accepted a prefix with a hash tag")
	}
	_, err := store.OpenRedis(ctx, "http://user:secret@localhost:6379", store.RedisOptions{})
	if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Errorf("OpenRedis(bad URL) = %v, want an error naming REDIS_URL, without the password", err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = store.OpenRedis(short, "redis://127.0.0.1:1/0", store.RedisOptions{})
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Errorf("OpenRedis(nothing listening) = %v, want an error saying to check REDIS_URL", err)
	}
	// Close leaves a client it did not make open.
	client := redistest.NewClient(t)
	r := newRedis(t, client, redistest.Prefix(t))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		t.Errorf("client closed by Close: %v", err)
	}
	if _, err := r.Watch(ctx, func(*events.Event) {}, func() {}); err == nil {
		t.Error("Watch after Close succeeded")
	}
	var _ io.Closer = r
}

// TestRedisServerRestart: while Redis is down, calls fail saying what to
// check; when it is back (empty), Watch resyncs and delivers again, and old
// cursors are reported gone.
func TestRedisServerRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t)
	r := openRedis(t, srv.URL, "relay:", events.Retention{})
	ctx := context.Background()
	var got collector
	stop, err := r.Watch(ctx, got.deliver, got.resync)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	listen(t, r, got.resync, "r")
	before, err := r.Append(ctx, []events.Draft{{Channel: "r", Type: "before"}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "event not delivered", func() bool { evs, _ := got.snapshot(); return len(evs) == 1 })

	srv.Stop(t)
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := r.Append(short, []events.Draft{{Channel: "r", Type: "lost"}}); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Errorf("Append with Redis down = %v, want an error saying to check REDIS_URL", err)
	}
	if err := r.Ping(short); err == nil {
		t.Error("Ping with Redis down succeeded")
	}

	srv.Start(t)
	waitFor(t, "resync not called after Redis came back", func() bool { _, n := got.snapshot(); return n >= 1 })
	after, err := r.Append(ctx, []events.Draft{{Channel: "r", Type: "after"}})
	if err != nil {
		t.Fatal(err)
	}
	if after[0].Pos.Seq != 1 || after[0].Pos.Epoch == before[0].Pos.Epoch {
		t.Errorf("first event after an empty restart at %v, want seq 1 in a new epoch", after[0].Pos)
	}
	waitFor(t, "event after the restart not delivered", func() bool {
		evs, _ := got.snapshot()
		return len(evs) == 2 && evs[1].Pos == after[0].Pos
	})
	if _, err := r.Read(ctx, "r", before[0].Pos, 10); !errors.Is(err, events.ErrCursorGone) {
		t.Errorf("Read(cursor from before the restart) = %v, want ErrCursorGone", err)
	}
}

// TestRedisScriptFlush: after SCRIPT FLUSH (or a failover to a server without
// the scripts), every call loads them again.
func TestRedisScriptFlush(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t)
	r := openRedis(t, srv.URL, "relay:", events.Retention{})
	ctx := context.Background()
	opt, err := redis.ParseURL(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(opt)
	defer admin.Close()
	for round := range 2 {
		if err := admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		evs, err := r.Append(ctx, []events.Draft{{Channel: "f", Type: "a"}, {Channel: "g", Type: "b"}, {Channel: "f", Type: "c"}})
		if err != nil {
			t.Fatalf("round %d: Append after SCRIPT FLUSH: %v", round, err)
		}
		seqs := []uint64{evs[0].Pos.Seq, evs[1].Pos.Seq, evs[2].Pos.Seq}
		if want := []uint64{uint64(2*round + 1), uint64(round + 1), uint64(2*round + 2)}; !slices.Equal(seqs, want) {
			t.Errorf("round %d: appended seqs %v, want %v (each event once, in order)", round, seqs, want)
		}
		if err := admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Read(ctx, "f", events.Beginning, 10); err != nil {
			t.Errorf("Read after SCRIPT FLUSH: %v", err)
		}
		if err := admin.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Head(ctx, "f"); err != nil {
			t.Errorf("Head after SCRIPT FLUSH: %v", err)
		}
	}
}

// TestRedisWatchBatches checks that WatchBatches hands over the events one
// publish script stored in one call, in order (the hub then wakes each
// subscriber once for them), while Watch still gets them one at a time.
func TestRedisWatchBatches(t *testing.T) {
	t.Parallel()
	r := openRedis(t, redistest.URL(t), redistest.Prefix(t), events.Retention{})
	var mu sync.Mutex
	var batches [][]string
	stop, err := r.WatchBatches(context.Background(), func(evs []*events.Event) {
		mu.Lock()
		defer mu.Unlock()
		batches = append(batches, ids(evs)) // ids copies: the slice is the store's again
	}, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var single collector
	stopSingle, err := r.Watch(context.Background(), single.deliver, single.resync)
	if err != nil {
		t.Fatal(err)
	}
	defer stopSingle()
	listen(t, r, func() {}, "c")
	drafts := []events.Draft{{Channel: "c", Type: "a"}, {Channel: "c", Type: "b"}, {Channel: "c", Type: "c"}}
	evs, err := r.Append(context.Background(), drafts)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the batch and the single events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		got, _ := single.snapshot()
		return len(batches) > 0 && len(got) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	if want := ids(evs); len(batches) != 1 || !slices.Equal(batches[0], want) {
		t.Errorf("batches: got %v, want one: %v", batches, want)
	}
	if got, _ := single.snapshot(); !slices.Equal(ids(got), ids(evs)) {
		t.Errorf("Watch: got %v, want %v", ids(got), ids(evs))
	}
}
