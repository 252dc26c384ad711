package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/store/redistest"
)

// appendN appends n events to channel, one call each, and returns them.
func appendN(t *testing.T, log events.Log, channel string, n int) []*events.Event {
	t.Helper()
	var out []*events.Event
	for range n {
		evs, err := log.Append(context.Background(), []events.Draft{{Channel: channel, Type: "t"}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, evs...)
	}
	return out
}

// TestRedisComesBackOlder: a Redis restarted from an older snapshot has lost
// events 11-15; the channel starts a new epoch, so no cursor of the old one
// is answered (not even one inside what the snapshot kept) and no id is
// handed out twice.
func TestRedisComesBackOlder(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServerWith(t, redistest.RDB)
	r := openRedis(t, srv.URL, "relay:", events.Retention{})
	ctx := context.Background()
	handed := appendN(t, r, "old", 10)
	srv.Save(t)
	handed = append(handed, appendN(t, r, "old", 5)...)
	srv.Stop(t)
	srv.Start(t)

	for _, tc := range []struct {
		name string
		seq  uint64
	}{
		{"LostByTheRollback", 12},
		{"KeptByTheSnapshot", 5},
		{"Newest", 15},
	} {
		cursor := events.Position{Epoch: handed[0].Pos.Epoch, Seq: tc.seq}
		if evs, err := r.Read(ctx, "old", cursor, 100); !errors.Is(err, events.ErrCursorGone) {
			t.Errorf("%s: Read(after %v) = %v, %v; want ErrCursorGone", tc.name, cursor, ids(evs), err)
		}
	}
	after := appendN(t, r, "old", 20)
	if p := after[0].Pos; p.Seq != 1 || p.Epoch == handed[0].Pos.Epoch {
		t.Errorf("first append after the rollback at %v, want seq 1 in a new epoch (old %s)", p, handed[0].Pos.Epoch)
	}
	seen := map[string]bool{}
	for _, e := range handed {
		seen[e.ID()] = true
	}
	for _, e := range after {
		if seen[e.ID()] {
			t.Errorf("id %s handed out before the rollback and again after it", e.ID())
		}
	}
}

// TestRedisRestartEpochs: any restart starts new epochs, even one from an
// AOF that lost nothing (the documented cost); a pause does not.
func TestRedisRestartEpochs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		p         redistest.Persistence
		fault     func(*testing.T, *redistest.Server)
		wantEpoch bool // a new one
	}{
		{"AOFRestart", redistest.AOF, func(t *testing.T, s *redistest.Server) { s.Stop(t); s.Start(t) }, true},
		{"PauseResume", redistest.NoPersistence, func(t *testing.T, s *redistest.Server) { s.Pause(t); s.Resume(t) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.NewServerWith(t, tc.p)
			r := openRedis(t, srv.URL, "relay:", events.Retention{})
			before := appendN(t, r, "e", 3)
			tc.fault(t, srv)
			head, err := r.Head(context.Background(), "e")
			if err != nil {
				t.Fatal(err)
			}
			old := before[0].Pos.Epoch
			if newEpoch := head.Epoch != old; newEpoch != tc.wantEpoch || (newEpoch && head.Seq != 0) {
				t.Errorf("Head after %s = %v, want a new epoch %v (old %s-3)", tc.name, head, tc.wantEpoch, old)
			}
			evs, err := r.Read(context.Background(), "e", before[0].Pos, 10)
			if tc.wantEpoch && !errors.Is(err, events.ErrCursorGone) {
				t.Errorf("Read(after %v) = %v, %v; want ErrCursorGone", before[0].Pos, ids(evs), err)
			}
			if !tc.wantEpoch && (err != nil || len(evs) != 2) {
				t.Errorf("Read(after %v) = %v, %v; want events 2 and 3", before[0].Pos, ids(evs), err)
			}
		})
	}
}

// TestRedisAdoptsOlderMeta: a channel written by a relay that recorded no
// run_id keeps its epoch, and records the run_id from then on.
func TestRedisAdoptsOlderMeta(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	client := redistest.NewClient(t)
	r := newRedis(t, client, prefix)
	ctx := context.Background()
	before := appendN(t, r, "legacy", 2)
	meta := prefix + "{legacy}:m"
	if err := client.HDel(ctx, meta, "r").Err(); err != nil {
		t.Fatal(err)
	}
	next := appendN(t, r, "legacy", 1)[0]
	if want := (events.Position{Epoch: before[0].Pos.Epoch, Seq: 3}); next.Pos != want {
		t.Errorf("append to a meta hash without run_id at %v, want %v", next.Pos, want)
	}
	if run, err := client.HGet(ctx, meta, "r").Result(); err != nil || len(run) != 40 {
		t.Errorf("run_id recorded = %q, %v; want the server's 40-digit run_id", run, err)
	}
}

// TestRedisAppendAfterAnotherRun: an append that is the first call to meet
// a channel last written by another Redis server run (a rollback seen by no
// read or head yet) starts a new epoch at seq 1 and drops the old stream.
func TestRedisAppendAfterAnotherRun(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	client := redistest.NewClient(t)
	r := newRedis(t, client, prefix)
	ctx := context.Background()
	before := appendN(t, r, "run", 3)
	meta := prefix + "{run}:m"
	if err := client.HSet(ctx, meta, "r", strings.Repeat("0", 40)).Err(); err != nil {
		t.Fatal(err)
	}
	next := appendN(t, r, "run", 1)[0]
	if next.Pos.Seq != 1 || next.Pos.Epoch == before[0].Pos.Epoch {
		t.Errorf("append after another run at %v, want seq 1 in a new epoch (old %s)", next.Pos, before[0].Pos.Epoch)
	}
	if n, err := client.XLen(ctx, prefix+"{run}:s").Result(); err != nil || n != 1 {
		t.Errorf("stream holds %d entries (%v) after the new epoch, want 1", n, err)
	}
}

// TestRedisStalledPublishStoredOnce: a publish in flight while Redis is
// stalled past the read timeout fails as unavailable, and is not re-sent:
// once Redis resumes, the log holds it exactly once.
func TestRedisStalledPublishStoredOnce(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t)
	r := openRedis(t, srv.URL, "relay:", events.Retention{})
	ctx := context.Background()
	appendN(t, r, "stall", 1) // a connection in the pool

	srv.Pause(t)
	start := time.Now()
	_, err := r.Append(ctx, []events.Draft{{Channel: "stall", Type: "in-flight"}})
	took := time.Since(start)
	srv.Resume(t)
	t.Logf("Append to a stalled Redis answered in %v: %v", took, err)
	if !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("Append to a stalled Redis = %v, want ErrUnavailable", err)
	}
	if took > 3*time.Second {
		t.Errorf("Append to a stalled Redis took %v, want about the 2 s read timeout", took)
	}
	// The last event is appended after Redis ran whatever it had buffered.
	last := appendN(t, r, "stall", 1)[0]
	evs, err := r.Read(ctx, "stall", events.Beginning, 100)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if want := []string{"t", "in-flight", "t"}; !slices.Equal(types, want) || evs[len(evs)-1].Pos != last.Pos {
		t.Errorf("log holds %v, want %v (the stalled publish once)", types, want)
	}
}

// TestRedisDownFailsFast: with Redis gone, Append and Ping answer
// ErrUnavailable within the client's own timeouts, without a caller deadline.
func TestRedisDownFailsFast(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t)
	r := openRedis(t, srv.URL, "relay:", events.Retention{})
	appendN(t, r, "down", 1)
	srv.Stop(t)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Append", func() error {
			_, err := r.Append(context.Background(), []events.Draft{{Channel: "down", Type: "t"}})
			return err
		}},
		{"Ping", func() error { return r.Ping(context.Background()) }},
		{"Read", func() error { _, err := r.Read(context.Background(), "down", events.Beginning, 10); return err }},
	} {
		start := time.Now()
		err := tc.call()
		took := time.Since(start)
		t.Logf("%s with Redis down answered in %v: %v", tc.name, took, err)
		if !errors.Is(err, events.ErrUnavailable) || !strings.Contains(err.Error(), "REDIS_URL") {
			t.Errorf("%s with Redis down = %v, want ErrUnavailable saying to check REDIS_URL", tc.name, err)
		}
		if took > 1500*time.Millisecond {
			t.Errorf("%s with Redis down took %v, want under 1.5 s", tc.name, took)
		}
	}
}

// TestRedisRefusesRetryingClient: a client that would re-send a failed
// publish is refused, saying what to set.
func TestRedisRefusesRetryingClient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		client redis.UniversalClient
		want   string
	}{
		{"Client", redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), "MaxRetries: -1"},
		{"Cluster", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}), "MaxRedirects: -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.client.Close()
			_, err := store.NewRedis(context.Background(), tc.client, store.RedisOptions{})
			if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewRedis(retrying client) = %v, want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
}
