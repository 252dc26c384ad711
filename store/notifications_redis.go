package store

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/events"
)

var _ events.Notifications = (*RedisNotifications)(nil)

var (
	//go:embed redis_notifications_lib.lua
	luaNotifLib string
	//go:embed redis_notifications_record.lua
	luaNotifRecord string
	//go:embed redis_notifications_list.lua
	luaNotifList string
	//go:embed redis_notifications_read.lua
	luaNotifRead string

	scriptNotifRecord = redis.NewScript(luaLib + luaNotifLib + luaNotifRecord)
	scriptNotifList   = redis.NewScript(luaLib + luaNotifLib + luaNotifList)
	scriptNotifRead   = redis.NewScript(luaLib + luaNotifLib + luaNotifRead)
)

// RedisNotifications keeps users' notifications in the Redis of a Redis log,
// shared by every relay process using it. Record, List and MarkRead are one
// script call each, atomic for the user.
//
// Each user has four keys in the hash slot of their notifications channel,
// "<prefix>{user_<id>_notifications}:" followed by
//   - nl, a sorted set: members "<seq, 20 digits>:<envelope id>", scores the
//     time the log stored the event (unix ms), so the set is in publish order
//     (by time, then sequence number) whatever the order of Record calls;
//   - nd, a hash: envelope id -> "<len(key)>:<key><envelope JSON>";
//   - nk, a hash: notification key -> envelope id of the notification last
//     recorded with it;
//   - nu, a set of the unread envelope ids.
//
// Age is judged by the events' times against Redis's clock (the clock the Redis
// log stamps events with). Every Record makes the user's keys expire MaxAge
// later, so a user idle that long is forgotten. List pages hold at most
// MaxNotificationsLimit items (DefaultNotificationsLimit when limit ≤ 0).
type RedisNotifications struct {
	r        *Redis
	maxItems int
	maxAge   int64 // ms, ≥ 1
}

// Notifications returns the notifications store sharing r's client, prefix
// and logger, with the given retention (zero fields take the defaults). It
// needs no Close of its own: closing r ends it.
func (r *Redis) Notifications(ret events.NotificationRetention) *RedisNotifications {
	ret = ret.WithDefaults()
	return &RedisNotifications{r: r, maxItems: ret.MaxItems, maxAge: max(ret.MaxAge.Milliseconds(), 1)}
}

// keys returns userID's four keys, in one hash slot (see RedisNotifications).
func (n *RedisNotifications) keys(userID string) []string {
	tag := n.r.prefix + "{" + events.NotificationsChannel(userID) + "}:"
	return []string{tag + "nl", tag + "nd", tag + "nk", tag + "nu"}
}

// Record keeps evs as userID's unread notifications; see events.Notifications.
// Every event must be a stored (not ephemeral) event of userID's notifications
// channel, or nothing is kept and the error wraps events.ErrInvalid.
func (n *RedisNotifications) Record(ctx context.Context, userID string, evs []*events.Event) error {
	const op = "record notifications"
	if err := ctx.Err(); err != nil {
		return n.r.fail(op, err)
	}
	if err := checkRecord(userID, evs); err != nil {
		return err
	}
	if len(evs) == 0 {
		return nil
	}
	args := make([]any, 0, 2+4*len(evs))
	args = append(args, n.maxItems, n.maxAge)
	for _, ev := range evs {
		key := notificationKey(ev)
		value := make([]byte, 0, 24+len(key)+len(ev.JSON()))
		value = strconv.AppendInt(value, int64(len(key)), 10)
		value = append(append(append(value, ':'), key...), ev.JSON()...)
		args = append(args, ev.ID(), ev.Time.UnixMilli(), key, value)
	}
	if err := scriptNotifRecord.Run(ctx, n.r.client, n.keys(userID), args...).Err(); err != nil {
		return n.r.fail(op, err)
	}
	return nil
}

// List returns a page of userID's notifications, newest first; see
// events.Notifications. limit ≤ 0 means DefaultNotificationsLimit; a limit
// over MaxNotificationsLimit is lowered to it.
func (n *RedisNotifications) List(ctx context.Context, userID, before string, limit int) (events.NotificationPage, error) {
	const op = "list notifications"
	if err := ctx.Err(); err != nil {
		return events.NotificationPage{}, n.r.fail(op, err)
	}
	if err := events.ValidateID("user", userID); err != nil {
		return events.NotificationPage{}, fmt.Errorf("store: %s: %w", op, err)
	}
	res, err := scriptNotifList.Run(ctx, n.r.client, n.keys(userID),
		n.maxItems, n.maxAge, before, notificationsLimit(limit)).Slice()
	if err != nil {
		return events.NotificationPage{}, n.r.fail(op, err)
	}
	if len(res) == 1 {
		return events.NotificationPage{}, beforeNotFound(before)
	}
	if len(res) < 2 || (len(res)-2)%4 != 0 {
		return events.NotificationPage{}, fmt.Errorf("store: %s: list script returned %d values", op, len(res))
	}
	unread, _ := res[0].(int64)
	more, _ := res[1].(int64)
	page := events.NotificationPage{Items: make([]events.Notification, 0, (len(res)-2)/4), Unread: int(unread), More: more == 1}
	for i := 2; i < len(res); i += 4 {
		item, err := listed(res[i : i+4])
		if err != nil {
			return events.NotificationPage{}, fmt.Errorf("store: %s: %w", op, err)
		}
		page.Items = append(page.Items, item)
	}
	return page, nil
}

// listed makes a notification of the list script's four values for it.
func listed(v []any) (events.Notification, error) {
	id, _ := v[0].(string)
	score, _ := v[1].(string)
	value, _ := v[2].(string)
	read, _ := v[3].(int64)
	ms, err := strconv.ParseFloat(score, 64)
	lenText, rest, ok := strings.Cut(value, ":")
	keyLen, lerr := strconv.Atoi(lenText)
	if id == "" || err != nil || !ok || lerr != nil || keyLen < 0 || keyLen > len(rest) {
		return events.Notification{}, fmt.Errorf("malformed notification %q (time %q)", id, score)
	}
	return events.Notification{
		ID:       id,
		Key:      rest[:keyLen],
		Time:     time.UnixMilli(int64(ms)),
		Envelope: []byte(rest[keyLen:]),
		Read:     read == 1,
	}, nil
}

// MarkRead marks notifications read; see events.Notifications. ids are
// ignored when all is set; changed lists envelope ids in the order of ids
// (newest first for all), each once.
func (n *RedisNotifications) MarkRead(ctx context.Context, userID string, ids []string, all bool) ([]string, int, error) {
	const op = "mark notifications read"
	if err := ctx.Err(); err != nil {
		return nil, 0, n.r.fail(op, err)
	}
	if err := events.ValidateID("user", userID); err != nil {
		return nil, 0, fmt.Errorf("store: %s: %w", op, err)
	}
	args := make([]any, 0, 3+len(ids))
	args = append(args, n.maxItems, n.maxAge, "0")
	if all {
		args[2] = "1"
	} else {
		for _, id := range ids {
			args = append(args, id)
		}
	}
	res, err := scriptNotifRead.Run(ctx, n.r.client, n.keys(userID), args...).Slice()
	if err != nil {
		return nil, 0, n.r.fail(op, err)
	}
	if len(res) != 2 {
		return nil, 0, fmt.Errorf("store: %s: read script returned %d values, want 2", op, len(res))
	}
	unread, _ := res[0].(int64)
	if unread < 0 {
		id, _ := res[1].(string)
		return nil, 0, markNotFound(id)
	}
	list, _ := res[1].([]any)
	changed := make([]string, 0, len(list))
	for _, v := range list {
		id, _ := v.(string)
		changed = append(changed, id)
	}
	return changed, int(unread), nil
}
