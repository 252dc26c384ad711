package main

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// idleResult is what an idle stream costs the server, per stream.
type idleResult struct {
	rss         int64 // VmRSS growth, bytes (0: unknown): what sizing uses
	heap, stack int64 // Go heap and goroutine stacks in use (relay's /metrics; 0: unknown)
}

// idleMemory is the one measurement of what an idle stream costs: n
// streams of tr on one channel, opened in a server process that has served
// nothing else (each store and transport gets its own), as openIdle opens
// them. The bench prints it as "memory per idle connection" and
// TestMeasureIdleMemory calls it.
//
// The process must be fresh because Go keeps the pages a run freed (the
// scavenger returns them over minutes): streams opened after another
// scenario reuse them and look cheaper than they are. Measured so, a
// WebSocket after the SSE scenarios in the same process grew by 13–14 KiB
// per stream, and by 27 KiB in a fresh one.
func (o *benchOpts) idleMemory(ctx context.Context, t *benchTarget, tr string, n int) (idleResult, error) {
	bn := newBenchNet(n, streamsPerAddr)
	defer bn.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	url := t.url + streamPath(tr, "3") + "?token=" + benchSubToken(t)
	return openIdle(ctx, t, bn, &wg, n, tr, url, func(_ int, s benchStream) {
		for {
			if _, _, err := s.next(); err != nil {
				return
			}
		}
	})
}

// openIdle is openAll that also reads what the open streams cost the
// server: its VmRSS growth settle after the last stream had its welcome
// (Go heap headroom included: RSS is what the machine must have), and the
// growth of the Go heap and stacks in use, from relay's /metrics, which
// tells how much of the RSS is live objects, goroutine stacks or headroom.
func openIdle(ctx context.Context, t *benchTarget, bn *benchNet, wg *sync.WaitGroup, n int, tr, url string, read func(i int, s benchStream)) (idleResult, error) {
	var res idleResult
	rss0 := t.rss()
	heap0, stack0 := t.goMemory(ctx)
	if err := openAll(ctx, bn, wg, n, tr, url, read); err != nil {
		return res, err
	}
	if err := pause(ctx, settle); err != nil {
		return res, err
	}
	if rss1 := t.rss(); rss0 > 0 && rss1 > rss0 {
		res.rss = (rss1 - rss0) / int64(n)
	}
	if heap1, stack1 := t.goMemory(ctx); heap0 > 0 && heap1 > 0 {
		res.heap, res.stack = (heap1-heap0)/int64(n), (stack1-stack0)/int64(n)
	}
	return res, nil
}

// goMemory reads go_memstats_heap_inuse_bytes and
// go_memstats_stack_inuse_bytes from the target's /metrics (0, 0: not
// relay, or not served there).
func (t *benchTarget) goMemory(ctx context.Context) (heap, stack int64) {
	if t.bare {
		return 0, 0
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url+"/metrics", nil)
	if err != nil {
		return 0, 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, _ := strconv.ParseFloat(value, 64)
		switch name {
		case "go_memstats_heap_inuse_bytes":
			heap = int64(f)
		case "go_memstats_stack_inuse_bytes":
			stack = int64(f)
		}
	}
	return heap, stack
}
