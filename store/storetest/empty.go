package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
)

// testHeadNew: Head of a channel with no log is an empty position, and a
// cursor taken there answers with the channel's first events once they
// arrive.
func testHeadNew(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	head := mustHead(t, log, "n")
	if !head.IsEmpty() || head.Seq != 0 || head.IsBeginning() {
		t.Fatalf("Head(new channel) = %+v, want an empty position", head)
	}
	if again := mustHead(t, log, "n"); !again.IsEmpty() {
		t.Errorf("second Head = %v, want an empty position", again)
	}
	evs := mustAppend(t, log, drafts("n", 1, 2)...)
	epoch := evs[0].Pos.Epoch
	if evs[0].Pos.Seq != 1 || epoch == head.Epoch {
		t.Errorf("first event after Head is at %v, want seq 1 of a real epoch", evs[0].Pos)
	}
	got := mustRead(t, log, "n", head, 10)
	wantSeqs(t, got, "n", epoch, 1, 2)
	for i, e := range got {
		sameEvent(t, fmt.Sprintf("Read after the empty position, event %d", i), e, evs[i])
	}
	wantSeqs(t, mustRead(t, log, "n", head, 1), "n", epoch, 1, 1) // the limit holds
	if h := mustHead(t, log, "n"); h != evs[1].Pos {
		t.Errorf("Head after two events = %v, want %v", h, evs[1].Pos)
	}
}

// testEmptyNoLog: while a channel has no log, a read after its empty
// position has no events, and is no error: the client stays where it is.
func testEmptyNoLog(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	head := mustHead(t, log, "quiet")
	for i := range 3 {
		if got := mustRead(t, log, "quiet", head, 10); len(got) != 0 {
			t.Errorf("Read %d after the empty position of a channel with no log = %d events, want none", i, len(got))
		}
	}
	if got := mustRead(t, log, "quiet", events.Beginning, 10); len(got) != 0 {
		t.Errorf("Read(Beginning) = %d events, want none", len(got))
	}
	// An empty position of another channel's Head reads this one alike when
	// both channels' logs are of one generation. On Redis Cluster each
	// channel's generation is the run of its slot's node: across nodes the
	// read cannot vouch for the position, and says so.
	gen, _, _ := head.Empty()
	otherGen, _, _ := mustHead(t, log, "other").Empty()
	got, err := log.Read(context.Background(), "other", head, 10)
	switch {
	case gen == otherGen && (err != nil || len(got) != 0):
		t.Errorf("Read(other channel of the same generation) = %d events, %v; want none", len(got), err)
	case gen != otherGen && !errors.Is(err, events.ErrCursorGone):
		t.Errorf("Read(other channel of another generation) = %d events, %v; want ErrCursorGone", len(got), err)
	}
}

// testEmptyText: an empty position survives its text form, alone and in a
// multiplexed cursor, and the parsed one reads like the original.
func testEmptyText(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	head := mustHead(t, log, "txt")
	one, err := events.ParsePosition(head.String())
	if err != nil || one != head {
		t.Fatalf("ParsePosition(%q) = %v, %v; want %v", head.String(), one, err, head)
	}
	chans := []string{"txt", "real"}
	real := mustAppend(t, log, draft("real", 1))[0].Pos
	text := string(events.AppendCursor(nil, chans, func(ch string) events.Position {
		return map[string]events.Position{"txt": head, "real": real}[ch]
	}))
	cur, err := events.ParseCursor(text, chans)
	if err != nil || cur["txt"] != head || cur["real"] != real {
		t.Fatalf("ParseCursor(%q) = %v, %v; want txt at %v, real at %v", text, cur, err, head, real)
	}
	evs := mustAppend(t, log, draft("txt", 1))
	wantSeqs(t, mustRead(t, log, "txt", cur["txt"], 10), "txt", evs[0].Pos.Epoch, 1, 1)
}

// testEmptyOtherGeneration: an empty position of another generation of the
// log (Redis restarted or failed over; another memory log) is gone, with or
// without a log now: events of an epoch made meanwhile may be lost.
func testEmptyOtherGeneration(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	head := mustHead(t, log, "gen")
	gen, at, _ := head.Empty()
	other, err := events.EmptyPosition(otherGeneration(gen), at)
	if err != nil {
		t.Fatal(err)
	}
	wantGone(t, log, "gen", other)
	evs := mustAppend(t, log, draft("gen", 1))
	wantGone(t, log, "gen", other)
	wantSeqs(t, mustRead(t, log, "gen", head, 10), "gen", evs[0].Pos.Epoch, 1, 1)
}

// otherGeneration returns a generation of the same form that is not gen.
func otherGeneration(gen string) string {
	b := []byte(gen)
	if b[0] == '0' {
		b[0] = '1'
	} else {
		b[0] = '0'
	}
	return string(b)
}

// testEmptyEpochLater: the channel's epoch was created MaxAge or more after
// the empty position was taken, so another epoch could have been created
// and forgotten in between: gone. Created sooner: answered from its first.
// The positions are made earlier than Head's time rather than waited for.
func testEmptyEpochLater(t *testing.T, newLog NewLog) {
	const maxAge = time.Hour
	log := newLog(t, Options{Retention: events.Retention{MaxAge: maxAge}})
	head := mustHead(t, log, "late")
	gen, at, _ := head.Empty()
	before := func(d time.Duration) events.Position {
		p, err := events.EmptyPosition(gen, at.Add(-d))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	evs := mustAppend(t, log, drafts("late", 1, 3)...)
	wantGone(t, log, "late", before(maxAge))
	wantGone(t, log, "late", before(30*24*time.Hour))
	wantSeqs(t, mustRead(t, log, "late", before(maxAge-time.Minute), 10), "late", evs[0].Pos.Epoch, 1, 3)
	wantSeqs(t, mustRead(t, log, "late", head, 10), "late", evs[0].Pos.Epoch, 1, 3)
}

// testEmptyTrimmed: the epoch's first events were trimmed, so an empty
// position (which wants every event of it) is gone.
func testEmptyTrimmed(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{Retention: events.Retention{MaxEvents: 3}})
	head := mustHead(t, log, "trim")
	evs := mustAppend(t, log, drafts("trim", 1, 3)...)
	wantSeqs(t, mustRead(t, log, "trim", head, 10), "trim", evs[0].Pos.Epoch, 1, 3)
	mustAppend(t, log, draft("trim", 4))
	wantGone(t, log, "trim", head)
}

// State lists what a log holds in its store (Redis: its keys; memory: its
// channels), for RunNoState.
type State func(t *testing.T) []string

// RunNoState checks that reading creates nothing: Head, Read, Watch and Listen (and
// Broadcast, when the log is an events.Broadcaster) of never-published
// channels leave state() empty, while an append shows in it. newLog returns
// a fresh, empty log, closed in t.Cleanup, and the function that lists its
// state.
func RunNoState(t *testing.T, newLog func(t *testing.T) (events.Log, State)) {
	ctx := context.Background()
	log, state := newLog(t)
	r := newRecorder()
	watch(t, log, r)
	var heads []events.Position
	for i := range 50 {
		ch := fmt.Sprintf("project_1_x%d", i)
		listen(t, log, r, ch) // listening creates nothing either
		head := mustHead(t, log, ch)
		heads = append(heads, head)
		mustRead(t, log, ch, head, 10)
		mustRead(t, log, ch, events.Beginning, 10)
		if _, err := log.Read(ctx, ch, events.Position{Epoch: events.NewEpoch(), Seq: 3}, 10); !errors.Is(err, events.ErrCursorGone) {
			t.Errorf("Read(%s, a made-up epoch) = %v, want ErrCursorGone", ch, err)
		}
		if b, ok := log.(events.Broadcaster); ok {
			ev := events.NewEphemeral(events.Draft{Channel: ch, Type: "typing"}, time.Now())
			if err := b.Broadcast(ctx, ev); err != nil {
				t.Fatalf("Broadcast(%s): %v", ch, err)
			}
		}
	}
	if got := state(t); len(got) != 0 {
		t.Errorf("after reading 50 never-published channels the log holds %d things, want none: %v", len(got), got[:min(len(got), 5)])
	}
	for i, h := range heads {
		if !h.IsEmpty() {
			t.Errorf("Head(project_1_x%d) = %v, want an empty position", i, h)
		}
	}
	mustAppend(t, log, draft("project_1_x7", 1))
	got := state(t)
	if len(got) == 0 || !slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, "project_1_x7") }) {
		t.Errorf("after an append the log holds %v, want the appended channel's state", got)
	}
	wantSeqs(t, mustRead(t, log, "project_1_x7", heads[7], 10), "project_1_x7", mustHead(t, log, "project_1_x7").Epoch, 1, 1)
}
