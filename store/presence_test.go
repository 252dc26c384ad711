package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/store/redistest"
	"github.com/relaydev/relay/store/storetest"
)

func TestMemoryPresence(t *testing.T) {
	t.Parallel()
	storetest.RunPresence(t, func(*testing.T) events.Presence { return store.NewMemoryPresence() })
}

func TestRedisPresence(t *testing.T) {
	t.Parallel()
	storetest.RunPresence(t, func(t *testing.T) events.Presence {
		return openRedis(t, redistest.URL(t), redistest.Prefix(t), events.Retention{}).Presence()
	})
}

func TestMemoryBroadcast(t *testing.T) {
	t.Parallel()
	storetest.RunBroadcast(t, func(t *testing.T) events.Log {
		m := store.NewMemory(events.Retention{})
		t.Cleanup(func() { _ = m.Close() })
		return m
	})
}

func TestRedisBroadcast(t *testing.T) {
	t.Parallel()
	storetest.RunBroadcast(t, func(t *testing.T) events.Log {
		return openRedis(t, redistest.URL(t), redistest.Prefix(t), events.Retention{})
	})
}

// TestRedisPresenceSharedByTwoProcesses: two stores on two clients with one
// prefix, like two relay processes, see each other's holds, and a broadcast
// from one reaches the other's Watch.
func TestRedisPresenceSharedByTwoProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	a := newRedis(t, redistest.NewClient(t), prefix)
	b := newRedis(t, redistest.NewClient(t), prefix)
	pa, pb := a.Presence(), b.Presence()
	now := time.Now()
	exp := now.Add(time.Minute)

	if first, err := pa.Join(ctx, "7", events.PresenceUser{UserID: "1", Name: "Ann"}, "proc-a", exp); err != nil || !first {
		t.Fatalf("a: Join(Ann) = %v, %v; want first", first, err)
	}
	if first, err := pb.Join(ctx, "7", events.PresenceUser{UserID: "1", Name: "Ann"}, "proc-b", exp); err != nil || first {
		t.Fatalf("b: Join(Ann) = %v, %v; want not first: a holds her", first, err)
	}
	if _, err := pb.Join(ctx, "7", events.PresenceUser{UserID: "2", Name: "Bob"}, "proc-b", exp); err != nil {
		t.Fatal(err)
	}
	users, err := pa.Users(ctx, "7", now)
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{users[0].Name, users[1].Name}; len(users) != 2 || !slices.Equal(got, []string{"Ann", "Bob"}) {
		t.Errorf("a: Users = %v, want Ann and Bob", users)
	}
	if last, err := pa.Leave(ctx, "7", "1", "proc-a"); err != nil || last {
		t.Errorf("a: Leave(Ann) = %v, %v; want not last: b holds her", last, err)
	}
	// b dies: it stops refreshing, and a's sweep after its holds expire
	// announces both users once.
	deps, err := pa.Sweep(ctx, exp.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := []events.Departure{{Project: "7", UserID: "1", Name: "Ann"}, {Project: "7", UserID: "2", Name: "Bob"}}
	if !slices.Equal(deps, want) {
		t.Errorf("a: Sweep after b's holds expired = %v, want %v", deps, want)
	}

	var got collector
	stop, err := b.Watch(ctx, got.deliver, got.resync)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	d := events.Draft{Channel: events.PresenceChannel("7"), Type: "typing", Fields: []byte(`"type":"typing"`)}
	if err := a.Broadcast(ctx, events.NewEphemeral(d, now)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b's Watch did not get a's broadcast", func() bool {
		evs, _ := got.snapshot()
		return len(evs) == 1 && evs[0].Ephemeral && evs[0].Type == "typing" && evs[0].Channel == d.Channel
	})
}

// TestRedisPresenceKeys: every presence key carries the {presence} hash tag.
func TestRedisPresenceKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	client := redistest.NewClient(t)
	p := newRedis(t, client, prefix).Presence()
	if _, err := p.Join(ctx, "7", events.PresenceUser{UserID: "1"}, "i", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{prefix + "{presence}:holds", prefix + "{presence}:n", prefix + "{presence}:u:7"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	if _, err := p.Join(ctx, "7", events.PresenceUser{UserID: "a\x1fb"}, "i", time.Now()); err == nil {
		t.Error("Join accepted a user id containing the member separator")
	}
}
