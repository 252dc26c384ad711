package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
)

// keyed is one draft of an idempotency case: a channel, a key ("" for none).
type keyed struct{ channel, key string }

// outcome is what Append should answer for one draft: its channel's sequence
// number, and whether it is a repeat of an earlier draft (at that seq).
type outcome struct {
	seq    uint64
	repeat bool
}

// testIdempotencyRepeats: a draft whose key its channel saw is answered with
// the first append's position and time, stored nothing, and left the head
// alone; keys are per channel; drafts without keys never repeat.
func testIdempotencyRepeats(t *testing.T, newLog NewLog) {
	for _, tc := range []struct {
		name  string
		calls [][]keyed // one Append per element
		want  []outcome // one per draft, in order over all calls
	}{
		{"NoKeys", [][]keyed{{{"a", ""}, {"a", ""}}}, []outcome{{1, false}, {2, false}}},
		{"RepeatInLaterCall", [][]keyed{{{"a", "k"}}, {{"a", "k"}}}, []outcome{{1, false}, {1, true}}},
		{"RepeatInOneBatch", [][]keyed{{{"a", "k"}, {"a", ""}, {"a", "k"}}}, []outcome{{1, false}, {2, false}, {1, true}}},
		{"RepeatAfterOtherEvents", [][]keyed{{{"a", "k"}}, {{"a", ""}, {"a", "k2"}}, {{"a", "k"}, {"a", "k2"}}},
			[]outcome{{1, false}, {2, false}, {3, false}, {1, true}, {3, true}}},
		{"DifferentKeys", [][]keyed{{{"a", "k1"}, {"a", "k2"}}}, []outcome{{1, false}, {2, false}}},
		{"SameKeyTwoChannels", [][]keyed{{{"a", "k"}, {"b", "k"}}, {{"b", "k"}}}, []outcome{{1, false}, {1, false}, {1, true}}},
		{"KeyWithBraces", [][]keyed{{{"a", "{b}:i:k"}, {"b", "k"}}, {{"a", "{b}:i:k"}}}, []outcome{{1, false}, {1, false}, {1, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := newLog(t, Options{})
			var got []*events.Event
			var sent []events.Draft
			for n, call := range tc.calls {
				var ds []events.Draft
				for _, k := range call {
					d := draft(k.channel, len(sent)+len(ds))
					d.IdempotencyKey = k.key
					ds = append(ds, d)
				}
				got = append(got, mustAppend(t, log, ds...)...)
				sent = append(sent, ds...)
				if n < len(tc.calls)-1 {
					time.Sleep(2 * time.Millisecond) // a repeat's time must be the first's, not its own
				}
			}
			stored := map[string][]*events.Event{}
			for i, e := range got {
				w := tc.want[i]
				if e.Channel != sent[i].Channel || e.Pos.Seq != w.seq || e.Repeat != w.repeat {
					t.Errorf("draft %d (%s, key %q): got %s seq %d repeat %v, want %s seq %d repeat %v",
						i, sent[i].Channel, sent[i].IdempotencyKey, e.Channel, e.Pos.Seq, e.Repeat, sent[i].Channel, w.seq, w.repeat)
					continue
				}
				if string(e.Fields) != string(sent[i].Fields) {
					t.Errorf("draft %d: got fields %s, want the draft's own %s", i, e.Fields, sent[i].Fields)
				}
				if !e.Repeat {
					stored[e.Channel] = append(stored[e.Channel], e)
					continue
				}
				first := stored[e.Channel][w.seq-1]
				if e.Pos != first.Pos || !e.Time.Equal(first.Time) {
					t.Errorf("draft %d: repeat at %v %v, want the first append's %v %v", i, e.Pos, e.Time, first.Pos, first.Time)
				}
			}
			for ch, want := range stored {
				read := mustRead(t, log, ch, events.Beginning, 100)
				if len(read) != len(want) {
					t.Errorf("Read(%s) = %d events, want the %d stored (repeats store nothing)", ch, len(read), len(want))
					continue
				}
				for i := range read {
					sameEvent(t, fmt.Sprintf("Read(%s) event %d", ch, i), read[i], want[i])
				}
				if h := mustHead(t, log, ch); h != want[len(want)-1].Pos {
					t.Errorf("Head(%s) = %v, want %v (the last stored)", ch, h, want[len(want)-1].Pos)
				}
			}
		})
	}
}

// testIdempotencyWindow: a key is remembered for the window from its first
// append, no less, then forgotten: the draft is stored again.
func testIdempotencyWindow(t *testing.T, newLog NewLog) {
	const window = 300 * time.Millisecond
	log := newLog(t, Options{IdempotencyWindow: window})
	d := draft("w", 1)
	d.IdempotencyKey = "retried"
	start := time.Now()
	first := mustAppend(t, log, d)[0]
	if first.Repeat {
		t.Fatalf("first append of a key is a repeat")
	}
	for deadline := start.Add(window + waitFor); ; time.Sleep(10 * time.Millisecond) {
		ev := mustAppend(t, log, d)[0]
		if !ev.Repeat {
			if since := time.Since(start); since < window-5*time.Millisecond {
				t.Errorf("key forgotten after %v, want it remembered for the %v window", since, window)
			}
			if ev.Pos.Seq != first.Pos.Seq+1 {
				t.Errorf("after the window: got seq %d, want %d (stored again)", ev.Pos.Seq, first.Pos.Seq+1)
			}
			break
		}
		if ev.Pos != first.Pos {
			t.Fatalf("repeat at %v, want %v", ev.Pos, first.Pos)
		}
		if time.Now().After(deadline) {
			t.Fatalf("key still remembered %v after its first append, window %v", time.Since(start), window)
		}
	}
	if got := mustRead(t, log, "w", events.Beginning, 10); len(got) != 2 {
		t.Errorf("Read = %d events, want 2 (the first, and the one after the window)", len(got))
	}
	again := mustAppend(t, log, d)[0]
	if !again.Repeat || again.Pos.Seq != first.Pos.Seq+1 {
		t.Errorf("append right after re-storing: got seq %d repeat %v, want a repeat of seq %d", again.Pos.Seq, again.Repeat, first.Pos.Seq+1)
	}
}

// testIdempotencyBadKey: a batch with a malformed key is refused whole.
func testIdempotencyBadKey(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	for _, tc := range []struct{ name, key string }{
		{"Space", "a key"},
		{"Newline", "a\nb"},
		{"TooLong", string(make([]byte, events.MaxIdempotencyKey+1))},
	} {
		good, bad := draft("bad", 1), draft("bad", 2)
		good.IdempotencyKey, bad.IdempotencyKey = "fine", tc.key
		evs, err := log.Append(context.Background(), []events.Draft{good, bad})
		if !errors.Is(err, events.ErrInvalid) || len(evs) != 0 {
			t.Errorf("%s: Append = %d events, %v; want none and ErrInvalid", tc.name, len(evs), err)
		}
	}
	if got := mustRead(t, log, "bad", events.Beginning, 10); len(got) != 0 {
		t.Errorf("Read after refused batches = %d events, want none", len(got))
	}
}

// testIdempotencyNotWatched: a repeat is not delivered to watchers again.
func testIdempotencyNotWatched(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	rec := newRecorder()
	watch(t, log, rec, "nw")
	d := draft("nw", 1)
	d.IdempotencyKey = "once"
	mustAppend(t, log, d)
	mustAppend(t, log, d, d)
	last := mustAppend(t, log, draft("nw", 2))[0]
	evs := rec.waitUntil(t, "last event not delivered", func(evs []*events.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].Pos == last.Pos
	})
	wantSeqs(t, evs, "nw", last.Pos.Epoch, 1, 2)
}
