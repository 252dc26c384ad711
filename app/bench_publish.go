package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/relaydev/relay/auth"
)

type publishResult struct {
	accepted  float64 // events accepted (answered 200), per second
	delivered float64 // events received / (accepted events × subscribers)
	dropped   int     // subscribers whose stream ended before the last event
	spent     spent   // what each accepted event cost, delivery included
}

// endMarker is the type of the event that tells the many-publishers
// subscribers that publishing is over; it is not counted.
var endMarker = []byte(`"type":"bench_end"`)

// manyPublishers runs o.publishers loops of single-event publishes, as
// fast as each is answered, to one channel that o.pubSubscribers streams
// read. A subscriber the server drops does not reconnect, so what it missed
// shows as less than 100% delivered.
func (o *benchOpts) manyPublishers(ctx context.Context, t *benchTarget, tr string) (publishResult, error) {
	var res publishResult
	bn := newBenchNet(o.pubSubscribers, streamsPerAddr)
	defer bn.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	got := make([]int, o.pubSubscribers)
	ended := make([]bool, o.pubSubscribers) // before the end marker
	url := t.url + streamPath(tr, "3") + "?token=" + benchSubToken(t)
	err := openAll(ctx, bn, &wg, o.pubSubscribers, tr, url, func(i int, s benchStream) {
		for {
			data, welcome, err := s.next()
			if err != nil {
				ended[i] = true
				return
			}
			if bytes.Contains(data, endMarker) {
				return
			}
			if !welcome {
				got[i]++
			}
		}
	})
	if err != nil {
		return res, err
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.publishers * 2, DisableCompression: true}}
	defer client.CloseIdleConnections()
	tok := t.token(auth.Identity{UserID: "bench", Publish: []string{"*"}})
	u0 := t.usage(ctx)
	accepted, elapsed, err := publishFlat(ctx, client, t, tok, o.publishers, o.pubBatch, o.pubDuration)
	if err != nil {
		return res, err
	}
	if _, err := post(ctx, client, t, tok, []byte(`{"channel":"project_3_tickets","type":"bench_end"}`)); err != nil {
		return res, err
	}
	waitOrCancel(&wg, cancel, 30*time.Second)
	// CPU time, unlike rates, stays comparable on a loaded machine.
	res.spent = t.usage(ctx).per(u0, float64(accepted))
	total := 0
	for i := range got {
		total += got[i]
		if ended[i] {
			res.dropped++
		}
	}
	res.accepted = float64(accepted) / elapsed.Seconds()
	if accepted > 0 {
		res.delivered = float64(total) / float64(accepted*o.pubSubscribers)
	}
	return res, nil
}

// publishFlat runs n publishers to project_3_tickets for d, each posting
// batch events at a time (batch 1: one event object), and returns how many
// events were accepted and over how long. A publisher stops between
// requests, never cancelling one: a cancelled publish may still be stored,
// and subscribers would count an event that accepted does not.
func publishFlat(ctx context.Context, client *http.Client, t *benchTarget, tok string, n, batch int, d time.Duration) (int, time.Duration, error) {
	var wg sync.WaitGroup
	counts := make([]int, n)
	errs := make([]error, n)
	start := time.Now()
	deadline := start.Add(d)
	for i := range n {
		wg.Go(func() {
			for seq := 0; ctx.Err() == nil && time.Now().Before(deadline); seq++ {
				var body []byte
				if batch > 1 {
					body = append(body, '[')
				}
				for j := range batch {
					if j > 0 {
						body = append(body, ',')
					}
					body = fmt.Appendf(body, `{"channel":"project_3_tickets","type":"bench","data":{"p":%d,"n":%d}}`, i, seq*batch+j)
				}
				if batch > 1 {
					body = append(body, ']')
				}
				if _, err := post(ctx, client, t, tok, body); err != nil {
					errs[i] = err
					return
				}
				counts[i] += batch
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := 0
	for _, c := range counts {
		total += c
	}
	return total, elapsed, errors.Join(errs...)
}
