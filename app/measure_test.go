package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/auth"
)

// The measurements behind fly.toml's sizing and RELAY_SHUTDOWN_SPREAD's
// default, run on demand against the relay binary built without -race:
//
//	RELAY_MEASURE=1 go test -count=1 -v -run TestMeasure ./app
//
// RELAY_MEASURE_STREAMS sets how many streams (default 1,000 idle streams per
// transport; 2,000 streams for the reconnect rate).

func measured(t *testing.T) int {
	t.Helper()
	if os.Getenv("RELAY_MEASURE") == "" {
		t.Skip("a measurement: set RELAY_MEASURE=1")
	}
	n, _ := strconv.Atoi(os.Getenv("RELAY_MEASURE_STREAMS"))
	return n
}

// dialStream opens one stream of transport ("sse" or "ws") on base+path and
// returns once it is live (connection_established read), with a function
// that blocks until the stream ends and closes it.
func dialStream(ctx context.Context, client *http.Client, transport, base, path string) (wait func() error, err error) {
	if transport == "ws" {
		conn, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+path, nil)
		if err != nil {
			return nil, err
		}
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				conn.Close()
				return nil, err
			}
			if strings.Contains(string(msg), `"connection_established"`) {
				break
			}
		}
		return func() error {
			defer conn.Close()
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					return err
				}
			}
		}, nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			resp.Body.Close()
			return nil, err
		}
		if strings.HasPrefix(line, "event: connection_established") {
			break
		}
	}
	return func() error {
		defer resp.Body.Close()
		for {
			if _, err := br.ReadString('\n'); err != nil {
				return err
			}
		}
	}, nil
}

// TestMeasureIdleMemory measures what an idle stream costs with relay
// bench's own measurement (idleMemory: VmRSS growth with n idle streams on
// one channel, in a relay process of its own per transport, memory store),
// so the two always agree.
func TestMeasureIdleMemory(t *testing.T) {
	n := measured(t)
	if n == 0 {
		n = 1000
	}
	for _, transport := range []string{transportSSE, transportWS} {
		t.Run(transport, func(t *testing.T) {
			env := map[string]string{"RELAY_JWT_SECRET": testSecret, "RELAY_LOG_LEVEL": "warn"}
			for k, v := range streamLimits {
				env[k] = v
			}
			p := startRelay(t, "relay-"+transport, env)
			target := &benchTarget{name: p.name, url: p.url, secret: testSecret, cmd: p.cmd}
			o := &benchOpts{out: io.Discard}
			got, err := o.idleMemory(context.Background(), target, transport, n)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d idle streams: %.1f KiB VmRSS per stream%s", transport, n, float64(got.rss)/1024, got.goNote())
		})
	}
}

// TestMeasureReconnectRate opens n streams (half SSE, half WebSocket) on
// relay A, stops A with SIGTERM, and has every client reconnect to relay B
// as it is told (SSE: after the retry hint, as EventSource does; WebSocket:
// at once, the worst a client can do). It reports the new streams B answers
// per 100 ms: with RELAY_SHUTDOWN_SPREAD=0, and with the default 3 s.
func TestMeasureReconnectRate(t *testing.T) {
	n := measured(t)
	if n == 0 {
		n = 2000
	}
	for _, spread := range []string{"0s", "3s"} {
		t.Run("spread="+spread, func(t *testing.T) {
			env := map[string]string{"RELAY_JWT_SECRET": testSecret, "RELAY_LOG_LEVEL": "warn",
				"RELAY_SHUTDOWN_TIMEOUT": "8s", "RELAY_SHUTDOWN_SPREAD": spread}
			for k, v := range streamLimits {
				env[k] = v
			}
			a := startRelay(t, "relay-a", env)
			b := startRelay(t, "relay-b", env)
			path := "/events/projects/1/tickets?token=" + mint(t, auth.Identity{UserID: "m", Projects: []string{"1"}})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
			defer client.CloseIdleConnections()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			var mu sync.Mutex
			var arrivals []time.Time
			dialing := make(chan struct{}, 50)
			errs := make(chan error, n)
			for i := range n {
				transport := []string{"sse", "ws"}[i%2]
				dialing <- struct{}{}
				wg.Go(func() {
					wait, err := dialStream(ctx, client, transport, a.url, path)
					<-dialing
					if err != nil {
						errs <- err
						return
					}
					_ = wait()
					if transport == "sse" {
						select { // the retry hint relay sends: 2000 ms
						case <-time.After(2 * time.Second):
						case <-ctx.Done():
							return
						}
					}
					wait, err = dialStream(ctx, client, transport, b.url, path)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					arrivals = append(arrivals, time.Now())
					mu.Unlock()
					_ = wait()
				})
			}
			for range cap(dialing) {
				dialing <- struct{}{}
			}
			began := time.Now()
			if _, err := a.term(t, 15*time.Second); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				mu.Lock()
				got := len(arrivals)
				mu.Unlock()
				if got == n || time.Now().After(deadline) {
					break
				}
				select {
				case err := <-errs:
					t.Fatal(err)
				case <-time.After(50 * time.Millisecond):
				}
			}
			mu.Lock()
			bins := map[int]int{}
			last, peak := 0, 0
			for _, at := range arrivals {
				i := int(at.Sub(began) / (100 * time.Millisecond))
				bins[i]++
				last, peak = max(last, i), max(peak, bins[i])
			}
			got := len(arrivals)
			mu.Unlock()
			busy := 0
			for _, c := range bins {
				if c > 0 {
					busy++
				}
			}
			t.Logf("spread %s: %d of %d streams reconnected to B; peak %d per 100 ms; %d busy 100 ms slots, the last %.1f s after SIGTERM",
				spread, got, n, peak, busy, float64(last+1)/10)
			var per []int
			for i := range last + 1 {
				per = append(per, bins[i])
			}
			t.Logf("new streams on B per 100 ms from SIGTERM: %v", per)
			b.kill(t) // ends the streams on B, so the readers return
		})
	}
}
