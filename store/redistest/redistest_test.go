package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/relaydev/relay/store/redistest"
)

func TestPersistence(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    redistest.Persistence
		want string
	}{{"none", redistest.NoPersistence, ""}, {"aof", redistest.AOF, "2"}, {"rdb", redistest.RDB, "1"}} {
		t.Run(tc.name, func(t *testing.T) {
			s := redistest.NewServerWith(t, tc.p)
			c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
			defer c.Close()
			ctx := context.Background()
			c.Set(ctx, "k", "1", 0)
			s.Save(t)
			c.Set(ctx, "k", "2", 0)
			s.Pause(t)
			c2 := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, ReadTimeout: 200 * time.Millisecond})
			defer c2.Close()
			if err := c2.Ping(ctx).Err(); err == nil {
				t.Errorf("paused server answered PING")
			}
			s.Resume(t)
			s.Stop(t)
			s.Start(t)
			got, _ := c.Get(ctx, "k").Result()
			if got != tc.want {
				t.Errorf("after restart: got %q, want %q", got, tc.want)
			}
		})
	}
}
