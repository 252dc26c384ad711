package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
)

func testAppendSeqs(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	start := time.Now()
	evs := append(mustAppend(t, log, drafts("a", 1, 3)...), mustAppend(t, log, drafts("a", 4, 5)...)...)
	epoch := evs[0].Pos.Epoch
	if _, err := events.ParsePosition(evs[0].Pos.String()); err != nil || epoch == "" {
		t.Fatalf("first event's position %v does not parse back: %v", evs[0].Pos, err)
	}
	wantSeqs(t, evs, "a", epoch, 1, 5)
	for i, e := range evs {
		if d := draft("a", i+1); e.Type != d.Type || !bytes.Equal(e.Fields, d.Fields) {
			t.Errorf("event %d: got type %q fields %s, want %q %s", i, e.Type, e.Fields, d.Type, d.Fields)
		}
		if e.Time.Before(start.Add(-time.Second)) || e.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("event %d: Time %v is not the time of appending (%v)", i, e.Time, start)
		}
		if i > 0 && e.Time.Before(evs[i-1].Time) {
			t.Errorf("event %d: Time %v is before the previous event's %v", i, e.Time, evs[i-1].Time)
		}
	}
	if got := mustHead(t, log, "a"); got != evs[4].Pos {
		t.Errorf("Head = %v, want %v", got, evs[4].Pos)
	}
}

// testAppendContent: types and fields are stored as given, whatever the bytes
// (framing must not depend on them).
func testAppendContent(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	big := bytes.Repeat([]byte("x"), events.DefaultMaxPayload)
	ds := []events.Draft{
		{Channel: "c", Type: "plain", Fields: []byte(`"type":"plain","data":{"a":[1,2,3]}`)},
		{Channel: "c", Type: "new\nline", Fields: []byte("raw\nbytes\n\n with \x00 nul, \"quotes\" and ünïcode\n")},
		{Channel: "c", Type: "empty", Fields: nil},
		{Channel: "c", Type: "big", Fields: big},
	}
	evs := mustAppend(t, log, ds...)
	for i, e := range evs {
		if e.Channel != ds[i].Channel || e.Type != ds[i].Type || !bytes.Equal(e.Fields, ds[i].Fields) {
			t.Errorf("Append event %d: got %q %q (%d bytes), want %q %q (%d bytes)", i,
				e.Channel, e.Type, len(e.Fields), ds[i].Channel, ds[i].Type, len(ds[i].Fields))
		}
	}
	for i, e := range mustRead(t, log, "c", events.Beginning, 10) {
		sameEvent(t, fmt.Sprintf("Read event %d", i), e, evs[i])
	}
}

func testAppendBatch(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	ds := []events.Draft{draft("a", 1), draft("b", 1), draft("a", 2), draft("c", 1), draft("b", 2), draft("a", 3)}
	evs := mustAppend(t, log, ds...)
	wantPos := map[string][]uint64{}
	for i, e := range evs {
		if e.Channel != ds[i].Channel || !bytes.Equal(e.Fields, ds[i].Fields) {
			t.Errorf("event %d is %s %s, want %s %s (same order as the drafts)", i, e.Channel, e.Fields, ds[i].Channel, ds[i].Fields)
		}
		wantPos[e.Channel] = append(wantPos[e.Channel], e.Pos.Seq)
	}
	for ch, n := range map[string]uint64{"a": 3, "b": 2, "c": 1} {
		var got []*events.Event
		for _, e := range evs {
			if e.Channel == ch {
				got = append(got, e)
			}
		}
		wantSeqs(t, got, ch, got[0].Pos.Epoch, 1, n)
		read := mustRead(t, log, ch, events.Beginning, 100)
		wantSeqs(t, read, ch, got[0].Pos.Epoch, 1, n)
	}
}

func testAppendEmpty(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	evs, err := log.Append(context.Background(), nil)
	if err != nil || len(evs) != 0 {
		t.Errorf("Append(nil) = %d events, %v; want none, nil", len(evs), err)
	}
}

// testAppendConcurrent: 8 goroutines appending to one channel get unique,
// gap-free sequence numbers, each goroutine's events in its own order.
func testAppendConcurrent(t *testing.T, newLog NewLog) {
	const writers, each = 8, 40
	log := newLog(t, Options{})
	var wg sync.WaitGroup
	got := make([][]*events.Event, writers)
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				evs, err := log.Append(context.Background(), []events.Draft{draft("hot", w*1000+i)})
				if err != nil {
					errs <- err
					return
				}
				got[w] = append(got[w], evs...)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Append: %v", err)
	}
	seen := map[uint64]bool{}
	epoch := got[0][0].Pos.Epoch
	for w, evs := range got {
		for i, e := range evs {
			if e.Pos.Epoch != epoch || seen[e.Pos.Seq] {
				t.Fatalf("writer %d event %d: position %v duplicated or in another epoch (%s)", w, i, e.Pos, epoch)
			}
			seen[e.Pos.Seq] = true
			if i > 0 && e.Pos.Seq <= evs[i-1].Pos.Seq {
				t.Errorf("writer %d: seq %d after %d, want increasing", w, e.Pos.Seq, evs[i-1].Pos.Seq)
			}
		}
	}
	for s := uint64(1); s <= writers*each; s++ {
		if !seen[s] {
			t.Errorf("seq %d missing: want gap-free 1..%d", s, writers*each)
		}
	}
	read := mustRead(t, log, "hot", events.Beginning, writers*each+10)
	wantSeqs(t, read, "hot", epoch, 1, writers*each)
}

func testCancelled(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := log.Append(ctx, []events.Draft{draft("cc", 1)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Append(cancelled ctx) = %v, want context.Canceled", err)
	}
	if _, err := log.Read(ctx, "cc", events.Beginning, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("Read(cancelled ctx) = %v, want context.Canceled", err)
	}
	if _, err := log.Head(ctx, "cc"); !errors.Is(err, context.Canceled) {
		t.Errorf("Head(cancelled ctx) = %v, want context.Canceled", err)
	}
	if got := mustRead(t, log, "cc", events.Beginning, 10); len(got) != 0 {
		t.Errorf("Append with a cancelled ctx stored %d events, want none", len(got))
	}
}

func testCloseTwice(t *testing.T, newLog NewLog) {
	log := newLog(t, Options{})
	if p, ok := log.(events.Pinger); ok {
		if err := p.Ping(context.Background()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}
	mustAppend(t, log, draft("z", 1))
	stop := watch(t, log, newRecorder(), "z")
	c, ok := log.(io.Closer)
	if !ok {
		return
	}
	for i := range 2 {
		if err := c.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	stop() // a watcher stopped after Close returns too
}
