package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
)

// NewNotifications returns a fresh, empty notifications store with the given
// retention, isolated from every other store the suite makes; it cleans up in
// t.Cleanup.
type NewNotifications func(t *testing.T, ret events.NotificationRetention) events.Notifications

// RunNotifications runs the conformance suite of events.Notifications against
// the stores newStore makes. Subtests run in parallel, each on its own store;
// ages are those of the events' times, so only one subtest sleeps (< 1 s).
func RunNotifications(t *testing.T, newStore NewNotifications) {
	for _, tc := range []struct {
		name string
		test func(*testing.T, NewNotifications)
	}{
		{"Record/ListNewestFirst", testNotesList},
		{"Record/PublishOrder", testNotesOrder},
		{"Record/Twice", testNotesTwice},
		{"Record/Concurrent", testNotesConcurrent},
		{"Record/Invalid", testNotesInvalid},
		{"List/Paging", testNotesPaging},
		{"List/Limits", testNotesLimits},
		{"List/BeforeUnknown", testNotesBeforeUnknown},
		{"MarkRead/ByIDAndKey", testNotesMarkRead},
		{"MarkRead/All", testNotesMarkAll},
		{"MarkRead/AllOrNothing", testNotesAllOrNothing},
		{"Users/Isolated", testNotesIsolated},
		{"Trim/ByCount", testNotesTrimCount},
		{"Trim/ByAge", testNotesTrimAge},
		{"Context/Cancelled", testNotesCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, newStore)
		})
	}
}

// note makes user's notification event with envelope id "<epoch>-<seq>",
// stored at time at to the millisecond (the Redis log's precision), published
// with data {"id": key, "n": seq} (no "id" when key is nil).
func note(t *testing.T, user, epoch string, seq int, key any, at time.Time) *events.Event {
	t.Helper()
	data := map[string]any{"n": seq, "title": "hello"}
	if key != nil {
		data["id"] = key
	}
	d, err := events.NewDraft(events.NotificationsChannel(user), "notification_message", data)
	if err != nil {
		t.Fatal(err)
	}
	return events.NewEvent(d, events.Position{Epoch: epoch, Seq: uint64(seq)}, at.Truncate(time.Millisecond))
}

// notes makes user's events from..to in epoch "abcdef", keys "k<seq>", one
// millisecond apart, the last a minute ago.
func notes(t *testing.T, user string, from, to int) []*events.Event {
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var evs []*events.Event
	for i := from; i <= to; i++ {
		evs = append(evs, note(t, user, "abcdef", i, fmt.Sprintf("k%d", i), base.Add(time.Duration(i-to)*time.Millisecond)))
	}
	return evs
}

func record(t *testing.T, s events.Notifications, user string, evs ...*events.Event) {
	t.Helper()
	if err := s.Record(context.Background(), user, evs); err != nil {
		t.Fatalf("Record(%s, %d events): %v", user, len(evs), err)
	}
}

func list(t *testing.T, s events.Notifications, user, before string, limit int) events.NotificationPage {
	t.Helper()
	p, err := s.List(context.Background(), user, before, limit)
	if err != nil {
		t.Fatalf("List(%s, before %q, %d): %v", user, before, limit, err)
	}
	return p
}

func markRead(t *testing.T, s events.Notifications, user string, all bool, ids ...string) ([]string, int) {
	t.Helper()
	changed, unread, err := s.MarkRead(context.Background(), user, ids, all)
	if err != nil {
		t.Fatalf("MarkRead(%s, %q, all %t): %v", user, ids, all, err)
	}
	return changed, unread
}

// wantPage checks a page's items (newest first), read flags, unread count and
// More; want holds the expected events, read the ids expected read.
func wantPage(t *testing.T, p events.NotificationPage, want []*events.Event, read []string, unread int, more bool) {
	t.Helper()
	var got, wantIDs []string
	for _, n := range p.Items {
		got = append(got, n.ID)
	}
	for _, e := range want {
		wantIDs = append(wantIDs, e.ID())
	}
	if !slices.Equal(got, wantIDs) {
		t.Fatalf("page ids %v, want %v", got, wantIDs)
	}
	for i, n := range p.Items {
		e := want[i]
		if !n.Time.Equal(e.Time) || !bytes.Equal(n.Envelope, e.JSON()) || n.Read != slices.Contains(read, n.ID) {
			t.Errorf("item %s: got time %v read %t envelope %s; want %v %t %s",
				n.ID, n.Time, n.Read, n.Envelope, e.Time, slices.Contains(read, n.ID), e.JSON())
		}
	}
	if p.Unread != unread || p.More != more {
		t.Errorf("page Unread %d More %t, want %d %t", p.Unread, p.More, unread, more)
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, events.ErrNotFound) {
		t.Errorf("%s: got %v, want ErrNotFound", what, err)
	}
}

func backward(evs []*events.Event) []*events.Event {
	out := slices.Clone(evs)
	slices.Reverse(out)
	return out
}

func testNotesList(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{})
	if p := list(t, s, "1", "", 10); len(p.Items) != 0 || p.Unread != 0 || p.More {
		t.Errorf("List of a new user = %+v, want empty", p)
	}
	evs := notes(t, "1", 1, 5)
	record(t, s, "1", evs[:3]...)
	record(t, s, "1", evs[3:]...)
	p := list(t, s, "1", "", 10)
	wantPage(t, p, backward(evs), nil, 5, false)
	for i, n := range p.Items {
		if want := fmt.Sprintf("k%d", 5-i); n.Key != want {
			t.Errorf("item %s: Key %q, want %q", n.ID, n.Key, want)
		}
	}
	// The key is data's "id": a string's value, a number's text, else "".
	at := time.Now().Truncate(time.Millisecond)
	keyed := []*events.Event{note(t, "1", "abcdef", 6, 42, at), note(t, "1", "abcdef", 7, nil, at), note(t, "1", "abcdef", 8, true, at)}
	record(t, s, "1", keyed...)
	for i, n := range list(t, s, "1", "", 3).Items {
		if want := []string{"", "", "42"}[i]; n.Key != want {
			t.Errorf("item %s: Key %q, want %q", n.ID, n.Key, want)
		}
	}
}

// testNotesOrder: newest first is publish order (time, then sequence
// number), whatever the order of Record calls.
func testNotesOrder(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{})
	at := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var evs []*events.Event
	for i := 1; i <= 12; i++ { // all in one millisecond: seq 9 < 10 < 12
		evs = append(evs, note(t, "1", "abcdef", i, nil, at))
	}
	later := note(t, "1", "zz", 1, nil, at.Add(time.Second)) // a new epoch restarts seqs
	record(t, s, "1", later)
	for _, i := range []int{11, 3, 9, 0, 10, 5, 1, 4} {
		record(t, s, "1", evs[i])
	}
	record(t, s, "1", evs[2], evs[8], evs[7], evs[6])
	wantPage(t, list(t, s, "1", "", 20), append([]*events.Event{later}, backward(evs)...), nil, 13, false)
}

func testNotesTwice(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{})
	evs := notes(t, "1", 1, 2)
	record(t, s, "1", evs[0])
	markRead(t, s, "1", false, evs[0].ID())
	record(t, s, "1", evs[0], evs[1], evs[1])
	wantPage(t, list(t, s, "1", "", 10), backward(evs), []string{evs[0].ID()}, 1, false)
}

func testNotesConcurrent(t *testing.T, newStore NewNotifications) {
	const writers, each = 8, 20
	s := newStore(t, events.NotificationRetention{})
	evs := notes(t, "1", 1, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < len(evs); i += writers {
				if err := s.Record(context.Background(), "1", evs[i:i+1]); err != nil {
					t.Errorf("concurrent Record: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	wantPage(t, list(t, s, "1", "", writers*each), backward(evs), nil, writers*each, false)
}

func testNotesInvalid(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{})
	good := notes(t, "1", 1, 1)[0]
	d, _ := events.NewDraft(events.NotificationsChannel("2"), "notification_message", nil)
	other := events.NewEvent(d, events.Position{Epoch: "abcdef", Seq: 2}, time.Now())
	for _, c := range []struct {
		name string
		user string
		evs  []*events.Event
	}{
		{"another user's channel", "1", []*events.Event{good, other}},
		{"ephemeral", "1", []*events.Event{good, events.NewEphemeral(d, time.Now())}},
		{"bad user id", "1}x", []*events.Event{}},
	} {
		if err := s.Record(context.Background(), c.user, c.evs); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("Record(%s) = %v, want ErrInvalid", c.name, err)
		}
	}
	if p := list(t, s, "1", "", 10); len(p.Items) != 0 {
		t.Errorf("a refused Record kept %d notifications, want none", len(p.Items))
	}
	if err := s.Record(context.Background(), "1", nil); err != nil {
		t.Errorf("Record(no events) = %v", err)
	}
}

func testNotesPaging(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{})
	evs := notes(t, "1", 1, 7)
	record(t, s, "1", evs...)
	wantPage(t, list(t, s, "1", "", 3), backward(evs[4:7]), nil, 7, true)
	wantPage(t, list(t, s, "1", evs[4].ID(), 3), backward(evs[1:4]), nil, 7, true)
	wantPage(t, list(t, s, "1", evs[1].ID(), 3), evs[:1], nil, 7, false)
	wantPage(t, list(t, s, "1", evs[1].ID(), 1), evs[:1], nil, 7, false)
	wantPage(t, list(t, s, "1", evs[0].ID(), 3), nil, nil, 7, false)
	wantPage(t, list(t, s, "1", "", 7), backward(evs), nil, 7, false)
}

// testNotesLimits: limit ≤ 0 is 50, a limit over 200 is 200.
func testNotesLimits(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{})
	evs := notes(t, "1", 1, 210)
	record(t, s, "1", evs...)
	for limit, want := range map[int]int{0: 50, -1: 50, 1000: 200, 200: 200, 7: 7} {
		p := list(t, s, "1", "", limit)
		wantPage(t, p, backward(evs)[:want], nil, 210, true)
	}
}

func testNotesBeforeUnknown(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{})
	record(t, s, "1", notes(t, "1", 1, 3)...)
	theirs := note(t, "2", "bbbbbb", 1, "k-theirs", time.Now())
	record(t, s, "2", theirs)
	for _, before := range []string{"abcdef-99", "nope", theirs.ID(), "k1"} {
		_, err := s.List(context.Background(), "1", before, 10)
		wantNotFound(t, "List before "+before, err)
	}
	_, err := s.List(context.Background(), "3", "abcdef-1", 10)
	wantNotFound(t, "List of a user with none, before abcdef-1", err)
}

func testNotesMarkRead(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{})
	evs := notes(t, "1", 1, 4)
	record(t, s, "1", evs...)
	id := func(i int) string { return evs[i-1].ID() }
	for _, c := range []struct {
		ids     []string
		changed []string
		unread  int
	}{
		{[]string{id(1)}, []string{id(1)}, 3},                           // by envelope id
		{[]string{"k2"}, []string{id(2)}, 2},                            // by key
		{[]string{"k2", id(1)}, []string{}, 2},                          // again: no change
		{[]string{id(4), "k3", "k4", id(3)}, []string{id(4), id(3)}, 0}, // in order given, once
		{nil, []string{}, 0},
	} {
		changed, unread := markRead(t, s, "1", false, c.ids...)
		if !slices.Equal(changed, c.changed) || unread != c.unread {
			t.Errorf("MarkRead(%q) = %q, %d; want %q, %d", c.ids, changed, unread, c.changed, c.unread)
		}
	}
	wantPage(t, list(t, s, "1", "", 10), backward(evs), []string{id(1), id(2), id(3), id(4)}, 0, false)
}

func testNotesMarkAll(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{})
	if changed, unread := markRead(t, s, "1", true); len(changed) != 0 || unread != 0 {
		t.Errorf("MarkRead(all) of a user with none = %q, %d; want none, 0", changed, unread)
	}
	evs := notes(t, "1", 1, 4)
	record(t, s, "1", evs...)
	markRead(t, s, "1", false, evs[2].ID())
	changed, unread := markRead(t, s, "1", true)
	if want := []string{evs[3].ID(), evs[1].ID(), evs[0].ID()}; !slices.Equal(changed, want) || unread != 0 {
		t.Errorf("MarkRead(all) = %q, %d; want %q (newest first), 0", changed, unread, want)
	}
	if changed, unread := markRead(t, s, "1", true); len(changed) != 0 || unread != 0 {
		t.Errorf("MarkRead(all) again = %q, %d; want none, 0", changed, unread)
	}
	record(t, s, "1", notes(t, "1", 5, 5)...)
	if p := list(t, s, "1", "", 10); p.Unread != 1 || p.Items[0].Read || !p.Items[1].Read {
		t.Errorf("after marking all and a new notification: Unread %d, want 1, only the new one unread", p.Unread)
	}
}

// testNotesAllOrNothing: an unknown id, or another user's, changes nothing.
func testNotesAllOrNothing(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{})
	evs := notes(t, "1", 1, 3)
	record(t, s, "1", evs...)
	theirs := note(t, "2", "bbbbbb", 1, "k-theirs", time.Now())
	record(t, s, "2", theirs)
	for _, ids := range [][]string{
		{evs[0].ID(), "nope"},
		{"k1", theirs.ID()},
		{"k-theirs"},
		{evs[1].ID(), ""},
	} {
		_, _, err := s.MarkRead(context.Background(), "1", ids, false)
		wantNotFound(t, fmt.Sprintf("MarkRead(%q)", ids), err)
	}
	_, _, err := s.MarkRead(context.Background(), "3", []string{theirs.ID()}, false)
	wantNotFound(t, "MarkRead by a user with none", err)
	wantPage(t, list(t, s, "1", "", 10), backward(evs), nil, 3, false)
	wantPage(t, list(t, s, "2", "", 10), []*events.Event{theirs}, nil, 1, false)
}

// testNotesIsolated: users with the same envelope ids and keys (each user's
// channel has its own log) never see or change each other's notifications.
func testNotesIsolated(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{})
	mine, theirs := notes(t, "1", 1, 3), notes(t, "2", 1, 2)
	record(t, s, "1", mine...)
	record(t, s, "2", theirs...)
	markRead(t, s, "2", false, "k1")
	markRead(t, s, "1", true)
	wantPage(t, list(t, s, "2", "", 10), backward(theirs), []string{theirs[0].ID()}, 1, false)
	wantPage(t, list(t, s, "1", "", 10), backward(mine), []string{mine[0].ID(), mine[1].ID(), mine[2].ID()}, 0, false)
	if changed, unread := markRead(t, s, "2", false, "k2"); !slices.Equal(changed, []string{theirs[1].ID()}) || unread != 0 {
		t.Errorf("user 2 MarkRead(k2) = %q, %d; want [%s], 0", changed, unread, theirs[1].ID())
	}
}

func testNotesTrimCount(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{MaxItems: 3})
	evs := notes(t, "1", 1, 6)
	record(t, s, "1", evs[:5]...)
	wantPage(t, list(t, s, "1", "", 10), backward(evs[2:5]), nil, 3, false)
	for _, id := range []string{evs[0].ID(), "k2"} {
		_, _, err := s.MarkRead(context.Background(), "1", []string{id}, false)
		wantNotFound(t, "MarkRead(dropped "+id+")", err)
	}
	_, err := s.List(context.Background(), "1", evs[1].ID(), 10)
	wantNotFound(t, "List before a dropped id", err)
	markRead(t, s, "1", false, "k4")
	record(t, s, "1", evs[5]) // drops evs[2], unread
	wantPage(t, list(t, s, "1", "", 10), backward(evs[3:6]), []string{evs[3].ID()}, 2, false)
	if changed, unread := markRead(t, s, "1", true); len(changed) != 2 || unread != 0 {
		t.Errorf("MarkRead(all) = %q, %d; want the 2 kept unread, 0", changed, unread)
	}
}

// testNotesTrimAge: age is judged by the events' times, so the suite makes
// old events instead of waiting, except to see a kept one age (~0.6 s).
func testNotesTrimAge(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{MaxAge: time.Hour})
	now := time.Now().Truncate(time.Millisecond)
	old := note(t, "1", "abcdef", 1, "k1", now.Add(-2*time.Hour))
	mid := note(t, "1", "abcdef", 2, "k2", now.Add(-30*time.Minute))
	young := note(t, "1", "abcdef", 3, "k3", now)
	record(t, s, "1", old, mid, young)
	wantPage(t, list(t, s, "1", "", 10), []*events.Event{young, mid}, nil, 2, false)
	_, _, err := s.MarkRead(context.Background(), "1", []string{"k1"}, false)
	wantNotFound(t, "MarkRead(aged)", err)

	const maxAge = 2 * time.Second
	s = newStore(t, events.NotificationRetention{MaxAge: maxAge})
	soon := note(t, "1", "abcdef", 1, "k1", time.Now().Add(600*time.Millisecond-maxAge).Truncate(time.Millisecond))
	record(t, s, "1", soon)
	wantPage(t, list(t, s, "1", "", 10), []*events.Event{soon}, nil, 1, false)
	time.Sleep(time.Until(soon.Time.Add(maxAge + 100*time.Millisecond)))
	wantPage(t, list(t, s, "1", "", 10), nil, nil, 0, false)
	_, _, err = s.MarkRead(context.Background(), "1", []string{soon.ID()}, false)
	wantNotFound(t, "MarkRead(aged while kept)", err)
}

func testNotesCancelled(t *testing.T, newStore NewNotifications) {
	s := newStore(t, events.NotificationRetention{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	evs := notes(t, "1", 1, 2)
	if err := s.Record(ctx, "1", evs); !errors.Is(err, context.Canceled) {
		t.Errorf("Record(cancelled ctx) = %v, want context.Canceled", err)
	}
	if _, err := s.List(ctx, "1", "", 10); !errors.Is(err, context.Canceled) {
		t.Errorf("List(cancelled ctx) = %v, want context.Canceled", err)
	}
	if _, _, err := s.MarkRead(ctx, "1", nil, true); !errors.Is(err, context.Canceled) {
		t.Errorf("MarkRead(cancelled ctx) = %v, want context.Canceled", err)
	}
	if p := list(t, s, "1", "", 10); len(p.Items) != 0 {
		t.Errorf("Record with a cancelled ctx kept %d notifications, want none", len(p.Items))
	}
}
