package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/store/redistest"
)

// twoRelays starts two relay processes' worth of run sharing one Redis.
func twoRelays(t *testing.T) (a, b *instance, url string) {
	t.Helper()
	// A client name of this test's own lets it drop just its connections.
	url = redistest.URL(t) + sep(redistest.URL(t)) + "client_name=" + strings.ReplaceAll(redistest.Prefix(t), ":", "")
	env := func() map[string]string {
		return map[string]string{"RELAY_JWT_SECRET": testSecret, "REDIS_URL": url, "RELAY_REDIS_PREFIX": redistest.Prefix(t)}
	}
	ea := env()
	eb := env()
	eb["RELAY_REDIS_PREFIX"] = ea["RELAY_REDIS_PREFIX"]
	return start(t, ea), start(t, eb), url
}

// seqs reads n events from s and checks they are the run after first.
func expectRun(t *testing.T, s *stream, ids []string) {
	t.Helper()
	for i, want := range ids {
		got := s.next(t)
		if got["id"] != want {
			t.Fatalf("event %d: got id %v, want %s (exactly once, in order)", i, got["id"], want)
		}
	}
	select {
	case d := <-s.data:
		t.Fatalf("extra event after the run: %s", d)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestTwoRelaysShareRedis(t *testing.T) {
	a, b, _ := twoRelays(t)
	tok := mint(t, auth.Identity{UserID: "1", Projects: []string{"9"}})
	onA := openStream(t, a.url+"/events/projects/9/tickets?token="+tok)
	onB := openStream(t, b.url+"/events/projects/9/tickets?token="+tok)

	// Publish through both relays, concurrently: every subscriber sees every
	// event once, in the log's order.
	var mu sync.Mutex
	ids := map[string]bool{}
	var wg sync.WaitGroup
	for _, inst := range []*instance{a, b} {
		wg.Go(func() {
			for i := range 100 {
				id := publish(t, inst.url, "project_9_tickets", i)
				mu.Lock()
				ids[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for name, s := range map[string]*stream{"A": onA, "B": onB} {
		prev := uint64(0)
		for range 200 {
			ev := s.next(t)
			id := ev["id"].(string)
			if !ids[id] {
				t.Fatalf("%s: unknown id %s", name, id)
			}
			var seq uint64
			fmt.Sscanf(id[strings.IndexByte(id, '-')+1:], "%d", &seq)
			if seq != prev+1 && prev != 0 {
				t.Fatalf("%s: got seq %d after %d, want %d", name, seq, prev, prev+1)
			}
			prev = seq
		}
	}
}

func TestResumeAcrossRelays(t *testing.T) {
	a, b, _ := twoRelays(t)
	tok := mint(t, auth.Identity{UserID: "1", Projects: []string{"9"}})
	first := publish(t, a.url, "project_9_tickets", 0)
	var missed []string
	for i := range 5 {
		missed = append(missed, publish(t, a.url, "project_9_tickets", i+1))
	}
	// A client of relay A reconnects to relay B with its cursor.
	s := openStream(t, b.url+"/events/projects/9/tickets?last_event_id="+first+"&token="+tok)
	expectRun(t, s, missed)
}

func TestRedisPubSubDropLosesNothing(t *testing.T) {
	a, b, url := twoRelays(t)
	tok := mint(t, auth.Identity{UserID: "1", Projects: []string{"9"}})
	s := openStream(t, b.url+"/events/projects/9/tickets?token="+tok)

	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(opt)
	defer admin.Close()
	var ids []string
	for i := range 60 {
		ids = append(ids, publish(t, a.url, "project_9_tickets", i))
		if i%20 == 10 { // drop both relays' Pub/Sub connections mid-stream
			killPubSub(t, admin, opt.ClientName)
		}
	}
	expectRun(t, s, ids)
}

func sep(url string) string {
	if strings.Contains(url, "?") {
		return "&"
	}
	return "?"
}

// killPubSub kills the Pub/Sub connections named name, and no one else's.
func killPubSub(t *testing.T, admin *redis.Client, name string) {
	t.Helper()
	ctx := context.Background()
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for line := range strings.Lines(list) {
		if !strings.Contains(line, " name="+name+" ") || !strings.Contains(line, "sub=1") {
			continue
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(line, "id="), " ")
		if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
			t.Fatal(err)
		}
		killed++
	}
	if killed == 0 {
		t.Fatalf("no Pub/Sub connection named %s to kill", name)
	}
}
