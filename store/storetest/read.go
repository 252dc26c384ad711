package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
)

func testReadAfter(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	evs := mustAppend(t, log, drafts("r", 1, 10)...)
	mustAppend(t, log, drafts("other", 1, 3)...)
	epoch := evs[0].Pos.Epoch
	at := func(seq uint64) events.Position { return events.Position{Epoch: epoch, Seq: seq} }

	got := mustRead(t, log, "r", at(3), 100)
	wantSeqs(t, got, "r", epoch, 4, 10)
	for i, e := range got {
		sameEvent(t, fmt.Sprintf("Read after 3, event %d", i), e, evs[3+i])
	}
	wantSeqs(t, mustRead(t, log, "r", at(0), 100), "r", epoch, 1, 10)
	wantSeqs(t, mustRead(t, log, "r", at(9), 100), "r", epoch, 10, 10)
	if got := mustRead(t, log, "r", at(10), 100); len(got) != 0 {
		t.Errorf("Read after the head returned %d events, want none", len(got))
	}
	wantSeqs(t, mustRead(t, log, "r", events.Beginning, 100), "r", epoch, 1, 10)
}

func testReadLimit(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	evs := mustAppend(t, log, drafts("l", 1, 10)...)
	epoch := evs[0].Pos.Epoch
	wantSeqs(t, mustRead(t, log, "l", events.Position{Epoch: epoch, Seq: 3}, 2), "l", epoch, 4, 5)
	wantSeqs(t, mustRead(t, log, "l", events.Beginning, 3), "l", epoch, 1, 3)
	wantSeqs(t, mustRead(t, log, "l", events.Position{Epoch: epoch, Seq: 8}, 5), "l", epoch, 9, 10)
	wantSeqs(t, mustRead(t, log, "l", events.Position{Epoch: epoch, Seq: 2}, math.MaxInt), "l", epoch, 3, 10)
	for _, limit := range []int{0, -1} {
		if got := mustRead(t, log, "l", events.Position{Epoch: epoch, Seq: 3}, limit); len(got) != 0 {
			t.Errorf("Read with limit %d returned %d events, want none", limit, len(got))
		}
		// The cursor is still checked.
		if _, err := log.Read(context.Background(), "l", events.Position{Epoch: "zzz", Seq: 3}, limit); !errors.Is(err, events.ErrCursorGone) {
			t.Errorf("Read with limit %d and a wrong epoch = %v, want ErrCursorGone", limit, err)
		}
	}
}

func testReadUnknown(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	evs, err := log.Read(context.Background(), "nobody", events.Beginning, 100)
	if err != nil || len(evs) != 0 {
		t.Errorf("Read(unknown, Beginning) = %d events, %v; want none, nil", len(evs), err)
	}
	wantGone(t, log, "nobody", events.Position{Epoch: "abc", Seq: 0})
	wantGone(t, log, "nobody", events.Position{Epoch: "abc", Seq: 5})
	wantGone(t, log, "nobody", events.Position{Seq: 5})
}

func testReadWrongEpoch(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	evs := mustAppend(t, log, drafts("w", 1, 3)...)
	other := events.NewEpoch()
	for other == evs[0].Pos.Epoch {
		other = events.NewEpoch()
	}
	for _, seq := range []uint64{0, 1, 3} {
		wantGone(t, log, "w", events.Position{Epoch: other, Seq: seq})
	}
	wantGone(t, log, "w", events.Position{Seq: 1}) // no epoch, not Beginning
}

func testReadAhead(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	evs := mustAppend(t, log, drafts("h", 1, 3)...)
	epoch := evs[0].Pos.Epoch
	wantGone(t, log, "h", events.Position{Epoch: epoch, Seq: 4})
	wantGone(t, log, "h", events.Position{Epoch: epoch, Seq: 1 << 63})
	wantGone(t, log, "h", events.Position{Epoch: epoch, Seq: ^uint64(0)})
	if got := mustRead(t, log, "h", events.Position{Epoch: epoch, Seq: 3}, 10); len(got) != 0 {
		t.Errorf("Read at the head returned %d events, want none", len(got))
	}
}

func testTrimCount(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{Retention: events.Retention{MaxEvents: 5}})
	evs := mustAppend(t, log, drafts("k", 1, 7)...)
	evs = append(evs, mustAppend(t, log, drafts("k", 8, 12)...)...)
	epoch := evs[0].Pos.Epoch
	at := func(seq uint64) events.Position { return events.Position{Epoch: epoch, Seq: seq} }

	wantSeqs(t, mustRead(t, log, "k", events.Beginning, 100), "k", epoch, 8, 12)
	wantSeqs(t, mustRead(t, log, "k", at(7), 100), "k", epoch, 8, 12) // oldest kept - 1
	wantSeqs(t, mustRead(t, log, "k", at(10), 100), "k", epoch, 11, 12)
	wantGone(t, log, "k", at(6))
	wantGone(t, log, "k", at(0))
	if h := mustHead(t, log, "k"); h != at(12) {
		t.Errorf("Head = %v, want %v", h, at(12))
	}
}

// testTrimAge: events older than MaxAge are trimmed while the channel lives.
func testTrimAge(t *testing.T, newLog NewLog) {
	// Redis trims by its own clock, which a test cannot fake: real time, with
	// room for a loaded machine (a 0.8 s stall still tells trimming apart).
	const maxAge = 2 * time.Second
	log := newLog(t, Options{Retention: events.Retention{MaxAge: maxAge}})
	old := mustAppend(t, log, drafts("g", 1, 20)...)
	epoch := old[0].Pos.Epoch
	time.Sleep(maxAge * 6 / 10)
	fresh := mustAppend(t, log, draft("g", 21))[0]
	time.Sleep(maxAge * 5 / 10) // the first 20 are now older than maxAge, the last is not
	if age := time.Since(fresh.Time); age > maxAge*9/10 {
		t.Fatalf("the machine stalled (fresh event is %v old, near maxAge %v): the test cannot tell trimming apart", age, maxAge)
	}
	at := func(seq uint64) events.Position { return events.Position{Epoch: epoch, Seq: seq} }
	wantSeqs(t, mustRead(t, log, "g", events.Beginning, 100), "g", epoch, 21, 21)
	wantSeqs(t, mustRead(t, log, "g", at(20), 100), "g", epoch, 21, 21)
	wantGone(t, log, "g", at(19))
	wantGone(t, log, "g", at(0))
	if h := mustHead(t, log, "g"); h != at(21) {
		t.Errorf("Head = %v, want %v", h, at(21))
	}
}

// testIdleForgotten: a channel with no event for MaxAge is forgotten, and its
// next event starts a new epoch; a Head taken while it was forgotten is an
// empty position that this epoch answers from its first event.
func testIdleForgotten(t *testing.T, newLog NewLog) {
	const maxAge = 300 * time.Millisecond
	log := newLog(t, Options{Retention: events.Retention{MaxAge: maxAge}})
	first := mustAppend(t, log, draft("idle", 1))[0]
	time.Sleep(maxAge + 400*time.Millisecond)
	wantGone(t, log, "idle", first.Pos)
	if got := mustRead(t, log, "idle", events.Beginning, 10); len(got) != 0 {
		t.Errorf("Read(Beginning) of a forgotten channel = %d events, want none", len(got))
	}
	head := mustHead(t, log, "idle")
	if !head.IsEmpty() {
		t.Errorf("Head of a forgotten channel = %v, want an empty position", head)
	}
	next := mustAppend(t, log, draft("idle", 2))[0]
	if next.Pos.Seq != 1 || next.Pos.Epoch == first.Pos.Epoch {
		t.Errorf("first event after forgetting = %v, want seq 1 of a new epoch (old %s)", next.Pos, first.Pos.Epoch)
	}
	wantSeqs(t, mustRead(t, log, "idle", head, 10), "idle", next.Pos.Epoch, 1, 1)
}
