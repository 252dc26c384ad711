package store

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store/redistest"
	"github.com/relaydev/relay/store/storetest"
)

func TestMemoryNotifications(t *testing.T) {
	t.Parallel()
	storetest.RunNotifications(t, func(t *testing.T, ret events.NotificationRetention) events.Notifications {
		return NewMemoryNotifications(ret)
	})
}

func TestRedisNotifications(t *testing.T) {
	t.Parallel()
	storetest.RunNotifications(t, func(t *testing.T, ret events.NotificationRetention) events.Notifications {
		return openNotificationsRedis(t).Notifications(ret)
	})
}

func openNotificationsRedis(t *testing.T) *Redis {
	t.Helper()
	r, err := OpenRedis(context.Background(), redistest.URL(t), RedisOptions{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// noteAt makes user 1's notification seq, keyed "k<seq>", stored at at.
func noteAt(t *testing.T, seq uint64, at time.Time) *events.Event {
	t.Helper()
	d, err := events.NewDraft(events.NotificationsChannel("1"), "notification_message", map[string]any{"id": "k" + string(rune('0'+seq))})
	if err != nil {
		t.Fatal(err)
	}
	return events.NewEvent(d, events.Position{Epoch: "abcdef", Seq: seq}, at)
}

// TestMemoryNotificationsClock: notifications age on the store's clock, on
// List and MarkRead too, and a sweep forgets users idle past MaxAge.
func TestMemoryNotificationsClock(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := NewMemoryNotifications(events.NotificationRetention{MaxAge: time.Hour})
	m.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx := context.Background()

	if err := m.Record(ctx, "1", []*events.Event{noteAt(t, 1, now), noteAt(t, 2, now.Add(time.Minute))}); err != nil {
		t.Fatal(err)
	}
	advance(time.Hour + 30*time.Second) // 1 has aged, 2 not yet
	p, err := m.List(ctx, "1", "", 10)
	if err != nil || len(p.Items) != 1 || p.Items[0].Key != "k2" || p.Unread != 1 {
		t.Fatalf("List after 1 aged = %+v, %v; want only k2, 1 unread", p, err)
	}
	advance(time.Minute)
	if _, _, err := m.MarkRead(ctx, "1", []string{"k2"}, false); err == nil {
		t.Error("MarkRead(k2) after it aged succeeded, want ErrNotFound")
	}
	if len(m.users) != 0 {
		t.Errorf("%d users kept after all their notifications aged, want 0", len(m.users))
	}

	// User 2 is never looked at again: a later Record of user 3 sweeps it.
	d, _ := events.NewDraft(events.NotificationsChannel("2"), "x", nil)
	if err := m.Record(ctx, "2", []*events.Event{events.NewEvent(d, events.Position{Epoch: "abcdef", Seq: 1}, now)}); err != nil {
		t.Fatal(err)
	}
	advance(2 * time.Hour)
	d, _ = events.NewDraft(events.NotificationsChannel("3"), "x", nil)
	if err := m.Record(ctx, "3", []*events.Event{events.NewEvent(d, events.Position{Epoch: "abcdef", Seq: 1}, now)}); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	_, kept := m.users["2"]
	m.mu.Unlock()
	if kept {
		t.Error("user 2, idle past MaxAge, was not swept")
	}
}

// TestRedisNotificationsKeys: a user's keys share one Cluster hash slot,
// trimming leaves nothing behind in the hashes and the unread set, and every
// key expires.
func TestRedisNotificationsKeys(t *testing.T) {
	t.Parallel()
	r := openNotificationsRedis(t)
	n := r.Notifications(events.NotificationRetention{MaxItems: 3, MaxAge: time.Hour})
	keys := n.keys("7")
	for _, k := range keys {
		if !strings.HasPrefix(k, r.prefix+"{user_7_notifications}:") {
			t.Errorf("key %q is not in user 7's notifications channel's hash slot", k)
		}
	}
	keys = n.keys("1")
	ctx := context.Background()
	now := time.Now()
	var evs []*events.Event
	for i := uint64(1); i <= 5; i++ {
		evs = append(evs, noteAt(t, i, now))
	}
	if err := n.Record(ctx, "1", evs); err != nil {
		t.Fatal(err)
	}
	if _, _, err := n.MarkRead(ctx, "1", []string{"k5"}, false); err != nil {
		t.Fatal(err)
	}
	c := r.client
	if got := []int64{c.ZCard(ctx, keys[0]).Val(), c.HLen(ctx, keys[1]).Val(), c.HLen(ctx, keys[2]).Val(), c.SCard(ctx, keys[3]).Val()}; got[0] != 3 || got[1] != 3 || got[2] != 3 || got[3] != 2 {
		t.Errorf("after trimming to 3 and reading 1: nl, nd, nk, nu sizes %v, want [3 3 3 2]", got)
	}
	for _, k := range keys {
		if ttl := c.PTTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("key %s: PTTL %v, want within MaxAge", k, ttl)
		}
	}
}

func TestNotificationKey(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ fields, want string }{
		{`"data":{"id":"a-uuid","title":"x"},"type":"n"`, "a-uuid"},
		{`"data":{"id":42},"type":"n"`, "42"},
		{`"data":{"id":-1.5e3},"type":"n"`, "-1.5e3"},
		{`"data":{"id":"esc\"aped\u00e9"}`, "esc\"apedé"},
		{`"data":{"ID":"upper","Id":"x"}`, ""},
		{`"Data":{"id":"upper"}`, ""},
		{`"data":{"id":null}`, ""},
		{`"data":{"id":{"a":1}}`, ""},
		{`"data":"text"`, ""},
		{`"data":{"nested":{"id":"x"}}`, ""},
		{`"id":"top","type":"n"`, ""},
		{``, ""},
	} {
		ev := &events.Event{Channel: "user_1_notifications", Fields: []byte(c.fields)}
		if got := notificationKey(ev); got != c.want {
			t.Errorf("notificationKey(%s) = %q, want %q", c.fields, got, c.want)
		}
	}
}
