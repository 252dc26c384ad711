package store_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
	listen(t, b, got.resync, events.PresenceChannel("7"))
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

// TestRedisPresenceRefreshAfterRestartEmpty: Redis restarts with nothing;
// the next Refresh reports every hold, and joining them again restores the
// users. A heartbeat costs Redis one command when every hold is there, and
// one more when some are not (then one Join script per missing hold).
func TestRedisPresenceRefreshAfterRestartEmpty(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.NewServer(t)
	r := openRedis(t, srv.URL, redistest.Prefix(t), events.Retention{})
	p := r.Presence()
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { _ = admin.Close() })
	holds := []events.PresenceHold{{Project: "7", UserID: "1"}, {Project: "7", UserID: "2"}, {Project: "8", UserID: "1"}}
	expires := time.Now().Add(time.Minute)
	for _, h := range holds {
		if _, err := p.Join(ctx, h.Project, events.PresenceUser{UserID: h.UserID, Name: "n" + h.UserID}, "proc", expires); err != nil {
			t.Fatal(err)
		}
	}
	refresh := func(what string) (missing []events.PresenceHold, cmds int64) {
		t.Helper()
		before := commandsProcessed(t, admin)
		expires = expires.Add(time.Second)
		missing, err := p.Refresh(ctx, "proc", holds, expires)
		if err != nil {
			t.Fatalf("%s: Refresh: %v", what, err)
		}
		return missing, commandsProcessed(t, admin) - before - 1 // the first INFO counts
	}
	if missing, cmds := refresh("all there"); len(missing) != 0 || cmds != 1 {
		t.Errorf("Refresh with every hold there: missing %v, %d Redis commands; want none, 1", missing, cmds)
	}

	srv.Stop(t)
	srv.Start(t) // empty
	// Reconnect first, so that the handshake is not counted below.
	if err := r.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	missing, cmds := refresh("after the restart")
	if !slices.Equal(missing, holds) || cmds != 2 {
		t.Errorf("Refresh after Redis restarted empty: missing %v, %d Redis commands; want %v, 2 (ZADD XX CH, ZMSCORE)", missing, cmds, holds)
	}
	for _, h := range missing {
		user := events.PresenceUser{UserID: h.UserID, Name: "n" + h.UserID, Viewing: new(int64(42))}
		if first, err := p.Join(ctx, h.Project, user, "proc", expires); err != nil || !first {
			t.Errorf("Join(%v) again = %v, %v; want first", h, first, err)
		}
	}
	users, err := p.Users(ctx, "7", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].Name != "n1" || users[1].Viewing == nil || *users[1].Viewing != 42 {
		t.Errorf("project 7 after joining again: %+v, want users 1 and 2, named, viewing 42", users)
	}
	if missing, cmds := refresh("joined again"); len(missing) != 0 || cmds != 1 {
		t.Errorf("Refresh after joining again: missing %v, %d Redis commands; want none, 1", missing, cmds)
	}
}

// commandsProcessed is Redis's count of commands so far (INFO stats).
func commandsProcessed(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("INFO stats has no total_commands_processed")
	return 0
}
