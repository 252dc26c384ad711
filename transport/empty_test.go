package transport_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store/redistest"
)

// TestSubscribeCreatesNothing: subscribing without a cursor to 200
// never-published channels (a member may read every project_{id}_… channel)
// leaves no state in the store: no Redis key under the relay's prefix, no
// log of any channel. An event published afterwards still arrives live, and
// only then does its channel exist.
// Over both stores.
func TestSubscribeCreatesNothing(t *testing.T) {
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st))
		const conns, each = 4, 50
		var chans []string
		var clients []*client
		for i := range conns {
			u := r.url + "/events?token=" + alice(t)
			for j := range each {
				ch := fmt.Sprintf("project_1_junk%d", i*each+j)
				chans = append(chans, ch)
				u = q(u, "channel", ch)
			}
			c := mustConnect(t, kind, u, nil)
			if h := c.live(t); len(h) != 0 {
				t.Fatalf("connection %d: history %v, want none", i, h)
			}
			clients = append(clients, c)
		}
		if st == redisStore {
			if keys := redisKeys(t, r.prefix); len(keys) != 0 {
				t.Errorf("after subscribing to %d channels Redis holds %d keys under %s, want none: %v",
					len(chans), len(keys), r.prefix, keys[:min(len(keys), 5)])
			}
		}
		for _, ch := range chans {
			if p, err := r.log.Head(context.Background(), ch); err != nil || !p.IsEmpty() {
				t.Fatalf("Head(%s) = %v, %v; want an empty position (no log)", ch, p, err)
			}
		}
		target := chans[len(chans)-1] // the last channel of the last connection
		id := r.mustPublish(t, target, "first", nil)
		if m := clients[conns-1].event(t); m.envID() != id || m.channel() != target {
			t.Errorf("live: got %s on %s, want %s on %s", m.envID(), m.channel(), id, target)
		}
		if p, err := r.log.Head(context.Background(), target); err != nil || p.String() != id {
			t.Errorf("Head(%s) after a publish = %v, %v; want %s", target, p, err, id)
		}
		if st == redisStore {
			if keys := redisKeys(t, r.prefix); len(keys) == 0 {
				t.Error("after a publish Redis holds no key under the prefix: the count above cannot fail")
			}
		}
	})
}

// TestResumeFromEmptyChannel: a client whose channel had no log when it
// connected, and that disconnected before any event, resumes with the
// cursor it was given and gets every event published meanwhile, on a
// one-channel connection and on a multiplexed one (next to a channel with
// a log). Over both stores.
func TestResumeFromEmptyChannel(t *testing.T) {
	const a, b = "project_1_tickets", "project_2_tickets"
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st))
		t.Run("one channel", func(t *testing.T) {
			url := q(r.url+"/events/projects/1/tickets", "token", alice(t))
			c := mustConnect(t, kind, url, nil)
			c.live(t)
			cursor := c.resumeCursor()
			if p, err := events.ParsePosition(cursor); err != nil || !p.IsEmpty() {
				t.Fatalf("cursor of a channel with no log = %q (%v), want an empty position", cursor, err)
			}
			c.close()
			ids := r.publishN(t, a, 3)
			c = mustConnect(t, kind, q(url, "last_event_id", cursor), nil)
			if got := envIDs(c.live(t)); !slices.Equal(got, ids) {
				t.Errorf("resumed: got %v, want %v", got, ids)
			}
			id := r.mustPublish(t, a, "live", nil)
			if m := c.event(t); m.envID() != id {
				t.Errorf("live: got %s, want %s", m.envID(), id)
			}
		})
		t.Run("multiplexed", func(t *testing.T) {
			const quiet = "project_2_quiet"
			before := r.publishN(t, b, 1)
			url := q(r.url+"/events", "channel", quiet, "channel", b, "token", alice(t))
			c := mustConnect(t, kind, url, nil)
			c.live(t)
			cursor := c.resumeCursor()
			c.close()
			q1 := r.publishN(t, quiet, 2)
			b1 := r.publishN(t, b, 1)
			c = mustConnect(t, kind, q(url, "last_event_id", cursor), nil)
			got := envIDs(c.live(t))
			want := append(q1, b1...)
			if !slices.Equal(got, want) {
				t.Errorf("resumed with %q (b was at %s): got %v, want %v", cursor, before[0], got, want)
			}
		})
	})
}

// TestResumeFromEmptyChannelTrimmed: when the events published while the
// client was away are no longer all kept, resuming from the empty position
// is a reset, then live events.
// Over both stores.
func TestResumeFromEmptyChannelTrimmed(t *testing.T) {
	const ch = "project_1_tickets"
	eachStoreAndKind(t, func(t *testing.T, st, kind string) {
		r := startRelay(t, withStore(st), withMaxEvents(2))
		url := q(r.url+"/events/projects/1/tickets", "token", alice(t))
		c := mustConnect(t, kind, url, nil)
		c.live(t)
		cursor := c.resumeCursor()
		c.close()
		ids := r.publishN(t, ch, 5) // keeps 4 and 5
		c = mustConnect(t, kind, q(url, "last_event_id", cursor), nil)
		h := c.live(t)
		if len(h) != 1 || h[0].Kind != "reset" || h[0].channel() != ch || h[0].envID() != ids[4] {
			t.Fatalf("resumed with %q: got %v, want one reset of %s at %s", cursor, h, ch, ids[4])
		}
		id := r.mustPublish(t, ch, "live", nil)
		if m := c.event(t); m.envID() != id {
			t.Errorf("live after the reset: got %s, want %s", m.envID(), id)
		}
	})
}

// envIDs are the envelope ids of the events among ms.
func envIDs(ms []msg) []string {
	var out []string
	for _, m := range ms {
		if m.Kind == "message" {
			out = append(out, m.envID())
		}
	}
	return out
}

// redisKeys lists the keys under prefix in the test Redis.
func redisKeys(t *testing.T, prefix string) []string {
	t.Helper()
	keys, err := redistest.NewClient(t).Keys(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatalf("KEYS %s*: %v", prefix, err)
	}
	return keys
}
