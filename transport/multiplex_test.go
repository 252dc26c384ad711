package transport_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestMultiplex checks /events?channel=A&channel=B: events of both channels
// on one connection; on SSE the id line is the whole cursor "A=<id>,B=<id>";
// a reconnect with that cursor (SSE: the id line as Last-Event-ID;
// WebSocket: the cursor built from connection_established and the
// envelopes' channel and id) resumes both channels exactly.
// Over both stores.
func TestMultiplex(t *testing.T) {
	const a, b = "project_1_tickets", "user_1_notifications"
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st))
		url := q(r.url+"/events", "channel", a, "channel", b, "channel", a, "token", alice(t))
		c := mustConnect(t, kind, url, nil)
		c.live(t)
		if kind == wsKind && !slices.Equal(c.channels, []string{a, b}) {
			t.Errorf("connection_established channels: got %v, want [%s %s] (repeats dropped)", c.channels, a, b)
		}

		last := map[string]string{}
		for i, ch := range []string{a, b, b, a} {
			id := r.mustPublish(t, ch, "e", i)
			last[ch] = id
			m := c.event(t)
			if m.envID() != id || m.channel() != ch {
				t.Fatalf("event %d: got %v, want id %s on %s", i, m.Env, id, ch)
			}
			if kind == sseKind {
				want := wholeCursor(a, last[a], b, last[b])
				if i == 0 {
					want = a + "=" + id + "," + b + "=" + c.posFromCursor(t, b)
				}
				if m.ID != want {
					t.Errorf("id line after event %d: got %q, want %q", i, m.ID, want)
				}
			}
		}
		cursor := c.resumeCursor()
		if want := wholeCursor(a, last[a], b, last[b]); cursor != want {
			t.Errorf("client cursor: got %q, want %q", cursor, want)
		}
		c.close()

		// Published while the client is away, interleaved.
		var missed []string
		for i, ch := range []string{b, a, a, b, a} {
			missed = append(missed, r.mustPublish(t, ch, "missed", i))
		}
		var header http.Header
		if kind == sseKind {
			header = cursorHeader(cursor)
		} else {
			url = q(url, "last_event_id", cursor)
		}
		c = mustConnect(t, kind, url, header)
		got := map[string][]string{}
		for _, m := range c.live(t) {
			got[m.channel()] = append(got[m.channel()], m.envID())
		}
		want := map[string][]string{a: {missed[1], missed[2], missed[4]}, b: {missed[0], missed[3]}}
		for _, ch := range []string{a, b} {
			if !slices.Equal(got[ch], want[ch]) {
				t.Errorf("replayed on %s: got %v, want %v", ch, got[ch], want[ch])
			}
		}
		if kind == sseKind {
			if want := wholeCursor(a, missed[4], b, missed[3]); c.cursor != want {
				t.Errorf("cursor after replay: got %q, want %q", c.cursor, want)
			}
		}
		// Then live events on both.
		idB := r.mustPublish(t, b, "live", nil)
		idA := r.mustPublish(t, a, "live", nil)
		if m := c.event(t); m.envID() != idB {
			t.Errorf("live: got %s, want %s", m.envID(), idB)
		}
		if m := c.event(t); m.envID() != idA {
			t.Errorf("live: got %s, want %s", m.envID(), idA)
		}
	})
}

// TestMultiplexQuietChannel resumes a connection on which one channel never
// had an event: its position in the cursor keeps it exact.
// Over both stores.
func TestMultiplexQuietChannel(t *testing.T) {
	const a, b = "project_1_tickets", "project_2_tickets"
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st))
		url := q(r.url+"/events", "channel", a, "channel", b, "token", alice(t))
		c := mustConnect(t, kind, url, nil)
		c.live(t)
		cursor := c.resumeCursor()
		c.close()
		idB := r.mustPublish(t, b, "while away", nil)
		c = mustConnect(t, kind, q(url, "last_event_id", cursor), nil)
		h := c.live(t)
		if len(h) != 1 || h[0].envID() != idB {
			t.Errorf("replayed: got %v, want the one event %s of %s", h, idB, b)
		}
	})
}

func wholeCursor(a, idA, b, idB string) string { return fmt.Sprintf("%s=%s,%s=%s", a, idA, b, idB) }

// posFromCursor returns channel's position in an SSE client's cursor.
func (c *client) posFromCursor(t *testing.T, channel string) string {
	t.Helper()
	for _, pair := range splitCursor(c.cursor) {
		if pair[0] == channel {
			return pair[1]
		}
	}
	t.Fatalf("cursor %q has no position for %s", c.cursor, channel)
	return ""
}

func splitCursor(cur string) [][2]string {
	var out [][2]string
	for pair := range strings.SplitSeq(cur, ",") {
		ch, id, _ := strings.Cut(pair, "=")
		out = append(out, [2]string{ch, id})
	}
	return out
}
