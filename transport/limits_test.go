package transport_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/transport"
)

const localIP = "127.0.0.1"

// withLimits adjusts the relay's client limits.
func withLimits(f func(*transport.Limits)) option {
	return withConfig(func(c *transport.Config) { f(&c.Limits) })
}

// userTok is a token for user id, member of project 1.
func userTok(t *testing.T, id string) string {
	return token(t, auth.Identity{UserID: id, Name: "user" + id, Projects: []string{"1"}}, time.Hour)
}

// refused asserts that a stream attempt was refused with code: SSE with 429
// and the JSON code before any stream, WebSocket with close 4029 and a
// reason after the upgrade.
func refused(t *testing.T, kind, url string, header http.Header, code string) {
	t.Helper()
	c, resp, err := connect(t, kind, url, header)
	if err != nil {
		t.Fatal(err)
	}
	switch kind {
	case sseKind:
		if c != nil {
			c.close()
			t.Fatalf("sse: got a stream, want 429 %s", code)
		}
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("sse: got status %d, want 429 %s", resp.StatusCode, code)
		}
		if got := errorJSON(t, resp); got != code {
			t.Errorf("sse: got error %q, want %q", got, code)
		}
	case wsKind:
		if c == nil {
			t.Fatalf("ws: handshake refused with %d, want an upgrade then close 4029", statusOf(resp))
		}
		c.ended(t)
		if c.code != transport.CloseRateLimited || c.reason == "" {
			t.Errorf("ws: got close %d %q, want %d with a reason", c.code, c.reason, transport.CloseRateLimited)
		}
	}
}

// TestStreamsPerUser: with a limit of N streams per user, the N+1th stream
// of one token is refused (SSE 429 too_many_connections, WebSocket 4029),
// the access check says so too, and once one stream closes a new one is
// accepted. Another user is not affected.
func TestStreamsPerUser(t *testing.T) {
	const n = 3
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			r := startRelay(t, withLimits(func(l *transport.Limits) { l.ConnsPerUser = n }))
			url := q(r.url+"/events/projects/1/tickets", "token", alice(t))
			var open []*client
			for range n {
				c := mustConnect(t, kind, url, nil)
				c.live(t)
				open = append(open, c)
			}
			refused(t, kind, url, nil, "too_many_connections")

			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Accept", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := errorJSON(t, resp); resp.StatusCode != http.StatusTooManyRequests || got != "too_many_connections" {
				t.Errorf("access check at the limit: got %d %q, want 429 too_many_connections", resp.StatusCode, got)
			}
			resp.Body.Close()

			mustConnect(t, kind, q(r.url+"/events/projects/1/tickets", "token", bobTok(t)), nil).live(t)

			open[0].close()
			waitFor(t, "the closed stream to be uncounted", func() bool {
				users, _, _ := transport.LimitCounts(r.srv, "1", localIP)
				return users == n-1
			})
			mustConnect(t, kind, url, nil).live(t)
			if users, _, _ := transport.LimitCounts(r.srv, "1", localIP); users != n {
				t.Errorf("alice's streams: got %d, want %d", users, n)
			}
		})
	}
}

// TestStreamsPerIP counts streams by client address: the configured proxy
// header's when set (IPv6 by /64), the peer's otherwise, whatever the
// header says.
func TestStreamsPerIP(t *testing.T) {
	fly := func(ip string) http.Header { return http.Header{"Fly-Client-Ip": {ip}} }
	t.Run("trusted header", func(t *testing.T) {
		r := startRelay(t, withLimits(func(l *transport.Limits) {
			l.ConnsPerIP = 2
			l.TrustProxyHeader = "Fly-Client-IP"
		}))
		url := func(user string) string { return q(r.url+"/events/projects/1/tickets", "token", userTok(t, user)) }
		mustConnect(t, sseKind, url("10"), fly("203.0.113.7")).live(t)
		mustConnect(t, sseKind, url("11"), fly("203.0.113.7")).live(t)
		for _, kind := range kinds {
			refused(t, kind, url("12"), fly("203.0.113.7"), "too_many_connections")
		}
		mustConnect(t, sseKind, url("12"), fly("203.0.113.8")).live(t)

		mustConnect(t, sseKind, url("13"), fly("2001:db8:1:2::1")).live(t)
		mustConnect(t, sseKind, url("14"), fly("2001:db8:1:2:ffff::9")).live(t)
		refused(t, sseKind, url("15"), fly("2001:db8:1:2::77"), "too_many_connections") // the same /64
		mustConnect(t, sseKind, url("15"), fly("2001:db8:1:3::1")).live(t)
	})
	t.Run("untrusted header", func(t *testing.T) {
		r := startRelay(t, withLimits(func(l *transport.Limits) { l.ConnsPerIP = 2 }))
		url := func(user string) string { return q(r.url+"/events/projects/1/tickets", "token", userTok(t, user)) }
		mustConnect(t, sseKind, url("10"), fly("203.0.113.1")).live(t)
		mustConnect(t, sseKind, url("11"), fly("203.0.113.2")).live(t)
		refused(t, sseKind, url("12"), fly("203.0.113.3"), "too_many_connections")
	})
}

// TestConnectRate refuses an address's stream attempts past its connect
// rate, whether they would have been authorized or not: 429 rate_limited
// with Retry-After, close 4029.
func TestConnectRate(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			r := startRelay(t, withLimits(func(l *transport.Limits) {
				l.ConnectRate = 1
				l.ConnectBurst = 3
			}))
			url := q(r.url+"/events/projects/1/tickets", "token", alice(t))
			mustConnect(t, kind, url, nil).live(t)
			mustConnect(t, kind, url, nil).live(t)
			// A refused attempt takes a token too.
			c, resp, err := connect(t, kind, r.url+"/events/projects/1/tickets?token=bad", nil)
			if err != nil {
				t.Fatal(err)
			}
			if kind == sseKind && statusOf(resp) != http.StatusUnauthorized {
				t.Fatalf("bad token: got %d, want 401", statusOf(resp))
			}
			if c != nil {
				c.ended(t)
			}
			if kind == sseKind {
				c, resp, err := connect(t, kind, url, nil)
				if err != nil || c != nil {
					t.Fatalf("past the connect rate: got a stream (%v), want 429", err)
				}
				if resp.StatusCode != http.StatusTooManyRequests || errorJSON(t, resp) != "rate_limited" {
					t.Fatalf("past the connect rate: got %d, want 429 rate_limited", resp.StatusCode)
				}
				if ra := resp.Header.Get("Retry-After"); ra != "1" {
					t.Errorf("Retry-After: got %q, want 1", ra)
				}
				return
			}
			refused(t, kind, url, nil, "rate_limited")
		})
	}
}

// TestStreamLimitExactUnderConcurrency opens many streams of one user at
// once: exactly the limit are accepted, and all are uncounted once closed.
func TestStreamLimitExactUnderConcurrency(t *testing.T) {
	const limit, tries = 5, 40
	r := startRelay(t, withLimits(func(l *transport.Limits) { l.ConnsPerUser = limit }))
	url := q(r.url+"/events/projects/1/tickets", "token", alice(t))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted []*client
		other    []string
		tooMany  atomic.Int32
	)
	for i := range tries {
		kind := kinds[i%2]
		wg.Go(func() {
			c, resp, err := connect(t, kind, url, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				other = append(other, err.Error())
			case c == nil && resp.StatusCode == http.StatusTooManyRequests:
				tooMany.Add(1)
			case c == nil:
				other = append(other, fmt.Sprint("status ", resp.StatusCode))
			default:
				accepted = append(accepted, c)
			}
		})
	}
	wg.Wait()
	var live []*client
	for _, c := range accepted {
		if _, err := c.liveErr(); err != nil {
			if c.code != transport.CloseRateLimited {
				other = append(other, err.Error())
			}
			tooMany.Add(1)
			continue
		}
		live = append(live, c)
	}
	if len(live) != limit || int(tooMany.Load()) != tries-limit || len(other) > 0 {
		t.Fatalf("got %d streams and %d refused (%v), want %d and %d", len(live), tooMany.Load(), other, limit, tries-limit)
	}
	t.Logf("%d concurrent connects of one user, limit %d: %d accepted, %d refused 429/4029", tries, limit, len(live), tooMany.Load())
	for _, c := range live {
		c.close()
	}
	waitFor(t, "every stream to be uncounted", func() bool {
		users, ips, _ := transport.LimitCounts(r.srv, "1", localIP)
		return users == 0 && ips == 0
	})
}

// TestStreamCountReleased: a stream is uncounted however it ends: client
// gone, token expiry, slow consumer, a client that stops reading, shutdown.
func TestStreamCountReleased(t *testing.T) {
	const ch = "project_1_tickets"
	uncounted := func(t *testing.T, r *relay) {
		t.Helper()
		waitFor(t, "the stream to be uncounted", func() bool {
			users, ips, _ := transport.LimitCounts(r.srv, "1", localIP)
			return users == 0 && ips == 0
		})
	}
	counted := func(t *testing.T, r *relay) {
		t.Helper()
		if users, ips, _ := transport.LimitCounts(r.srv, "1", localIP); users != 1 || ips != 1 {
			t.Fatalf("open stream counted: got user %d, address %d, want 1 and 1", users, ips)
		}
	}
	url := func(r *relay, tok string) string { return q(r.url+"/events/projects/1/tickets", "token", tok) }
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Run("client gone", func(t *testing.T) {
				r := startRelay(t)
				c := mustConnect(t, kind, url(r, alice(t)), nil)
				c.live(t)
				counted(t, r)
				c.close()
				uncounted(t, r)
			})
			t.Run("token expiry", func(t *testing.T) {
				t.Parallel()
				r := startRelay(t)
				c := mustConnect(t, kind, url(r, token(t, auth.Identity{UserID: "1", Projects: []string{"1"}}, 2*time.Second)), nil)
				c.live(t)
				counted(t, r)
				c.ended(t)
				uncounted(t, r)
			})
			t.Run("slow consumer", func(t *testing.T) {
				g := newGatedLog(nil)
				r := startRelay(t, withLog(g.wrap))
				c := mustConnect(t, kind, q(url(r, alice(t)), "last_event_id", "0"), nil)
				<-g.entered
				counted(t, r)
				drafts := overflowDrafts(ch)
				await := r.delivered(t, ch, len(drafts))
				if _, err := r.hub.Publish(context.Background(), drafts...); err != nil {
					t.Fatal(err)
				}
				await()
				close(g.gate)
				c.ended(t)
				uncounted(t, r)
			})
			t.Run("stopped reading", func(t *testing.T) {
				r := startRelay(t, withMaxEvents(64), withConfig(func(c *transport.Config) { c.WriteTimeout = 100 * time.Millisecond }))
				conn := stalledClient(t, r, kind, "/events/projects/1/tickets?token="+alice(t))
				counted(t, r)
				d, _ := events.NewDraft(ch, "flood", strings.Repeat("x", 32<<10))
				deadline := time.Now().Add(wait)
				for r.hub.Subscribers() > 0 && time.Now().Before(deadline) {
					if _, err := r.hub.Publish(context.Background(), d); err != nil {
						t.Fatal(err)
					}
				}
				uncounted(t, r)
				conn.Close()
			})
			t.Run("shutdown", func(t *testing.T) {
				r := startRelay(t)
				c := mustConnect(t, kind, url(r, alice(t)), nil)
				c.live(t)
				counted(t, r)
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				if err := r.srv.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
				c.ended(t)
				uncounted(t, r)
			})
		})
	}
}

// TestAddressTableForgetsIdle: addresses that come and go are forgotten
// once their connect bucket has refilled, so the table stays bounded.
func TestAddressTableForgetsIdle(t *testing.T) {
	r := startRelay(t, withLimits(func(l *transport.Limits) {
		l.TrustProxyHeader = "Fly-Client-IP"
		l.ConnectRate = 1000 // a bucket of one refills in a millisecond
		l.ConnectBurst = 1
	}))
	for i := range 300 {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/events/notifications", nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Fly-Client-IP", fmt.Sprintf("198.51.%d.%d", i/250, i%250+1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("no token: got %d, want 401", resp.StatusCode)
		}
	}
	waitFor(t, "idle addresses to be forgotten", func() bool {
		_, _, tracked := transport.LimitCounts(r.srv, "", "")
		return tracked == 0
	})
}
