package transport_test

import (
	"net/http"
	"slices"
	"testing"
)

// TestResume checks replay after a cursor over both transports and both ways
// of sending it: every later event in order, no duplicate, then live events.
// Over both stores.
func TestResume(t *testing.T) {
	const ch = "project_1_tickets"
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st))
		ids := r.publishN(t, ch, 5) // seqs 1..5
		base := r.url + "/events/projects/1/tickets"
		// Each case publishes one live event, so history grows; a case
		// names the seq its replay starts after (-1: live only).
		for _, tc := range []struct {
			name   string
			query  string // last_event_id
			header string // Last-Event-ID
			after  int
		}{
			{"no cursor is live only", "", "", -1},
			{"header", "", ids[1], 2},
			{"query", ids[2], "", 3},
			{"header wins over query", ids[0], ids[3], 4},
			{"0 replays everything kept", "0", "", 0},
			{"0 in the header", "", "0", 0},
			{"the whole-cursor form", ch + "=" + ids[2], "", 3},
			{"other channels' pairs are ignored", "user_9_notifications=abc-1," + ch + "=" + ids[3], "", 4},
		} {
			t.Run(tc.name, func(t *testing.T) {
				url := q(base, "token", alice(t))
				if tc.query != "" {
					url = q(url, "last_event_id", tc.query)
				}
				c := mustConnect(t, kind, url, cursorHeader(tc.header))
				var want []uint64
				if tc.after >= 0 {
					want = seqRange(uint64(tc.after)+1, uint64(len(ids)))
				}
				if got := seqs(t, c.live(t)); !slices.Equal(got, want) {
					t.Errorf("history: got seqs %v, want %v", got, want)
				}
				// Live events follow, with no gap after the history.
				id := r.mustPublish(t, ch, "live", nil)
				if m := c.event(t); m.envID() != id {
					t.Errorf("live event: got %s, want %s", m.envID(), id)
				}
				c.close()
				ids = append(ids, id)
			})
		}
	})
}

// TestResumeAfterDisconnect is a browser's reconnect: what was published
// while the client was away arrives exactly once, then live events.
// Over both stores.
func TestResumeAfterDisconnect(t *testing.T) {
	const ch = "user_1_notifications"
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st))
		url := r.url + "/events/notifications?token=" + alice(t)
		c := mustConnect(t, kind, url, nil)
		c.live(t)
		first := r.publishN(t, ch, 3)
		for _, id := range first {
			if m := c.event(t); m.envID() != id {
				t.Fatalf("event: got %s, want %s", m.envID(), id)
			}
		}
		cursor := c.resumeCursor()
		if cursor != first[2] {
			t.Fatalf("client cursor: got %q, want the last event id %q", cursor, first[2])
		}
		c.close()

		missed := r.publishN(t, ch, 4)
		var header http.Header
		if kind == sseKind {
			header = cursorHeader(cursor) // EventSource's own reconnect
		} else {
			url = q(url, "last_event_id", cursor)
		}
		c = mustConnect(t, kind, url, header)
		h := c.live(t)
		var got []string
		for _, m := range h {
			got = append(got, m.envID())
		}
		if !slices.Equal(got, missed) {
			t.Errorf("replayed: got %v, want %v", got, missed)
		}
		id := r.mustPublish(t, ch, "live", nil)
		if m := c.event(t); m.envID() != id {
			t.Errorf("live: got %s, want %s", m.envID(), id)
		}
	})
}
