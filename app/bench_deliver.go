package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/relaydev/relay/auth"
)

// settle is how long the server rests before its memory is read.
const settle = 2 * time.Second

// connectConcurrency bounds the subscribers connecting at once, as a real
// population's reconnects are spread (relay's own shutdown jitters them over
// 5 s); a thousand handshakes in the same instant would measure that burst's
// transient buffers instead of what an idle connection keeps.
const connectConcurrency = 50

type deliveryResult struct {
	rate     float64 // deliveries per second, first publish to last receipt
	offered  float64 // events published per second times subscribers
	p50, p99 time.Duration
	lost     int
	perConn  int64 // server memory per idle SSE connection, bytes (0: unknown)
}

// benchSub is one SSE subscriber; only its goroutine writes it until done.
type benchSub struct {
	got     int
	last    time.Time
	samples []time.Duration
	err     error
}

// deliveries opens o.subscribers idle SSE streams on one channel (measuring
// the server's memory growth), then publishes o.rate events a second to them
// for o.duration, each carrying its send time.
func (o *benchOpts) deliveries(ctx context.Context, t *benchTarget) (deliveryResult, error) {
	var res deliveryResult
	client := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	expected := int(float64(o.rate) * o.duration.Seconds())
	url := t.url + "/events/projects/1/tickets?token=" + t.token(auth.Identity{UserID: "bench", Projects: []string{"1"}})
	before := t.rss()
	subs := make([]*benchSub, o.subscribers)
	var ready, wg sync.WaitGroup
	dialing := make(chan struct{}, connectConcurrency)
	for i := range subs {
		subs[i] = &benchSub{samples: make([]time.Duration, 0, expected)}
		ready.Add(1)
		dialing <- struct{}{}
		wg.Go(func() { subs[i].run(ctx, client, url, expected, func() { ready.Done(); <-dialing }) })
	}
	ready.Wait()
	time.Sleep(settle) // let the server settle before reading its memory
	if after := t.rss(); before > 0 && after > before {
		res.perConn = (after - before) / int64(o.subscribers)
	}

	pubClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer pubClient.CloseIdleConnections()
	tok := t.token(auth.Identity{UserID: "bench", Publish: []string{"*"}})
	tick := time.NewTicker(time.Second / time.Duration(o.rate))
	defer tick.Stop()
	start := time.Now()
	for range expected {
		<-tick.C
		body := fmt.Appendf(nil, `{"channel":"project_1_tickets","type":"bench","data":{"t":%d}}`, time.Now().UnixNano())
		if _, err := post(ctx, pubClient, t, tok, body); err != nil {
			return res, err
		}
	}
	res.offered = float64(expected*o.subscribers) / time.Since(start).Seconds()
	waitOrCancel(&wg, cancel, 15*time.Second)

	var all []time.Duration
	var last time.Time
	total := 0
	for _, s := range subs {
		total += s.got
		all = append(all, s.samples...)
		if s.last.After(last) {
			last = s.last
		}
	}
	if total == 0 {
		return res, fmt.Errorf("bench: no subscriber received an event: %v", subs[0].err)
	}
	sortDurations(all)
	res.rate = float64(total) / last.Sub(start).Seconds()
	res.p50, res.p99 = all[len(all)/2], all[len(all)*99/100]
	res.lost = expected*o.subscribers - total
	return res, nil
}

// waitOrCancel waits for wg, cancelling the subscribers after grace.
func waitOrCancel(wg *sync.WaitGroup, cancel context.CancelFunc, grace time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		cancel()
		<-done
	}
}

// run reads the stream until it has want events, recording each latency.
func (s *benchSub) run(ctx context.Context, client *http.Client, url string, want int, ready func()) {
	readyOnce := sync.OnceFunc(ready)
	defer readyOnce()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		s.err = err
		return
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	named := false // inside a named (control) event, not a message
	for s.got < want {
		line, err := br.ReadSlice('\n')
		if err != nil {
			s.err = err
			return
		}
		switch {
		case len(line) == 1: // the blank line that ends a frame
			named = false
		case bytes.HasPrefix(line, []byte("event: ")):
			named = true
			readyOnce() // connection_established: the subscription is in place
		case bytes.HasPrefix(line, []byte("data: ")) && !named:
			now := time.Now()
			if sent, ok := sentAt(line); ok {
				s.samples = append(s.samples, now.Sub(sent))
			}
			s.got++
			s.last = now
		}
	}
}

// sentAt finds the "t" member (unix nanoseconds) of a bench event's data.
func sentAt(line []byte) (time.Time, bool) {
	i := bytes.Index(line, []byte(`"t":`))
	if i < 0 {
		return time.Time{}, false
	}
	rest := line[i+4:]
	j := bytes.IndexAny(rest, ",}")
	if j < 0 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return time.Unix(0, ns), err == nil
}

func sortDurations(d []time.Duration) { slices.Sort(d) }
