package store_test

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/store/redistest"
)

// BenchmarkPublishListened is relay bench's 8-publisher scenario as the
// store sees it: 8 publishers appending one event per call to one channel
// that the process also listens to, each op done when its event has come
// back over Pub/Sub. Its own redis-server, so that the figures it reports
// besides ns/op are this benchmark's alone, and stable on a loaded machine:
// relay-µs/op, the CPU time (user + system) of this process per event;
// redis-µs/op, Redis's; events/script and events/message, how many events
// one publish script and one Pub/Sub message carry.
func BenchmarkPublishListened(b *testing.B) {
	srv := redistest.NewServer(b)
	r, err := store.OpenRedis(context.Background(), srv.URL, store.RedisOptions{Prefix: "bench:"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	b.Cleanup(func() { _ = admin.Close() })

	const channel = "bench_1"
	var got atomic.Int64
	var mu sync.Mutex
	all := make(chan struct{})
	want := int64(-1)
	stop, err := r.Watch(context.Background(), func(ev *events.Event) {
		if got.Add(1) == atomic.LoadInt64(&want) {
			mu.Lock()
			close(all)
			mu.Unlock()
		}
	}, func() { b.Error("resync: a Pub/Sub message was lost") })
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	release, err := r.Listen(context.Background(), channel, func() {})
	if err != nil {
		b.Fatal(err)
	}
	defer release()

	fields := []byte(`"type":"bench","data":{"text":"a typical small event of about a hundred bytes, give or take a few"}`)
	d := []events.Draft{{Channel: channel, Type: "bench", Fields: fields}}
	// warm up: scripts loaded, connections dialled
	for range 8 {
		if _, err := r.Append(context.Background(), d); err != nil {
			b.Fatal(err)
		}
	}
	for got.Load() < 8 {
		runtime.Gosched()
	}
	got.Store(0)
	atomic.StoreInt64(&want, int64(b.N))

	stats0, cpu0, rcpu0 := commandCalls(b, admin), selfCPU(), procCPU(b, srv.PID())
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := r.Append(context.Background(), d); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	<-all
	b.StopTimer()
	cpu, rcpu, stats := selfCPU()-cpu0, procCPU(b, srv.PID())-rcpu0, commandCalls(b, admin)
	n := float64(b.N)
	b.ReportMetric(cpu/n, "relay-µs/op")
	b.ReportMetric(rcpu/n, "redis-µs/op")
	if s := stats["evalsha"] - stats0["evalsha"]; s > 0 {
		b.ReportMetric(n/float64(s), "events/script")
	}
	if m := stats["publish"] - stats0["publish"]; m > 0 {
		b.ReportMetric(n/float64(m), "events/message")
	}
}

// selfCPU is this process's user and system CPU time so far, in µs.
func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3
}

// procCPU is process pid's user and system CPU time so far, in µs.
func procCPU(b *testing.B, pid int) float64 {
	b.Helper()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) * 1e6 / 100 // USER_HZ is 100 on Linux
}

// commandCalls is INFO commandstats' calls per command.
func commandCalls(b *testing.B, c *redis.Client) map[string]int64 {
	b.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	calls := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(rest, ",")
		calls[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.ParseInt(v, 10, 64)
	}
	return calls
}
