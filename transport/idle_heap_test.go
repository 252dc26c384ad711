//go:build !race

// Under -race every allocation carries the detector's shadow, and the
// profile this test reads would be slow to take at a rate of 1.

package transport_test

import (
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/relaydev/relay/transport"
)

// heapStreams is how many idle streams TestIdleStreamHeap opens.
const heapStreams = 128

// TestIdleStreamHeap opens idle streams that have written heartbeats and
// an event, and reads what the heap still holds for them from an
// allocation profile of every allocation (runtime.MemProfileRate 1): the
// objects allocated under relay's handlers (the client side of the test
// allocates under its own functions) and still live after two GCs. An idle
// stream must hold no logger of its own (a *slog.Logger made with With per
// stream was about 200 bytes of each), no SSE scratch buffer (128–256
// bytes of each), and, on a presence channel, not the presence_state it
// was sent at connect; what it holds is logged, for the record.
func TestIdleStreamHeap(t *testing.T) {
	rate := runtime.MemProfileRate
	runtime.MemProfileRate = 1
	t.Cleanup(func() { runtime.MemProfileRate = rate })
	for _, kind := range []string{"sse", "websocket", "presence"} {
		t.Run(kind, func(t *testing.T) {
			r := startRelay(t, withConfig(func(c *transport.Config) {
				c.Heartbeat = 10 * time.Millisecond
				c.Limits.ConnsPerUser, c.Limits.ConnectBurst = 2*heapStreams, 2*heapStreams
			}))
			open := func(n int) {
				switch kind {
				case "sse":
					openRawSSE(t, r, n).drain(t, r)
				case "websocket":
					openRawWS(t, r, n).drain(t, r)
				case "presence":
					openPresenceSSE(t, r, n)
				}
			}
			open(1) // warm up: the hub's channel, pools, the listener's goroutines
			before := streamHeap()
			open(heapStreams)
			after := streamHeap()

			bytes := float64(after.bytes-before.bytes) / heapStreams
			objects := float64(after.objects-before.objects) / heapStreams
			t.Logf("%s: %d idle streams: %.0f B in %.1f objects of heap each, allocated under relay's handlers",
				kind, heapStreams, bytes, objects)
			for _, what := range []string{"logger", "scratch", "presence state"} {
				if n := after.held[what] - before.held[what]; n > heapStreams/4 {
					t.Errorf("%d idle streams hold %d objects of a %s of their own (allocated under %s), want none",
						heapStreams, n, what, heldBy[what])
				}
			}
		})
	}
}

// heldBy names, for each thing an idle stream must not hold, the function
// whose allocation it would be.
var heldBy = map[string]string{
	"logger":         "log/slog.(*Logger).With",
	"scratch":        "transport.(*sseWire)",
	"presence state": "transport.(*Server).presenceStates",
}

// openPresenceSSE opens n SSE streams on project 1's presence channel and
// reads each one's welcome (the presence_state comes before it).
func openPresenceSSE(t *testing.T, r *relay, n int) {
	t.Helper()
	u, err := url.Parse(r.url)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		readUntil(t, dialRawSSE(t, u.Host, "/events/projects/1/presence"), "event: connection_established")
	}
}

// heapUse is what the heap holds of what relay's handlers allocated: bytes
// and objects, and how many objects of each kind of heldBy.
type heapUse struct {
	bytes, objects int64
	held           map[string]int64
}

// streamHeap collects twice (the profile's in-use figures are those of the
// last completed cycle) and sums the in-use records of the memory profile
// whose stack runs through relay's HTTP handler (ServeHTTP) or a goroutine
// a stream started (the transport package's own functions, not its tests').
func streamHeap() heapUse {
	runtime.GC()
	runtime.GC()
	var records []runtime.MemProfileRecord
	n, _ := runtime.MemProfile(nil, false)
	for {
		records = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(records, false); ok {
			records = records[:n]
			break
		}
	}
	u := heapUse{held: map[string]int64{}}
	for _, rec := range records {
		if rec.InUseObjects() == 0 {
			continue
		}
		var relay bool
		held := ""
		frames := runtime.CallersFrames(rec.Stack())
		for {
			f, more := frames.Next()
			name := f.Function
			switch {
			case strings.HasPrefix(name, "github.com/relaydev/relay/transport."):
				relay = true
			case strings.HasPrefix(name, "github.com/relaydev/relay/transport_test."):
				relay = false // the test's own helpers, and the clients they run
				more = false
			}
			for what, fn := range heldBy {
				if strings.Contains(name, fn) && held == "" {
					held = what
				}
			}
			if !more {
				break
			}
		}
		if !relay {
			continue
		}
		u.bytes += rec.InUseBytes()
		u.objects += rec.InUseObjects()
		if held != "" {
			u.held[held] += rec.InUseObjects()
		}
	}
	return u
}
