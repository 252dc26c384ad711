package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store/redistest"
)

func TestParseMessage(t *testing.T) {
	type want struct{ id, typ, fields string }
	for _, tc := range []struct {
		name, msg string
		want      []want // nil: an error
	}{
		{"r2, one event", "r2\nc\nep\n7\n1700000000000\n1 5\nt\"a\":1", []want{{"ep-7", "t", `"a":1`}}},
		{"r2, three events", "r2\nc\nep\n7\n1700000000000\n1 5\nt\"a\":1" + "2 0\nt2" + "0 7\n\"b\":\"\n\"",
			[]want{{"ep-7", "t", `"a":1`}, {"ep-8", "t2", ""}, {"ep-9", "", "\"b\":\"\n\""}}},
		{"r2, fields holding newlines and spaces", "r2\nc\nep\n1\n5\n1 5\nx\n 1 2", []want{{"ep-1", "x", "\n 1 2"}}},
		{"r1, the release before's", "r1\nc\nep\n42\n1700000000000\n1\nt\"a\":1", []want{{"ep-42", "t", `"a":1`}}},
		{"r1 with no fields", "r1\nc\nep\n42\n1700000000000\n1\nt", []want{{"ep-42", "t", ""}}},
		{"e1, ephemeral", "e1\nc\n1700000000000\n6\ntyping\"x\":1", []want{{"", "typing", `"x":1`}}},
		{"r2 with no event", "r2\nc\nep\n7\n1700000000000\n", nil},
		{"r2, fields past the end", "r2\nc\nep\n7\n1700000000000\n1 6\nt\"a\":1", nil},
		{"r2, second event cut short", "r2\nc\nep\n7\n1700000000000\n1 5\nt\"a\":1" + "2 1\nt2", nil},
		{"r2, negative length", "r2\nc\nep\n7\n1700000000000\n-1 5\nt\"a\":1", nil},
		{"r2, lengths not numbers", "r2\nc\nep\n7\n1700000000000\nx y\nt\"a\":1", nil},
		{"r2, seq 0", "r2\nc\nep\n0\n1700000000000\n1 0\nt", nil},
		{"r2, no epoch", "r2\nc\n\n7\n1700000000000\n1 0\nt", nil},
		{"r1, type past the end", "r1\nc\nep\n42\n1700000000000\n9\nt", nil},
		{"unknown format", "r3\nc\nep\n7\n1700000000000\n1 0\nt", nil},
		{"too few lines", "r2\nc\nep", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := parseMessage(nil, tc.msg)
			if tc.want == nil {
				if err == nil || len(evs) != 0 {
					t.Fatalf("parseMessage(%q) = %d events, %v; want none and an error", tc.msg, len(evs), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseMessage(%q): %v", tc.msg, err)
			}
			if len(evs) != len(tc.want) {
				t.Fatalf("got %d events, want %d", len(evs), len(tc.want))
			}
			for i, ev := range evs {
				id := ""
				if !ev.Ephemeral {
					id = ev.ID()
				}
				if got := (want{id, ev.Type, string(ev.Fields)}); got != tc.want[i] || ev.Channel != "c" {
					t.Errorf("event %d: got %+v on %q, want %+v on \"c\"", i, got, ev.Channel, tc.want[i])
				}
				if tc.msg[:2] != "e1" && ev.Time.UnixMilli() != 1700000000000 && ev.Time.UnixMilli() != 5 {
					t.Errorf("event %d: time %v", i, ev.Time)
				}
			}
		})
	}
}

// TestParseMessageFieldsShared: the events of one message slice their fields
// from one copy, each capped at its own end, so an append to one event's
// fields cannot write over the next's.
func TestParseMessageFieldsShared(t *testing.T) {
	evs, err := parseMessage(nil, "r2\nc\nep\n1\n5\n1 2\nab1"+"1 2\ncd2")
	if err != nil {
		t.Fatal(err)
	}
	_ = append(evs[0].Fields, 'X')
	if got := string(evs[1].Fields); got != "d2" {
		t.Fatalf("second event's fields %q after an append to the first's, want \"d2\"", got)
	}
}

// TestWatchReadsReleaseBefore: a process of the release before publishes one
// r1 message per event; a process of this one, sharing the Redis during a
// rolling upgrade, delivers them with no resync, between its own.
func TestWatchReadsReleaseBefore(t *testing.T) {
	r, err := OpenRedis(context.Background(), redistest.URL(t), RedisOptions{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	got := make(chan *events.Event, 16)
	stop, err := r.Watch(context.Background(), func(ev *events.Event) { got <- ev }, func() { t.Error("resync: a message was not understood") })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	release, err := r.Listen(context.Background(), "up", func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	ours, err := r.Append(context.Background(), []events.Draft{{Channel: "up", Type: "new", Fields: []byte(`"n":1`)}, {Channel: "up", Type: "new", Fields: []byte(`"n":2`)}})
	if err != nil {
		t.Fatal(err)
	}
	// The release before's script, as it published its next event.
	old := fmt.Sprintf("r1\nup\n%s\n3\n%d\n3\nold\"n\":3", ours[0].Pos.Epoch, ours[1].Time.UnixMilli())
	if err := r.client.Publish(context.Background(), r.pubsubChannel("up"), old).Err(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		select {
		case ev := <-got:
			ids = append(ids, ev.ID()+" "+ev.Type+" "+string(ev.Fields))
		case <-time.After(10 * time.Second):
			t.Fatalf("after 10s, delivered only %q", ids)
		}
	}
	e := ours[0].Pos.Epoch
	if want := []string{e + "-1 new \"n\":1", e + "-2 new \"n\":2", e + "-3 old \"n\":3"}; strings.Join(ids, "|") != strings.Join(want, "|") {
		t.Fatalf("delivered %q, want %q", ids, want)
	}
}
