package events_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/store/redistest"
)

const benchUsers = 1000 // users online in one project

// benchBackends are a hub and presence store over memory and over Redis.
func benchBackends(b *testing.B) map[string]func(b *testing.B) (*events.Hub, events.Presence, *redis.Client) {
	return map[string]func(b *testing.B) (*events.Hub, events.Presence, *redis.Client){
		"memory": func(b *testing.B) (*events.Hub, events.Presence, *redis.Client) {
			m := store.NewMemory(events.Retention{})
			b.Cleanup(func() { m.Close() })
			return startHub(b, m), store.NewMemoryPresence(), nil
		},
		"redis": func(b *testing.B) (*events.Hub, events.Presence, *redis.Client) {
			url := redistest.URL(b)
			r, err := store.OpenRedis(context.Background(), url, store.RedisOptions{Prefix: redistest.Prefix(b)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { r.Close() })
			opt, _ := redis.ParseURL(url)
			c := redis.NewClient(opt)
			b.Cleanup(func() { c.Close() })
			return startHub(b, r), r.Presence(), c
		},
	}
}

func startHub(b *testing.B, log events.Log) *events.Hub {
	hub := events.NewHub(log, events.HubOptions{})
	if err := hub.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(hub.Close)
	return hub
}

// BenchmarkPresence measures, for 1,000 users in one project: join/leave
// events per second (each op joins then leaves one user: the store update and
// the logged user_status event the tracker makes for each), typing events per
// second (through the tracker: store update and broadcast), and Redis
// commands per presence heartbeat. One goroutine: Redis figures are bound by
// one round trip at a time.
func BenchmarkPresence(b *testing.B) {
	for name, open := range benchBackends(b) {
		b.Run(name+"/join-leave", func(b *testing.B) {
			hub, p, _ := open(b)
			ctx := context.Background()
			i := 0
			for b.Loop() {
				user := strconv.Itoa(i % benchUsers)
				if _, err := p.Join(ctx, "1", events.PresenceUser{UserID: user, Name: "u" + user}, "bench", time.Now().Add(time.Minute)); err != nil {
					b.Fatal(err)
				}
				publishStatus(b, hub, "joined", user)
				if _, err := p.Leave(ctx, "1", user, "bench"); err != nil {
					b.Fatal(err)
				}
				publishStatus(b, hub, "left", user)
				i++
			}
			b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run(name+"/typing", func(b *testing.B) {
			hub, p, _ := open(b)
			tr := events.NewTracker(hub, p, events.PresenceConfig{}, nil)
			ctx := context.Background()
			i := 0
			for b.Loop() {
				user := strconv.Itoa(i % benchUsers)
				if err := tr.Typing(ctx, "1", user, "u"+user, 5, i%2 == 0); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
		b.Run(name+"/heartbeat", func(b *testing.B) {
			_, p, admin := open(b)
			ctx := context.Background()
			holds := make([]events.PresenceHold, benchUsers)
			for i := range holds {
				holds[i] = events.PresenceHold{Project: "1", UserID: strconv.Itoa(i)}
				if _, err := p.Join(ctx, "1", events.PresenceUser{UserID: holds[i].UserID}, "bench", time.Now().Add(time.Minute)); err != nil {
					b.Fatal(err)
				}
			}
			before := commands(b, admin)
			for b.Loop() {
				if _, err := p.Refresh(ctx, "bench", holds, time.Now().Add(time.Minute)); err != nil {
					b.Fatal(err)
				}
			}
			if admin != nil {
				// INFO itself is one command; other clients of a shared Redis
				// may add a few.
				perBeat := float64(commands(b, admin)-before-1) / float64(b.N)
				b.ReportMetric(perBeat, "redis-cmds/heartbeat")
				b.ReportMetric(perBeat/benchUsers, "redis-cmds/heartbeat/conn")
			}
		})
	}
}

func publishStatus(b *testing.B, hub *events.Hub, action, user string) {
	d, err := events.ParseDraft(fmt.Appendf(nil, `{"channel":"project_1_presence","type":"user_status","action":%q,"user_id":%q}`, action, user), 0)
	if err == nil {
		_, err = hub.Publish(context.Background(), d)
	}
	if err != nil {
		b.Fatal(err)
	}
}

// commands is Redis's count of commands processed so far.
func commands(b *testing.B, c *redis.Client) int64 {
	if c == nil {
		return 0
	}
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	b.Fatal("no total_commands_processed in INFO stats")
	return 0
}
