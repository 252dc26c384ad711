package events_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
)

// headLog is a memory log whose Head fails with err while it is set, and
// counts its calls.
type headLog struct {
	*store.Memory
	err   error
	heads atomic.Int32
}

func (l *headLog) Head(ctx context.Context, ch string) (events.Position, error) {
	l.heads.Add(1)
	if l.err != nil {
		return events.Position{}, l.err
	}
	return l.Memory.Head(ctx, ch)
}

// TestSubscribeTakesHeads: Subscribe takes the head of each channel without
// a cursor before it returns, so an event published the moment it returns
// is delivered (there is no window in which it counts as already sent); a
// channel with a cursor is not asked for its head.
func TestSubscribeTakesHeads(t *testing.T) {
	ctx := context.Background()
	log := &headLog{Memory: store.NewMemory(events.Retention{})}
	hub := events.NewHub(log, events.HubOptions{})
	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close(); log.Close() })
	old := publish(t, hub, "live", 2)
	d := publish(t, hub, "resumed", 2)

	sub := subscribe(t, hub, []string{"live", "resumed"}, events.Cursor{"resumed": d[0].Pos})
	if n := log.heads.Load(); n != 1 {
		t.Errorf("Subscribe read %d heads, want 1 (the channel without a cursor)", n)
	}
	if got := sub.Position("live"); got != old[1].Pos {
		t.Errorf("Position right after Subscribe: got %v, want the head %v", got, old[1].Pos)
	}
	next := publish(t, hub, "live", 1)
	s := &sink{}
	if err := sub.Replay(ctx, s); err != nil {
		t.Fatal(err)
	}
	if n := log.heads.Load(); n != 1 {
		t.Errorf("Replay read %d more heads, want none", n-1)
	}
	drain(t, sub, s)
	if want := append(ids(d[1]), ids(next...)...); !slices.Equal(s.got, want) {
		t.Errorf("delivered: got %v, want %v", s.got, want)
	}
}

// TestSubscribeHeadError: when a head cannot be read, Subscribe returns the
// error and leaves no subscription registered.
func TestSubscribeHeadError(t *testing.T) {
	boom := errors.New("store down")
	log := &headLog{Memory: store.NewMemory(events.Retention{}), err: boom}
	hub := events.NewHub(log, events.HubOptions{})
	if err := hub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close(); log.Close() })
	sub, err := hub.Subscribe(context.Background(), []string{"c"}, nil)
	if !errors.Is(err, boom) || sub != nil {
		t.Fatalf("Subscribe: got %v, %v, want nil and the log's error", sub, err)
	}
	if n := hub.Subscribers(); n != 0 {
		t.Errorf("Subscribers after a failed Subscribe: got %d, want 0", n)
	}
	publish(t, hub, "c", 1) // fan-out to nothing: no panic, no send to a closed subscription
}

// failingNotes is a notifications store whose Record always fails.
type failingNotes struct {
	events.Notifications
	records atomic.Int32
}

func (n *failingNotes) Record(context.Context, string, []*events.Event) error {
	n.records.Add(1)
	return errors.New("notifications store down")
}

// TestPublishRecordIsBestEffort: once events are in the log subscribers have
// them, so a failed notification record is logged, not a failed publish.
func TestPublishRecordIsBestEffort(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory(events.Retention{})
	defer mem.Close()
	var logged bytes.Buffer
	notes := &failingNotes{}
	hub := events.NewHub(mem, events.HubOptions{Notifications: notes, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	d, _ := events.NewDraft("user_1_notifications", "notification_message", map[string]any{"id": "n1"})
	evs, err := hub.Publish(ctx, d)
	if err != nil || len(evs) != 1 {
		t.Fatalf("got %v, %v; want the stored event and no error", evs, err)
	}
	if got, _ := mem.Read(ctx, "user_1_notifications", events.Position{}, 10); len(got) != 1 {
		t.Errorf("log holds %d events, want 1", len(got))
	}
	if notes.records.Load() != 1 || !strings.Contains(logged.String(), "not recorded as notifications") {
		t.Errorf("records %d, log %q; want one attempt, logged", notes.records.Load(), logged.String())
	}
}

// batchLog is a memory log whose live feed comes in batches: the test hands
// them to the hub through the deliver WatchBatches was given.
type batchLog struct {
	*store.Memory
	t       *testing.T
	deliver func([]*events.Event)
}

func (l *batchLog) Watch(context.Context, func(*events.Event), func()) (func(), error) {
	l.t.Error("the hub watched a BatchWatcher one event at a time")
	return func() {}, nil
}

func (l *batchLog) WatchBatches(_ context.Context, deliver func([]*events.Event), _ func()) (func(), error) {
	l.deliver = deliver
	return func() {}, nil
}

// TestHubWatchesBatches: over a log that brings events in batches, the hub
// queues each batch to a subscriber whole and in order, skipping the
// channels it has no subscriber of.
func TestHubWatchesBatches(t *testing.T) {
	ctx := context.Background()
	log := &batchLog{Memory: store.NewMemory(events.Retention{}), t: t}
	hub := events.NewHub(log, events.HubOptions{})
	if err := hub.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close(); log.Close() })
	sub := subscribe(t, hub, []string{"c"}, nil)
	var batch []*events.Event
	for i, ch := range []string{"c", "c", "other", "c"} {
		batch = append(batch, events.NewEvent(events.Draft{Channel: ch, Type: "t"}, events.Position{Epoch: "e", Seq: uint64(i + 1)}, time.Now()))
	}
	log.deliver(batch)
	select {
	case <-sub.Ready():
	default:
		t.Fatal("no wake-up after a batch")
	}
	got := sub.Take(nil)
	if want := []*events.Event{batch[0], batch[1], batch[3]}; !slices.Equal(got, want) {
		t.Errorf("queued %v, want %v", ids(got...), ids(want...))
	}
}
