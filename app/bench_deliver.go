package main

import (
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
}

// benchSub is one subscriber; only its goroutine writes it until done.
type benchSub struct {
	got     int
	last    time.Time
	samples []time.Duration
	err     error
}

// openAll opens n streams at url from n's spread addresses,
// connectConcurrency at a time, each having had its connection_established,
// then hands each to read in a goroutine of wg. It returns once all are
// open, or the first error.
func openAll(ctx context.Context, bn *benchNet, wg *sync.WaitGroup, n int, tr, url string, read func(i int, s benchStream)) error {
	return openEach(ctx, bn, wg, n, tr, func(int) string { return url }, read)
}

// openEach is openAll with stream i at url(i).
func openEach(ctx context.Context, bn *benchNet, wg *sync.WaitGroup, n int, tr string, url func(i int) string, read func(i int, s benchStream)) error {
	var opening sync.WaitGroup
	dialing := make(chan struct{}, connectConcurrency)
	errs := make([]error, n)
	for i := range n {
		select {
		case dialing <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		opening.Add(1)
		url := url(i)
		wg.Go(func() {
			s, err := bn.open(ctx, i, tr, url)
			if err == nil {
				err = awaitWelcome(s)
			}
			errs[i] = err
			<-dialing
			opening.Done()
			if err != nil {
				if s != nil {
					s.close()
				}
				return
			}
			defer s.close()
			read(i, s)
		})
	}
	opening.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("bench: stream %d of %d: %w", i+1, n, err)
		}
	}
	return nil
}

// deliveries opens o.subscribers streams on one channel, then publishes o.rate events a second to them
// for o.duration, each carrying its send time.
func (o *benchOpts) deliveries(ctx context.Context, t *benchTarget, tr string) (deliveryResult, error) {
	var res deliveryResult
	bn := newBenchNet(o.subscribers, streamsPerAddr)
	defer bn.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, on every return
	defer cancel()

	expected := int(float64(o.rate) * o.duration.Seconds())
	url := t.url + streamPath(tr, "1") + "?token=" + benchSubToken(t)
	subs := make([]*benchSub, o.subscribers)
	for i := range subs {
		subs[i] = &benchSub{samples: make([]time.Duration, 0, expected)}
	}
	err := openAll(ctx, bn, &wg, o.subscribers, tr, url, func(i int, s benchStream) { subs[i].read(s, expected) })
	if err != nil {
		return res, err
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
	slices.Sort(all)
	res.rate = float64(total) / last.Sub(start).Seconds()
	res.p50, res.p99 = all[len(all)/2], all[len(all)*99/100]
	res.lost = expected*o.subscribers - total
	return res, nil
}

// pause waits d, or until ctx ends. It measures a window (memory settling,
// idle CPU); it never waits for a condition.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitOrCancel waits for wg, cancelling the subscribers after grace.
func waitOrCancel(wg *sync.WaitGroup, cancel context.CancelFunc, grace time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		cancel()
		<-done
	}
}

// read reads the stream until it has want events, recording each latency.
func (s *benchSub) read(st benchStream, want int) {
	for s.got < want {
		data, welcome, err := st.next()
		if err != nil {
			s.err = err
			return
		}
		if welcome {
			continue
		}
		now := time.Now()
		if ns, ok := intMember(data, `"t":`); ok {
			s.samples = append(s.samples, now.Sub(time.Unix(0, ns)))
		}
		s.got++
		s.last = now
	}
}

// intMember finds the integer member key (`"t":`) in a bench event's data.
func intMember(data []byte, key string) (int64, bool) {
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := data[i+len(key):]
	j := bytes.IndexAny(rest, ",}")
	if j < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}
