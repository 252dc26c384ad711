package transport_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape reads r's /metrics over HTTP: every sample, by its series as
// written (name{labels}).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: got %d %q, want 200 text/plain", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// series returns one sample, failing the test when the series is missing.
func series(t *testing.T, m map[string]float64, name string) float64 {
	t.Helper()
	v, ok := m[name]
	if !ok {
		t.Fatalf("/metrics has no series %s", name)
	}
	return v
}

// awaitSeries scrapes until every series has its wanted value, or fails
// after 5 s. One scrape is not a snapshot (collectors are read one after
// another while streams change them), so a test that waits for one series
// reads the others from a later scrape.
func awaitSeries(t *testing.T, url string, want map[string]float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := scrape(t, url)
		var wrong []string
		for name, v := range want {
			if got := series(t, m, name); got != v {
				wrong = append(wrong, fmt.Sprintf("%s: got %v, want %v", name, got, v))
			}
		}
		if len(wrong) == 0 {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatal(strings.Join(wrong, "; "))
		}
		time.Sleep(10 * time.Millisecond) // a poll until the deadline, not a wait for a condition
	}
}

// TestMetricsWhileStreaming scrapes /metrics over HTTP while real SSE and
// WebSocket streams run: connections by transport are the streams open,
// subscriptions their channels, published counts the publishes, delivered
// and replayed the events the streams were sent, resets their cause, and
// closed streams are counted by reason.
func TestMetricsWhileStreaming(t *testing.T) {
	r := startRelay(t, withMaxEvents(3), withFastPresence())
	tickets := q(r.url+"/events/projects/1/tickets", "token", alice(t))
	var streams []*client
	for _, kind := range []string{sseKind, sseKind, wsKind} {
		c := mustConnect(t, kind, tickets, nil)
		c.live(t) // the welcome: the stream is counted
		streams = append(streams, c)
	}
	presence := mustConnect(t, wsKind, q(r.url+"/events/projects/1/presence", "token", alice(t)), nil)
	presence.live(t)
	multi := mustConnect(t, sseKind, q(r.url+"/events", "token", alice(t), "channel", "project_1_tickets", "channel", "project_2_tickets"), nil)
	multi.live(t)
	streams = append(streams, multi)

	m := scrape(t, r.url)
	for name, want := range map[string]float64{
		`relay_connections{transport="sse"}`:              3, // httptest is HTTP/1.1: hijacked SSE
		`relay_connections{transport="sse_h2"}`:           0,
		`relay_connections{transport="websocket"}`:        2,
		`relay_subscriptions`:                             6,
		`relay_presence_users_online`:                     1,
		`relay_redis_pubsub_reconnects_total`:             0,
		`relay_store_events_received_total`:               0,
		`relay_disconnects_total{reason="slow_consumer"}`: 0,
		`relay_store_errors_total{op="read"}`:             0,
		`relay_resets_total{cause="trimmed"}`:             0,
		`relay_resets_total{cause="new_epoch"}`:           0,
	} {
		if got := series(t, m, name); got != want {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	published := series(t, m, "relay_events_published_total")
	delivered := series(t, m, "relay_events_delivered_total")
	publishes := series(t, m, "relay_publish_duration_seconds_count")

	ids := r.publishN(t, "project_1_tickets", 4)
	for _, c := range streams {
		for range ids {
			c.event(t)
		}
	}
	m = scrape(t, r.url)
	if got := series(t, m, "relay_events_published_total") - published; got != 4 {
		t.Errorf("events published: got %v more, want 4", got)
	}
	if got := series(t, m, "relay_publish_duration_seconds_count") - publishes; got != 4 {
		t.Errorf("publish latency observations: got %v more, want 4", got)
	}
	if got := series(t, m, "relay_events_delivered_total") - delivered; got != 4*4 {
		t.Errorf("events delivered: got %v more, want 16 (4 events to 4 streams)", got)
	}
	if got := series(t, m, `relay_store_duration_seconds_count{op="append"}`); got < 4 {
		t.Errorf("append latency observations: got %v, want at least 4", got)
	}

	// History: the 3 events kept after the first, replayed; then a cursor
	// whose next events were trimmed (MaxEvents 3), and one of an epoch
	// the log never had: one reset of each cause.
	replayed := series(t, m, "relay_events_replayed_total")
	c := mustConnect(t, sseKind, q(tickets, "last_event_id", ids[0]), nil)
	if h := c.live(t); len(h) != 3 {
		t.Errorf("history after %s: got %d messages, want 3", ids[0], len(h))
	}
	c.close()
	r.publishN(t, "project_1_tickets", 3) // ids[0]'s successor is trimmed now
	for _, cursor := range []string{ids[0], "aaaaaaaaaa-1"} {
		c := mustConnect(t, sseKind, q(tickets, "last_event_id", cursor), nil)
		if h := c.live(t); len(h) == 0 || h[0].Kind != "reset" {
			t.Errorf("history after %s: got %v, want a reset first", cursor, h)
		}
		c.close()
	}
	m = awaitSeries(t, r.url, map[string]float64{`relay_disconnects_total{reason="client_closed"}`: 3})
	if got := series(t, m, "relay_events_replayed_total") - replayed; got != 3 {
		t.Errorf("events replayed: got %v more, want 3 (a reset replays nothing)", got)
	}
	for _, cause := range []string{"trimmed", "new_epoch"} {
		if got := series(t, m, fmt.Sprintf(`relay_resets_total{cause=%q}`, cause)); got != 1 {
			t.Errorf("resets (%s): got %v, want 1", cause, got)
		}
	}

	for _, c := range append(streams, presence) {
		c.close()
	}
	awaitSeries(t, r.url, map[string]float64{
		`relay_disconnects_total{reason="client_closed"}`: 3 + 5,
		`relay_connections{transport="sse"}`:              0,
		`relay_connections{transport="websocket"}`:        0,
		`relay_subscriptions`:                             0,
	})
}

// TestMetricsSlowConsumer: a stream that falls behind its buffer is counted
// as a slow_consumer disconnect, and leaves the connection gauge.
func TestMetricsSlowConsumer(t *testing.T) {
	const ch = "project_1_tickets"
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			g := newGatedLog(nil)
			r := startRelay(t, withLog(g.wrap))
			c := mustConnect(t, kind, q(r.url+"/events/projects/1/tickets", "token", alice(t), "last_event_id", "0"), nil)
			<-g.entered // the catch-up is reading: nothing drains the buffer
			drafts := overflowDrafts(ch)
			if _, err := r.hub.Publish(context.Background(), drafts...); err != nil {
				t.Fatal(err)
			}
			close(g.gate)
			c.ended(t)
			awaitSeries(t, r.url, map[string]float64{
				`relay_disconnects_total{reason="slow_consumer"}`:                                                     1,
				`relay_connections{transport="` + map[string]string{sseKind: "sse", wsKind: "websocket"}[kind] + `"}`: 0,
			})
		})
	}
}
