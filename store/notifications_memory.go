package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/relaydev/relay/events"
)

var _ events.Notifications = (*MemoryNotifications)(nil)

// Page sizes of Notifications.List, in both stores.
const (
	// DefaultNotificationsLimit is the page size when List's limit is ≤ 0.
	DefaultNotificationsLimit = 50
	// MaxNotificationsLimit caps List's limit: a larger one returns this many,
	// so one request never copies a whole history.
	MaxNotificationsLimit = 200
)

// MemoryNotifications keeps users' notifications in this process's memory:
// nothing survives a restart and processes do not share it. It suits one
// relay process with store.Memory.
//
// List pages hold at most MaxNotificationsLimit items (DefaultNotificationsLimit
// when limit ≤ 0). Notifications are ordered by the time the log stored them,
// then by sequence number (publish order), whatever the order of Record calls.
// A notification key names the notification last recorded with it. Items'
// Envelope is the recorded event's JSON itself, shared: do not modify it.
type MemoryNotifications struct {
	ret        events.NotificationRetention
	now        func() time.Time
	sweepEvery time.Duration

	mu        sync.Mutex // one lock for all users: operations are short
	users     map[string]*memInbox
	lastSweep time.Time
}

// memInbox is one user's notifications.
type memInbox struct {
	items  []*memNotification // oldest first, by (Time, seq, ID)
	byID   map[string]*memNotification
	byKey  map[string]string // notification key -> envelope id
	unread int
}

type memNotification struct {
	events.Notification
	seq uint64
}

// NewMemoryNotifications returns an empty store with the given retention
// (zero fields take the defaults). It starts no goroutine: users idle past
// MaxAge are forgotten by a sweep that Record runs now and then.
func NewMemoryNotifications(ret events.NotificationRetention) *MemoryNotifications {
	ret = ret.WithDefaults()
	return &MemoryNotifications{
		ret:        ret,
		now:        time.Now,
		sweepEvery: min(ret.MaxAge/4, time.Minute),
		users:      make(map[string]*memInbox),
	}
}

// Record keeps evs as userID's unread notifications; see events.Notifications.
// Every event must be a stored (not ephemeral) event of userID's notifications
// channel, or nothing is kept and the error wraps events.ErrInvalid.
func (m *MemoryNotifications) Record(ctx context.Context, userID string, evs []*events.Event) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: record notifications: %w", err)
	}
	if err := checkRecord(userID, evs); err != nil {
		return err
	}
	keys := make([]string, len(evs))
	for i, ev := range evs {
		keys[i] = notificationKey(ev)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	in := m.users[userID]
	if in == nil {
		in = &memInbox{byID: make(map[string]*memNotification), byKey: make(map[string]string)}
		m.users[userID] = in
	}
	for i, ev := range evs {
		in.add(ev, keys[i])
	}
	m.trim(userID, in, now)
	if now.Sub(m.lastSweep) >= m.sweepEvery {
		m.lastSweep = now
		for u, x := range m.users {
			m.trim(u, x, now)
		}
	}
	return nil
}

// add inserts ev at its place in publish order, unless it is already kept.
func (in *memInbox) add(ev *events.Event, key string) {
	id := ev.ID()
	if in.byID[id] != nil {
		return
	}
	n := &memNotification{
		Notification: events.Notification{ID: id, Key: key, Time: ev.Time, Envelope: ev.JSON()},
		seq:          ev.Pos.Seq,
	}
	i, _ := slices.BinarySearchFunc(in.items, n, compareNotifications)
	in.items = slices.Insert(in.items, i, n)
	in.byID[id] = n
	if key != "" {
		in.byKey[key] = id
	}
	in.unread++
}

func compareNotifications(a, b *memNotification) int {
	return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.seq, b.seq), cmp.Compare(a.ID, b.ID))
}

// trim drops the notifications over the count bound or older than the age
// bound, and forgets the user when none is left. m.mu must be held.
func (m *MemoryNotifications) trim(userID string, in *memInbox, now time.Time) {
	drop := max(len(in.items)-m.ret.MaxItems, 0)
	cutoff := now.Add(-m.ret.MaxAge)
	for drop < len(in.items) && in.items[drop].Time.Before(cutoff) {
		drop++
	}
	for _, n := range in.items[:drop] {
		delete(in.byID, n.ID)
		if n.Key != "" && in.byKey[n.Key] == n.ID {
			delete(in.byKey, n.Key)
		}
		if !n.Read {
			in.unread--
		}
	}
	clear(in.items[:drop])
	in.items = in.items[drop:]
	if len(in.items) == 0 {
		delete(m.users, userID)
	}
}

// inbox returns userID's notifications after trimming, or nil when it has
// none. m.mu must be held.
func (m *MemoryNotifications) inbox(userID string) *memInbox {
	in := m.users[userID]
	if in != nil {
		m.trim(userID, in, m.now())
		in = m.users[userID]
	}
	return in
}

// List returns a page of userID's notifications, newest first; see
// events.Notifications. limit ≤ 0 means DefaultNotificationsLimit; a limit
// over MaxNotificationsLimit is lowered to it.
func (m *MemoryNotifications) List(ctx context.Context, userID, before string, limit int) (events.NotificationPage, error) {
	if err := ctx.Err(); err != nil {
		return events.NotificationPage{}, fmt.Errorf("store: list notifications: %w", err)
	}
	if err := events.ValidateID("user", userID); err != nil {
		return events.NotificationPage{}, fmt.Errorf("store: list notifications: %w", err)
	}
	limit = notificationsLimit(limit)
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.inbox(userID)
	if in == nil {
		if before != "" {
			return events.NotificationPage{}, beforeNotFound(before)
		}
		return events.NotificationPage{Items: []events.Notification{}}, nil
	}
	end := len(in.items)
	if before != "" {
		n := in.byID[before]
		if n == nil {
			return events.NotificationPage{}, beforeNotFound(before)
		}
		end, _ = slices.BinarySearchFunc(in.items, n, compareNotifications)
	}
	start := max(end-limit, 0)
	page := events.NotificationPage{Items: make([]events.Notification, 0, end-start), Unread: in.unread, More: start > 0}
	for i := end - 1; i >= start; i-- {
		page.Items = append(page.Items, in.items[i].Notification)
	}
	return page, nil
}

// MarkRead marks notifications read; see events.Notifications. ids are
// ignored when all is set; changed lists envelope ids in the order of ids
// (newest first for all), each once.
func (m *MemoryNotifications) MarkRead(ctx context.Context, userID string, ids []string, all bool) ([]string, int, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("store: mark notifications read: %w", err)
	}
	if err := events.ValidateID("user", userID); err != nil {
		return nil, 0, fmt.Errorf("store: mark notifications read: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.inbox(userID)
	var targets []*memNotification
	if all {
		if in != nil {
			targets = slices.Clone(in.items)
			slices.Reverse(targets)
		}
	} else {
		for _, id := range ids {
			n := in.lookup(id)
			if n == nil {
				return nil, 0, markNotFound(id)
			}
			targets = append(targets, n)
		}
	}
	changed := []string{}
	for _, n := range targets {
		if !n.Read {
			n.Read = true
			in.unread--
			changed = append(changed, n.ID)
		}
	}
	return changed, in.count(), nil
}

// lookup finds a notification by envelope id, else by key; in may be nil.
func (in *memInbox) lookup(id string) *memNotification {
	if in == nil {
		return nil
	}
	if n := in.byID[id]; n != nil {
		return n
	}
	return in.byID[in.byKey[id]]
}

func (in *memInbox) count() int {
	if in == nil {
		return 0
	}
	return in.unread
}

// checkRecord checks that evs may be recorded as userID's notifications.
func checkRecord(userID string, evs []*events.Event) error {
	if err := events.ValidateID("user", userID); err != nil {
		return fmt.Errorf("store: record notifications: %w", err)
	}
	want := events.NotificationsChannel(userID)
	for _, ev := range evs {
		if ev.Ephemeral || ev.Channel != want {
			return fmt.Errorf("store: record notifications: event on %q (ephemeral %t) is not a stored event of %s: %w",
				ev.Channel, ev.Ephemeral, want, events.ErrInvalid)
		}
	}
	return nil
}

// notificationKey returns the notification's own id: the "id" member of the
// published "data" object, a JSON string's value or a number's text; "" when
// there is none (no data object, no id, or an id of another JSON type).
func notificationKey(ev *events.Event) string {
	if !bytes.Contains(ev.Fields, []byte(`"data"`)) {
		return ""
	}
	obj := make([]byte, 0, len(ev.Fields)+2)
	obj = append(append(append(obj, '{'), ev.Fields...), '}')
	// Maps, not structs: a struct field would match "Data" or "ID" too.
	var top, data map[string]json.RawMessage
	if json.Unmarshal(obj, &top) != nil || json.Unmarshal(top["data"], &data) != nil {
		return ""
	}
	raw := data["id"]
	switch {
	case len(raw) == 0:
		return ""
	case raw[0] == '"':
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		return string(raw)
	}
	return ""
}

// notificationsLimit applies List's default and cap.
func notificationsLimit(limit int) int {
	if limit <= 0 {
		return DefaultNotificationsLimit
	}
	return min(limit, MaxNotificationsLimit)
}

func beforeNotFound(before string) error {
	return fmt.Errorf("store: list notifications: before %s: no such notification of this user: %w",
		strconv.Quote(before), events.ErrNotFound)
}

func markNotFound(id string) error {
	return fmt.Errorf("store: mark notifications read: %s: no such notification of this user; nothing was marked: %w",
		strconv.Quote(id), events.ErrNotFound)
}
