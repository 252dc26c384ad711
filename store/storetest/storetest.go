// Package storetest is the conformance suite every events.Log passes: the
// promises written in events.Log's doc comments, checked the same way against
// store.Memory and store.Redis.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
)

// NewLog returns a fresh, empty log configured by opt, isolated from every
// other log the suite makes; it closes the log in t.Cleanup.
type NewLog func(t *testing.T, opt Options) events.Log

// Options configure a log the suite makes. Zero values mean the store's
// defaults.
type Options struct {
	Retention events.Retention
	// IdempotencyWindow, when set, replaces events.IdempotencyWindow, so the
	// suite can see a key expire.
	IdempotencyWindow time.Duration
}

// waitFor bounds how long the suite waits for asynchronous deliveries (Redis
// Pub/Sub). A healthy store delivers in milliseconds.
const waitFor = 5 * time.Second

// Run runs the conformance suite against the logs newLog makes. Subtests run
// in parallel, each on its own log; the ones about age sleep about a second.
func Run(t *testing.T, newLog NewLog) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, NewLog)
	}{
		{"Append/ConsecutiveSeqsFromOne", testAppendSeqs},
		{"Append/PreservesContent", testAppendContent},
		{"Append/BatchAcrossChannels", testAppendBatch},
		{"Append/Empty", testAppendEmpty},
		{"Append/Concurrent", testAppendConcurrent},
		{"Idempotency/Repeats", testIdempotencyRepeats},
		{"Idempotency/WindowEnds", testIdempotencyWindow},
		{"Idempotency/BadKey", testIdempotencyBadKey},
		{"Idempotency/RepeatNotWatched", testIdempotencyNotWatched},
		{"Read/AfterCursor", testReadAfter},
		{"Read/Limit", testReadLimit},
		{"Read/UnknownChannel", testReadUnknown},
		{"Read/WrongEpoch", testReadWrongEpoch},
		{"Read/AheadOfHead", testReadAhead},
		{"Head/NewChannel", testHeadNew},
		{"Empty/NoLogNoEvents", testEmptyNoLog},
		{"Empty/TextRoundTrip", testEmptyText},
		{"Empty/OtherGeneration", testEmptyOtherGeneration},
		{"Empty/EpochCreatedMaxAgeLater", testEmptyEpochLater},
		{"Empty/FirstEventTrimmed", testEmptyTrimmed},
		{"Trim/ByCount", testTrimCount},
		{"Trim/ByAge", testTrimAge},
		{"Trim/IdleChannelForgotten", testIdleForgotten},
		{"Watch/DeliversInOrder", testWatchOrder},
		{"Watch/StopEndsDelivery", testWatchStop},
		{"Context/Cancelled", testCancelled},
		{"Close/Twice", testCloseTwice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, newLog)
		})
	}
}

// draft makes a recognisable draft: type "t", fields naming channel and i.
func draft(channel string, i int) events.Draft {
	return events.Draft{
		Channel: channel,
		Type:    "t",
		Fields:  fmt.Appendf(nil, `"type":"t","data":{"ch":%q,"i":%d}`, channel, i),
	}
}

func drafts(channel string, from, to int) []events.Draft {
	var ds []events.Draft
	for i := from; i <= to; i++ {
		ds = append(ds, draft(channel, i))
	}
	return ds
}

func mustAppend(t *testing.T, log events.Log, ds ...events.Draft) []*events.Event {
	t.Helper()
	evs, err := log.Append(context.Background(), ds)
	if err != nil {
		t.Fatalf("Append(%d drafts): %v", len(ds), err)
	}
	if len(evs) != len(ds) {
		t.Fatalf("Append(%d drafts) returned %d events", len(ds), len(evs))
	}
	return evs
}

func mustRead(t *testing.T, log events.Log, channel string, after events.Position, limit int) []*events.Event {
	t.Helper()
	evs, err := log.Read(context.Background(), channel, after, limit)
	if err != nil {
		t.Fatalf("Read(%s, after %v, %d): %v", channel, after, limit, err)
	}
	return evs
}

func mustHead(t *testing.T, log events.Log, channel string) events.Position {
	t.Helper()
	p, err := log.Head(context.Background(), channel)
	if err != nil {
		t.Fatalf("Head(%s): %v", channel, err)
	}
	return p
}

func wantGone(t *testing.T, log events.Log, channel string, after events.Position) {
	t.Helper()
	evs, err := log.Read(context.Background(), channel, after, 100)
	if !errors.Is(err, events.ErrCursorGone) {
		t.Errorf("Read(%s, after %v) = %d events, %v; want ErrCursorGone", channel, after, len(evs), err)
	}
}

// wantSeqs checks that evs are channel's events with sequence numbers
// from..to in epoch.
func wantSeqs(t *testing.T, evs []*events.Event, channel, epoch string, from, to uint64) {
	t.Helper()
	var got, want []string
	for _, e := range evs {
		got = append(got, e.Channel+"/"+e.Pos.String())
	}
	for s := from; s <= to && to > 0; s++ {
		want = append(want, channel+"/"+events.Position{Epoch: epoch, Seq: s}.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("got events %v, want %v", got, want)
	}
}

// sameEvent checks that got is the event want, as another call returned it.
func sameEvent(t *testing.T, what string, got, want *events.Event) {
	t.Helper()
	if got.Channel != want.Channel || got.Pos != want.Pos || got.Type != want.Type ||
		!bytes.Equal(got.Fields, want.Fields) || !got.Time.Equal(want.Time) {
		t.Errorf("%s: got %s %v %q %q at %v, want %s %v %q %q at %v", what,
			got.Channel, got.Pos, got.Type, got.Fields, got.Time,
			want.Channel, want.Pos, want.Type, want.Fields, want.Time)
	}
}
