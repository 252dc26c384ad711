package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store/redistest"
)

// TestRedisConcurrentAppends: many goroutines appending to few channels, one
// event or a batch over several channels per call, share pipelines; each
// channel's log is gap-free, each event is stored once where its Append
// said, and each caller's events keep its order on every channel.
func TestRedisConcurrentAppends(t *testing.T) {
	t.Parallel()
	r := openRedis(t, redistest.URL(t), redistest.Prefix(t), events.Retention{})
	const callers, calls = 24, 40
	channels := []string{"c0", "c1", "c2"}
	returned := make([][]*events.Event, callers)
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for i := range calls {
				var ds []events.Draft
				switch (g + i) % 3 {
				case 0: // one event
					ds = []events.Draft{{Channel: channels[g%3], Type: "t"}}
				case 1: // a batch on one channel
					ds = []events.Draft{{Channel: channels[g%3], Type: "t"}, {Channel: channels[g%3], Type: "t"}}
				default: // a batch over channels, one of them twice in a row
					ds = []events.Draft{{Channel: channels[(g+1)%3], Type: "t"}, {Channel: channels[g%3], Type: "t"}, {Channel: channels[g%3], Type: "t"}}
				}
				for j := range ds {
					ds[j].Fields = fmt.Appendf(nil, `"g":%d,"i":%d,"j":%d`, g, i, j)
				}
				evs, err := r.Append(context.Background(), ds)
				if err != nil {
					t.Error(err)
					return
				}
				if len(evs) != len(ds) {
					t.Errorf("Append of %d drafts returned %d events", len(ds), len(evs))
					return
				}
				for j, e := range evs {
					if e.Channel != ds[j].Channel || string(e.Fields) != string(ds[j].Fields) {
						t.Errorf("Append returned %s %s for draft %s %s", e.Channel, e.Fields, ds[j].Channel, ds[j].Fields)
					}
				}
				returned[g] = append(returned[g], evs...)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	stored := map[string]string{} // channel/position → fields
	for _, ch := range channels {
		evs, err := r.Read(context.Background(), ch, events.Beginning, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		for k, e := range evs {
			if e.Pos.Seq != uint64(k+1) || e.Pos.Epoch != evs[0].Pos.Epoch {
				t.Fatalf("%s: event %d at %v, want seq %d of one epoch (gap-free)", ch, k, e.Pos, k+1)
			}
			stored[ch+"/"+e.Pos.String()] = string(e.Fields)
		}
	}
	total := 0
	for g, evs := range returned {
		last := map[string]uint64{}
		for _, e := range evs {
			total++
			if got := stored[e.Channel+"/"+e.Pos.String()]; got != string(e.Fields) {
				t.Errorf("caller %d: %s at %v holds %q, want %s", g, e.Channel, e.Pos, got, e.Fields)
			}
			if e.Pos.Seq <= last[e.Channel] {
				t.Errorf("caller %d: %s %s at seq %d, after its event at %d (its order broken)", g, e.Channel, e.Fields, e.Pos.Seq, last[e.Channel])
			}
			last[e.Channel] = e.Pos.Seq
		}
	}
	if total != len(stored) {
		t.Errorf("%d events returned, %d stored; want each stored once", total, len(stored))
	}
}

// TestRedisPipelineFailsMidFlight: appends in flight and queued while Redis
// is stalled past the read timeout, or killed, fail with ErrUnavailable,
// each call whole; none is re-sent: once a stalled Redis resumes and runs
// what it had buffered, each event is stored at most once.
func TestRedisPipelineFailsMidFlight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault func(*testing.T, *redistest.Server)
	}{
		{"Paused", func(t *testing.T, s *redistest.Server) { s.Pause(t) }},
		{"Killed", func(t *testing.T, s *redistest.Server) { s.Stop(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.NewServer(t)
			r := openRedis(t, srv.URL, "relay:", events.Retention{})
			appendN(t, r, "f", 1) // a connection in the pool
			tc.fault(t, srv)
			const callers = 16
			errs := make([]error, callers)
			var wg sync.WaitGroup
			start := time.Now()
			for g := range callers {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_, errs[g] = r.Append(ctx, []events.Draft{
						{Channel: "f", Type: "t", Fields: fmt.Appendf(nil, `"g":%d,"j":0`, g)},
						{Channel: "f", Type: "t", Fields: fmt.Appendf(nil, `"g":%d,"j":1`, g)},
					})
				})
			}
			wg.Wait()
			t.Logf("%d appends to a %s Redis answered within %v", callers, tc.name, time.Since(start))
			for g, err := range errs {
				if !errors.Is(err, events.ErrUnavailable) {
					t.Errorf("Append %d to a %s Redis = %v, want ErrUnavailable", g, tc.name, err)
				}
			}
			if tc.name != "Paused" {
				return
			}
			srv.Resume(t)
			last := appendN(t, r, "f", 1)[0]
			evs, err := r.Read(context.Background(), "f", events.Beginning, 1000)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for k, e := range evs {
				if e.Pos.Seq != uint64(k+1) {
					t.Fatalf("event %d at %v, want seq %d", k, e.Pos, k+1)
				}
				seen[string(e.Fields)]++
			}
			for f, n := range seen {
				if n > 1 && f != "" {
					t.Errorf("event %s stored %d times, want at most once", f, n)
				}
			}
			// What Redis ran of each call is the whole call: one script per
			// channel per pipeline.
			for g := range callers {
				a, b := seen[fmt.Sprintf(`"g":%d,"j":0`, g)], seen[fmt.Sprintf(`"g":%d,"j":1`, g)]
				if a != b {
					t.Errorf("call %d: %d of its first event and %d of its second stored, want both or neither", g, a, b)
				}
			}
			if evs[len(evs)-1].Pos != last.Pos {
				t.Errorf("last event at %v, read %v", last.Pos, evs[len(evs)-1].Pos)
			}
			t.Logf("after resuming: %d events stored", len(evs))
		})
	}
}
