package auth

import (
	"slices"
	"strings"

	"github.com/relaydev/relay/events"
)

// CanSubscribe reports whether id may subscribe to channel: its own
// notifications channel (events.NotificationsChannel(UserID)), any
// project_{p}_… channel of a project p it belongs to, and any channel
// matching one of its Subscribe patterns. Invalid channel names are refused.
func (id *Identity) CanSubscribe(channel string) bool {
	if id == nil || events.ValidateChannel(channel) != nil {
		return false
	}
	if id.ownNotifications(channel) {
		return true
	}
	if p, ok := events.ProjectOf(channel); ok && id.MemberOf(p) {
		return true
	}
	return matchAny(id.Subscribe, channel)
}

// CanPublish reports whether id may publish to channel: only channels
// matching one of its Publish patterns. Project membership alone grants no
// publishing, since browsers hold these tokens. Invalid channel names are
// refused.
func (id *Identity) CanPublish(channel string) bool {
	if id == nil || events.ValidateChannel(channel) != nil {
		return false
	}
	return matchAny(id.Publish, channel)
}

// MemberOf reports whether id's token lists projectID in its projects.
func (id *Identity) MemberOf(projectID string) bool {
	return id != nil && projectID != "" && slices.Contains(id.Projects, projectID)
}

// ownNotifications reports whether channel is events.NotificationsChannel
// of id's user, without building the name on every check.
func (id *Identity) ownNotifications(channel string) bool {
	if id.UserID == "" {
		return false
	}
	rest, ok := strings.CutPrefix(channel, "user_")
	if !ok {
		return false
	}
	user, ok := strings.CutSuffix(rest, "_notifications")
	return ok && user == id.UserID
}

func matchAny(patterns []string, channel string) bool {
	for _, p := range patterns {
		if events.MatchPattern(p, channel) {
			return true
		}
	}
	return false
}
