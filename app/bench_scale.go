package main

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relaydev/relay/auth"
)

// scaleEvents is how many events the time to reach every stream is the
// median of.
const scaleEvents = 5

type scaleResult struct {
	streams int
	addrs   int
	perConn idleResult // server memory growth per stream
	idle    spent      // what a second of idling cost (server 20,000 µs: 2% of one core)
	files   uint64     // the server's open file limit (0: unknown)
	toAll   time.Duration
	p99     time.Duration // over every stream's latency of every event
	missing int           // receipts that never came
	spent   spent         // what one event's delivery to one stream cost
}

// scaleEvent is one event's progress: when it was published, and the
// streams it has still to reach.
type scaleEvent struct {
	sent      time.Time
	remaining atomic.Int64
	done      chan struct{} // closed when remaining reaches 0
}

// scale opens o.connections idle streams on one channel, spread over
// loopback source addresses, reads the server's memory growth and idle CPU
// (heartbeats running), then publishes scaleEvents events, one at a time,
// timing each until every stream has it.
func (o *benchOpts) scale(ctx context.Context, t *benchTarget, tr string) (scaleResult, error) {
	n := o.connections
	res := scaleResult{streams: n, files: t.fileLimit()}
	bn := newBenchNet(n, streamsPerAddr)
	res.addrs = len(bn.addrs)
	defer bn.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	evs := make([]*scaleEvent, scaleEvents)
	for k := range evs {
		evs[k] = &scaleEvent{done: make(chan struct{})}
		evs[k].remaining.Store(int64(n))
	}
	recv := make([][scaleEvents]time.Time, n) // recv[i] is written by stream i's goroutine only
	url := t.url + streamPath(tr, "4") + "?token=" + benchSubToken(t)
	var err error
	res.perConn, err = openIdle(ctx, t, bn, &wg, n, tr, url, func(i int, s benchStream) {
		for seen := 0; seen < scaleEvents; {
			data, welcome, err := s.next()
			if err != nil {
				return
			}
			k, ok := intMember(data, `"n":`)
			if welcome || !ok || k < 0 || k >= scaleEvents || !recv[i][k].IsZero() {
				continue
			}
			recv[i][k] = time.Now()
			seen++
			if evs[k].remaining.Add(-1) == 0 {
				close(evs[k].done)
			}
		}
	})
	if err != nil {
		return res, err
	}
	idle0, start := t.usage(ctx), time.Now()
	if err := pause(ctx, o.idleCPU); err != nil {
		return res, err
	}
	// Per second of the wait, so the CPU figures read as µs per second:
	// server 20,000 µs is 2% of one core.
	res.idle = t.usage(ctx).per(idle0, time.Since(start).Seconds())

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	tok := t.token(auth.Identity{UserID: "bench", Publish: []string{"*"}})
	toAll := make([]time.Duration, 0, scaleEvents)
	u0 := t.usage(ctx)
	for k, ev := range evs {
		ev.sent = time.Now()
		body := fmt.Appendf(nil, `{"channel":"project_4_tickets","type":"bench","data":{"n":%d}}`, k)
		if _, err := post(ctx, client, t, tok, body); err != nil {
			return res, err
		}
		wait := time.NewTimer(30 * time.Second)
		select {
		case <-ev.done:
		case <-wait.C: // counted as missing below
		case <-ctx.Done():
		}
		wait.Stop()
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	u1 := t.usage(ctx)
	cancel()
	wg.Wait() // every recv is final
	var lat []time.Duration
	for k, ev := range evs {
		var last time.Duration
		for i := range recv {
			if recv[i][k].IsZero() {
				res.missing++
				continue
			}
			d := recv[i][k].Sub(ev.sent)
			lat = append(lat, d)
			last = max(last, d)
		}
		toAll = append(toAll, last)
	}
	res.spent = u1.per(u0, float64(len(lat)))
	slices.Sort(toAll)
	slices.Sort(lat)
	res.toAll = toAll[len(toAll)/2]
	if len(lat) > 0 {
		res.p99 = lat[len(lat)*99/100]
	}
	return res, nil
}

func (o *benchOpts) printScale(s scaleResult, c figures) {
	fmt.Fprintf(o.out, "  %d idle streams from %d source addresses (server's open file limit %d):\n", s.streams, s.addrs, s.files)
	if s.perConn.rss > 0 {
		fmt.Fprintf(o.out, "    RSS per stream:                           %.1f KiB%s%s\n", float64(s.perConn.rss)/1024,
			ratio(float64(s.perConn.rss), float64(c.scalePerConn)), s.perConn.goNote())
	}
	if s.idle.server >= 0 {
		fmt.Fprintf(o.out, "    idle CPU over %s:                        %.2f%% of one core (%.2f%% in the kernel)", o.idleCPU, s.idle.server/1e4, s.idle.kernel/1e4)
		if s.idle.switches >= 0 {
			fmt.Fprintf(o.out, ", %.0f context switches/s", s.idle.switches)
		}
		fmt.Fprintf(o.out, "%s\n", s.idle.stealNote())
	}
	fmt.Fprintf(o.out, "    one event to every stream (median of %d): %s%s; p99 per stream %s; %d receipts missing\n",
		scaleEvents, ms(s.toAll), ratio(float64(s.toAll), float64(c.scaleToAll)), ms(s.p99), s.missing)
	if cost := s.spent.String(); cost != "" {
		fmt.Fprintf(o.out, "    CPU per event and stream: %s\n", cost)
	}
	if floor, ok := s.kernelFloor(runtime.NumCPU()); ok {
		fmt.Fprintf(o.out, "    the kernel's time alone, spread over %d cores: %s to every stream\n", runtime.NumCPU(), ms(floor))
	}
}

// kernelFloor is about the least time one event can take to reach every
// stream when the server and the bench share cpus cores: their kernel time
// for it (the server's writes, with loopback's receive charged to them, and
// the bench's reads; averaged over the run's events), spread perfectly over
// the cores. False when either is unknown (a relay measured by --url).
func (s scaleResult) kernelFloor(cpus int) (time.Duration, bool) {
	if s.spent.server < 0 || s.spent.bench < 0 || cpus < 1 {
		return 0, false
	}
	us := (s.spent.kernel + s.spent.benchK) * float64(s.streams) / float64(cpus)
	return time.Duration(us * float64(time.Microsecond)), true
}
