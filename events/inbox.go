package events

import (
	"context"
	"fmt"
)

// NotificationReadType is the type of the event relay publishes on a user's
// notifications channel when notifications are marked read, so every tab
// and device of the user updates its unread count. It is not a notification.
const NotificationReadType = "notification_read"

// record keeps the notifications among evs, grouped per user.
func (h *Hub) record(ctx context.Context, evs []*Event) error {
	if h.notes == nil {
		return nil
	}
	var byUser map[string][]*Event
	for _, ev := range evs {
		user, ok := UserOfNotifications(ev.Channel)
		if !ok || ev.Type == NotificationReadType || ev.Repeat {
			continue
		}
		if byUser == nil {
			byUser = make(map[string][]*Event)
		}
		byUser[user] = append(byUser[user], ev)
	}
	for user, list := range byUser {
		if err := h.notes.Record(ctx, user, list); err != nil {
			return fmt.Errorf("record notifications of user %s: %w", user, err)
		}
	}
	return nil
}

// MarkRead marks userID's notifications read (ids: envelope ids or
// notification keys; all: every one) and, when any changed, publishes a
// notification_read event with their envelope ids and the new unread count
// on the user's channel, for the user's other tabs and devices.
func (h *Hub) MarkRead(ctx context.Context, userID string, ids []string, all bool) (changed []string, unread int, err error) {
	if h.notes == nil {
		return nil, 0, fmt.Errorf("notifications are not kept by this relay: %w", ErrNotFound)
	}
	changed, unread, err = h.notes.MarkRead(ctx, userID, ids, all)
	if err != nil {
		return nil, 0, fmt.Errorf("mark read: %w", err)
	}
	if changed == nil {
		changed = []string{}
	}
	if len(changed) > 0 {
		d, err := draft(NotificationsChannel(userID), NotificationReadType, map[string]any{"ids": changed, "unread_count": unread})
		if err != nil {
			return nil, 0, err
		}
		if _, err := h.Publish(ctx, d); err != nil {
			return nil, 0, err
		}
	}
	return changed, unread, nil
}
