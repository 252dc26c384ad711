package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/store/redistest"
)

func TestMachineTicks(t *testing.T) {
	tests := []struct {
		name, stat   string
		total, steal int64
	}{
		{"plain", "cpu  100 5 50 800 10 0 5 30 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", 1000, 30},
		{"no steal column", "cpu  100 5 50 800 10 0 5\n", -1, -1},
		{"not the cpu line", "intr 1 2 3 4 5 6 7 8 9\n", -1, -1},
		{"not numbers", "cpu  a b c d e f g h\n", -1, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if total, steal := machineTicks(tc.stat); total != tc.total || steal != tc.steal {
				t.Errorf("machineTicks(%q) = %d, %d, want %d, %d", tc.stat, total, steal, tc.total, tc.steal)
			}
		})
	}
}

func TestUsagePer(t *testing.T) {
	before := usage{user: 100, sys: 50, switches: 1000, benchUser: time.Second, benchSys: time.Second,
		redis: 2 * time.Second, machine: 10_000, steal: 100}
	after := usage{user: 130, sys: 70, switches: 1500, benchUser: 1500 * time.Millisecond, benchSys: 1100 * time.Millisecond,
		redis: 2200 * time.Millisecond, machine: 11_000, steal: 400}
	got := after.per(before, 10_000)
	want := spent{server: 50, kernel: 20, switches: 0.05, bench: 60, benchK: 10, redis: 20, steal: 0.3}
	if got != want {
		t.Errorf("per = %+v, want %+v", got, want)
	}
	unknown := usage{user: -1, sys: -1, switches: -1, benchUser: -1, benchSys: -1, redis: -1, machine: -1, steal: -1}
	if got := after.per(unknown, 10); got.server != -1 || got.switches != -1 || got.bench != -1 || got.redis != -1 || got.steal != -1 {
		t.Errorf("per from an unknown reading = %+v, want every figure -1", got)
	}
}

func TestSpentString(t *testing.T) {
	tests := []struct {
		name string
		s    spent
		want string
	}{
		{"all known, quiet", spent{server: 65, kernel: 41, switches: 2.4, bench: 40, benchK: 20, redis: 14, steal: 0.02},
			"server 65.0 µs (41.0 in the kernel), 2.40 context switches; bench 40.0 µs (20.0 in the kernel); Redis 14.0 µs"},
		{"no server, no Redis (--url)", spent{server: -1, kernel: -1, switches: -1, bench: 40, benchK: 20, redis: -1, steal: -1},
			"bench 40.0 µs (20.0 in the kernel)"},
		{"stolen", spent{server: 65, kernel: 41, switches: -1, bench: -1, benchK: -1, redis: -1, steal: 0.27},
			"server 65.0 µs (41.0 in the kernel) (the hypervisor stole 27% of this machine's CPU meanwhile: rates and latencies are below what it gives when quiet)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.String(); got != tc.want {
				t.Errorf("String() =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestUsageOfARelayProcess reads what a relay process on Redis spent while
// it took publishes: every part of the reading must be known and grow.
func TestUsageOfARelayProcess(t *testing.T) {
	url := redistest.URL(t)
	p := startRelay(t, "relay-usage", map[string]string{"RELAY_JWT_SECRET": testSecret, "RELAY_LOG_LEVEL": "warn",
		"REDIS_URL": url, "RELAY_REDIS_PREFIX": redistest.Prefix(t)})
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	target := &benchTarget{name: p.name, url: p.url, secret: testSecret, cmd: p.cmd, redis: redis.NewClient(opt)}
	t.Cleanup(func() { _ = target.redis.Close() })
	ctx := context.Background()

	before := target.usage(ctx)
	tok := target.token(auth.Identity{UserID: "bench", Publish: []string{"*"}})
	const n = 300
	for i := range n {
		body := fmt.Appendf(nil, `{"channel":"project_1_tickets","type":"t","data":{"n":%d,"pad":"%s"}}`, i, strings.Repeat("x", 2000))
		if _, err := post(ctx, http.DefaultClient, target, tok, body); err != nil {
			t.Fatal(err)
		}
	}
	got := target.usage(ctx).per(before, n)
	if got.server < 0 || got.kernel < 0 || got.switches <= 0 || got.bench <= 0 || got.redis <= 0 || got.steal < 0 {
		t.Errorf("per publish: %+v, want the server's CPU and kernel ≥ 0, its switches, the bench's and Redis's CPU > 0, the steal known", got)
	}
}
