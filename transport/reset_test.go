package transport_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/relaydev/relay/events"
)

// TestReset checks that a cursor the log can no longer answer is told with
// a distinct reset naming the channel (never a silent gap), after which the
// stream goes on with live events from the head.
// Over both stores.
func TestReset(t *testing.T) {
	const ch = "project_1_tickets"
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st), withMaxEvents(5))
		ids := r.publishN(t, ch, 12) // keeps seqs 8..12
		epoch, _, _ := strings.Cut(ids[0], "-")
		for _, tc := range []struct {
			name, cursor string
		}{
			{"trimmed", ids[2]},
			{"just before the oldest kept", ids[5]},
			{"unknown epoch", "zzzz9999-3"},
			{"ahead of the head", epoch + "-99"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				head := ids[len(ids)-1]
				c := mustConnect(t, kind, q(r.url+"/events/projects/1/tickets", "token", alice(t), "last_event_id", tc.cursor), nil)
				h := c.live(t)
				if len(h) != 1 || h[0].Kind != "reset" {
					t.Fatalf("history: got %v, want one reset", h)
				}
				reset := h[0]
				if got := reset.Env["type"]; got != "reset" {
					t.Errorf("reset type: got %v, want reset", got)
				}
				if got := reset.channel(); got != ch {
					t.Errorf("reset channel: got %q, want %q", got, ch)
				}
				if got := reset.envID(); got != head {
					t.Errorf("reset id: got %q, want the head %q", got, head)
				}
				if kind == sseKind && reset.ID != head {
					t.Errorf("reset id line: got %q, want the head %q", reset.ID, head)
				}
				id := r.mustPublish(t, ch, "after reset", nil)
				ids = append(ids, id)
				if m := c.event(t); m.envID() != id {
					t.Errorf("live after reset: got %s, want %s", m.envID(), id)
				}
				c.close()
			})
		}
	})
}

// TestResetMultiplexed resets only the channel whose cursor is gone; the
// other channel of the connection resumes exactly.
// Over both stores.
func TestResetMultiplexed(t *testing.T) {
	const a, b = "project_1_tickets", "project_2_tickets"
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st), withMaxEvents(3))
		idsA := r.publishN(t, a, 6)
		idsB := r.publishN(t, b, 3)
		cursor := wholeCursor(a, idsA[0], b, idsB[0])
		c := mustConnect(t, kind, q(r.url+"/events", "channel", a, "channel", b, "token", alice(t), "last_event_id", cursor), nil)
		var got []string
		for _, m := range c.live(t) {
			got = append(got, m.Kind+":"+m.channel()+":"+m.envID())
		}
		want := []string{"reset:" + a + ":" + idsA[5], "message:" + b + ":" + idsB[1], "message:" + b + ":" + idsB[2]}
		if !slices.Equal(got, want) {
			t.Errorf("history: got %v, want %v", got, want)
		}
		if kind == sseKind {
			if want := wholeCursor(a, idsA[5], b, idsB[2]); c.cursor != want {
				t.Errorf("cursor: got %q, want %q", c.cursor, want)
			}
		}
	})
}

// TestResetStoreWiped: when Redis has lost the log (restarted without
// persistence, or flushed), a cursor of the old log is told with a reset
// naming the channel, at the new log's head, and live events follow in the
// new epoch. Redis only: a memory log is never reset in place (a restarted
// process is a new log: TestReset's unknown epoch).
func TestResetStoreWiped(t *testing.T) {
	const ch = "project_1_tickets"
	for _, kind := range kinds {
		t.Run(redisStore+"/"+kind, func(t *testing.T) {
			r := startRelay(t, withStore(redisStore))
			url := q(r.url+"/events/projects/1/tickets", "token", alice(t))
			cursor := r.publishN(t, ch, 3)[1]
			for _, tc := range []struct {
				name    string
				publish int // events published after the wipe
			}{
				{"empty new log", 0},
				{"new log with events", 2},
			} {
				t.Run(tc.name, func(t *testing.T) {
					oldEpoch, _, _ := splitID(cursor)
					r.wipeRedis(t)
					var head string
					if tc.publish > 0 {
						ids := r.publishN(t, ch, tc.publish)
						head = ids[len(ids)-1]
					}
					c := mustConnect(t, kind, q(url, "last_event_id", cursor), nil)
					h := c.live(t)
					if len(h) != 1 || h[0].Kind != "reset" || h[0].channel() != ch {
						t.Fatalf("history: got %v, want one reset of %s", h, ch)
					}
					got := h[0].envID()
					p, err := events.ParsePosition(got)
					epoch := p.Epoch
					switch {
					case err != nil:
						t.Fatalf("reset id %q: %v", got, err)
					case head != "" && got != head:
						t.Errorf("reset id: got %q, want the new head %q", got, head)
					case epoch == "" || epoch == oldEpoch || p.Seq != uint64(tc.publish):
						t.Errorf("reset id: got %q, want seq %d of a new epoch (not %s)", got, tc.publish, oldEpoch)
					}
					if kind == sseKind && h[0].ID != got {
						t.Errorf("reset id line: got %q, want %q", h[0].ID, got)
					}
					id := r.mustPublish(t, ch, "after reset", nil)
					if p.IsEmpty() { // no log yet: the first event starts its epoch
						epoch, _, _ = splitID(id)
					}
					if e, s, _ := splitID(id); e != epoch || s != uint64(tc.publish)+1 {
						t.Errorf("published %s after the reset, want seq %d of %s", id, tc.publish+1, epoch)
					}
					if m := c.event(t); m.envID() != id {
						t.Errorf("live after reset: got %s, want %s", m.envID(), id)
					}
					cursor = id
					c.close()
				})
			}
		})
	}
}

// TestResetLiveNewEpoch: a client connected while its channel's log starts
// a new epoch (Redis wiped under it) is never moved to it silently: it gets
// a reset naming the channel, at the new epoch's start, then every event of
// the new epoch once, from its first.
// Redis only: a memory log is never reset in place.
func TestResetLiveNewEpoch(t *testing.T) {
	const ch = "project_1_tickets"
	for _, kind := range kinds {
		t.Run(redisStore+"/"+kind, func(t *testing.T) {
			r := startRelay(t, withStore(redisStore))
			old := r.publishN(t, ch, 2)
			c := mustConnect(t, kind, q(r.url+"/events/projects/1/tickets", "token", alice(t), "last_event_id", old[0]), nil)
			if h := c.live(t); len(h) != 1 || h[0].envID() != old[1] {
				t.Fatalf("history: got %v, want %s", h, old[1])
			}
			r.wipeRedis(t)
			fresh := r.publishN(t, ch, 2)
			oldEpoch, _, _ := splitID(old[0])
			newEpoch, seq, _ := splitID(fresh[0])
			if newEpoch == oldEpoch || seq != 1 {
				t.Fatalf("first event after the wipe is %s, want seq 1 of a new epoch", fresh[0])
			}
			reset := c.next(t)
			if reset.Kind != "reset" || reset.channel() != ch || reset.envID() != newEpoch+"-0" {
				t.Fatalf("after the wipe: got %q %v, want a reset of %s at %s-0", reset.Kind, reset.Env, ch, newEpoch)
			}
			for _, id := range fresh {
				if m := c.event(t); m.envID() != id {
					t.Errorf("new epoch: got %s, want %s", m.envID(), id)
				}
			}
			if got := c.resumeCursor(); got != fresh[1] {
				t.Errorf("cursor: got %q, want %q", got, fresh[1])
			}
		})
	}
}
