package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/relaydev/relay/events"
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
