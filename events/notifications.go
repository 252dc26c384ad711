package events

import (
	"context"
	"strings"
	"time"
)

// Notification is one event published to a user's notifications channel,
// kept with its read state.
type Notification struct {
	// ID is the event's envelope id.
	ID string
	// Key is the notification's own id, the string "id" inside the published
	// "data" (the app relay replaces marks notifications by it), or "".
	Key string
	// Time is when the log stored the event.
	Time time.Time
	// Envelope is the event's JSON, as subscribers received it.
	Envelope []byte
	// Read reports whether the user marked it read.
	Read bool
}

// NotificationPage is one page of a user's notifications, newest first.
type NotificationPage struct {
	Items []Notification
	// Unread is how many of the user's kept notifications are unread.
	Unread int
	// More reports whether older notifications exist beyond this page.
	More bool
}

// NotificationRetention bounds each user's kept notifications; both apply.
type NotificationRetention struct {
	MaxItems int           // default 1,000
	MaxAge   time.Duration // default 30 days
}

// Defaults for NotificationRetention.
const (
	DefaultNotificationsMax    = 1000
	DefaultNotificationsMaxAge = 30 * 24 * time.Hour
)

// WithDefaults fills zero fields with the defaults.
func (r NotificationRetention) WithDefaults() NotificationRetention {
	if r.MaxItems <= 0 {
		r.MaxItems = DefaultNotificationsMax
	}
	if r.MaxAge <= 0 {
		r.MaxAge = DefaultNotificationsMaxAge
	}
	return r
}

// Notifications keeps users' notifications with read state. store.Memory
// and store.Redis implement it; storetest holds its conformance suite.
type Notifications interface {
	// Record keeps events (all of them published to userID's notifications
	// channel) as unread notifications, trimming the user's oldest beyond the
	// retention bounds. Recording an event id twice keeps one.
	Record(ctx context.Context, userID string, evs []*Event) error

	// List returns up to limit of userID's notifications, newest first, older
	// than the notification with envelope id before ("" for the newest). A
	// before id the user does not have is ErrNotFound.
	List(ctx context.Context, userID string, before string, limit int) (NotificationPage, error)

	// MarkRead marks the user's notifications named by ids (each an envelope
	// id or a notification key) read, or every one when all is set, and
	// returns the envelope ids that changed from unread to read and the new
	// unread count. It is all or nothing: an id the user does not have is
	// ErrNotFound (whether or not another user has it) and changes nothing.
	MarkRead(ctx context.Context, userID string, ids []string, all bool) (changed []string, unread int, err error)
}

// UserOfNotifications returns the user id of a user_{id}_notifications
// channel.
func UserOfNotifications(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, "user_")
	if !ok {
		return "", false
	}
	id, ok := strings.CutSuffix(rest, "_notifications")
	return id, ok && id != "" && ValidateID("user", id) == nil
}
