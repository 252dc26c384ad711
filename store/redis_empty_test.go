package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/store/redistest"
	"github.com/relaydev/relay/store/storetest"
)

// TestRedisNoState: reading a Redis log creates no key.
func TestRedisNoState(t *testing.T) {
	t.Parallel()
	storetest.RunNoState(t, func(t *testing.T) (events.Log, storetest.State) {
		prefix := redistest.Prefix(t)
		r := openRedisWith(t, redistest.URL(t), store.RedisOptions{Prefix: prefix})
		client := redistest.NewClient(t)
		return r, func(t *testing.T) []string { return keysUnder(t, client, prefix) }
	})
}

// keysUnder lists the keys whose names start with prefix.
func keysUnder(t *testing.T, client *redis.Client, prefix string) []string {
	t.Helper()
	keys, err := client.Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatalf("KEYS %s*: %v", prefix, err)
	}
	return keys
}

// TestRedisEmptyPositionAcrossRestart: an empty position taken before Redis
// restarted is gone after it, whether or not the channel has a log now:
// the restarted server may have lost an epoch created in between.
func TestRedisEmptyPositionAcrossRestart(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServerWith(t, redistest.AOF)
	r := openRedis(t, srv.URL, "relay:", events.Retention{})
	ctx := context.Background()
	quiet, err := r.Head(ctx, "quiet")
	if err != nil {
		t.Fatal(err)
	}
	busy, err := r.Head(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	if !quiet.IsEmpty() || !busy.IsEmpty() {
		t.Fatalf("Head of channels with no log = %v, %v; want empty positions", quiet, busy)
	}
	srv.Stop(t)
	srv.Start(t)
	appendN(t, r, "busy", 2)
	for ch, p := range map[string]events.Position{"quiet": quiet, "busy": busy} {
		if evs, err := r.Read(ctx, ch, p, 10); !errors.Is(err, events.ErrCursorGone) {
			t.Errorf("Read(%s, an empty position of before the restart) = %v, %v; want ErrCursorGone", ch, ids(evs), err)
		}
	}
	after, err := r.Head(ctx, "quiet")
	if err != nil {
		t.Fatal(err)
	}
	g0, _, _ := quiet.Empty()
	g1, _, ok := after.Empty()
	if !ok || g1 == g0 {
		t.Errorf("Head after the restart = %v, want an empty position of a new generation (old %s)", after, g0)
	}
}

// TestRedisEmptyPositionOlderEpoch: an epoch whose meta hash has no creation
// time (made by a relay before empty positions) cannot tell whether it
// started after the position, so the position is gone.
func TestRedisEmptyPositionOlderEpoch(t *testing.T) {
	t.Parallel()
	prefix := redistest.Prefix(t)
	r := openRedis(t, redistest.URL(t), prefix, events.Retention{})
	ctx := context.Background()
	head, err := r.Head(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, r, "old", 1)
	if evs, err := r.Read(ctx, "old", head, 10); err != nil || len(evs) != 1 {
		t.Fatalf("Read(empty position) = %v, %v; want the event", ids(evs), err)
	}
	if err := redistest.NewClient(t).HDel(ctx, prefix+"{old}:m", "c").Err(); err != nil {
		t.Fatal(err)
	}
	if evs, err := r.Read(ctx, "old", head, 10); !errors.Is(err, events.ErrCursorGone) {
		t.Errorf("Read(empty position) of an epoch without a creation time = %v, %v; want ErrCursorGone", ids(evs), err)
	}
}
