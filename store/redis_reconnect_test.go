package store_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/store/redistest"
)

// TestRedisOnReconnect: a Redis that stops and starts again (a real process,
// stopped and started) makes Pub/Sub subscribe again; OnReconnect is called
// once for it, before the resync, and not at the first subscription.
func TestRedisOnReconnect(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t)
	var reconnects atomic.Int64
	r := openRedisWith(t, srv.URL, store.RedisOptions{OnReconnect: func() { reconnects.Add(1) }})
	resynced := make(chan int64, 4)
	stop, err := r.Watch(context.Background(), func(*events.Event) {}, func() { resynced <- reconnects.Load() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	listen(t, r, func() {}, "x") // a channel listened to: one Pub/Sub connection
	if n := reconnects.Load(); n != 0 {
		t.Fatalf("reconnects after the first subscription: got %d, want 0", n)
	}
	srv.Stop(t)
	srv.Start(t)
	select {
	case n := <-resynced:
		if n != 1 {
			t.Errorf("reconnects counted at the resync: got %d, want 1", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no resync within 20 s of Redis coming back")
	}
}
