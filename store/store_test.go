package store_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/store/redistest"
)

// TestMain fails the package when a test leaves a goroutine behind: every
// goroutine a store starts must end by Close or stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// BenchmarkAppend measures single-event appends from parallel writers over a
// few channels, the shape of many publishers.
func BenchmarkAppend(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		m := store.NewMemory(events.Retention{})
		b.Cleanup(func() { _ = m.Close() })
		benchAppend(b, m)
	})
	b.Run("redis", func(b *testing.B) {
		r, err := store.OpenRedis(context.Background(), redistest.URL(b), store.RedisOptions{Prefix: redistest.Prefix(b)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = r.Close() })
		benchAppend(b, r)
	})
}

func benchAppend(b *testing.B, log events.Log) {
	const channels = 4
	var next atomic.Int64
	fields := []byte(`"type":"bench","data":{"text":"a typical small event of about a hundred bytes, give or take a few"}`)
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((8 + procs - 1) / procs) // at least 8 writers, whatever the machine
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		d := []events.Draft{{Channel: fmt.Sprintf("bench_%d", next.Add(1)%channels), Type: "bench", Fields: fields}}
		for pb.Next() {
			if _, err := log.Append(context.Background(), d); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppendPublishers measures the shape of relay bench's publish
// scenario: exactly 8 publishers, each appending one event per call, to one
// channel and to a channel each; and one publisher alone, whose ns/op is the
// latency of a lone append.
func BenchmarkAppendPublishers(b *testing.B) {
	for _, tc := range []struct {
		name                 string
		publishers, channels int
	}{
		{"1channel", 8, 1},
		{"8channels", 8, 8},
		{"alone", 1, 1},
	} {
		b.Run("redis/"+tc.name, func(b *testing.B) {
			r, err := store.OpenRedis(context.Background(), redistest.URL(b), store.RedisOptions{Prefix: redistest.Prefix(b)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = r.Close() })
			benchPublishers(b, r, tc.publishers, tc.channels)
		})
	}
}

func benchPublishers(b *testing.B, log events.Log, publishers, channels int) {
	fields := []byte(`"type":"bench","data":{"text":"a typical small event of about a hundred bytes, give or take a few"}`)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for i := range publishers {
		wg.Go(func() {
			d := []events.Draft{{Channel: fmt.Sprintf("bench_%d", i%channels), Type: "bench", Fields: fields}}
			for next.Add(1) <= int64(b.N) {
				if _, err := log.Append(context.Background(), d); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}
