package events

import (
	"fmt"
	"strings"
)

// MaxChannelLen is the longest channel name accepted, in bytes.
const MaxChannelLen = 200

// ReservedPrefix begins the names of relay's own channels (relay.control
// carries disconnects between processes). Clients and backends can neither
// subscribe to nor publish on them, whatever their token's patterns say: a
// subscribe pattern of "*" must not read another user's disconnect.
const ReservedPrefix = "relay."

// ValidateChannel reports whether name is a channel name clients and
// backends may use: 1 to 200 bytes of [A-Za-z0-9_.:-], not beginning with
// ReservedPrefix. The error wraps ErrInvalid and says what is wrong.
func ValidateChannel(name string) error {
	if name == "" {
		return fmt.Errorf("channel name is empty: %w", ErrInvalid)
	}
	if strings.HasPrefix(name, ReservedPrefix) {
		return fmt.Errorf("channel name %q begins with %q, which relay keeps for its own channels; choose another name: %w", name, ReservedPrefix, ErrInvalid)
	}
	if len(name) > MaxChannelLen {
		return fmt.Errorf("channel name is %d bytes, over the %d-byte limit: %w", len(name), MaxChannelLen, ErrInvalid)
	}
	for i := 0; i < len(name); i++ {
		if !channelByte(name[i]) {
			return fmt.Errorf("channel name %q has %q at byte %d; use only A-Z a-z 0-9 _ . : -: %w", name, name[i], i, ErrInvalid)
		}
	}
	return nil
}

func channelByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == ':' || c == '-'
}

// ValidatePattern checks a channel pattern: a channel name in which '*' may
// also appear, matching any run of characters.
func ValidatePattern(p string) error {
	if p == "" || len(p) > MaxChannelLen {
		return fmt.Errorf("channel pattern %q must be 1 to %d bytes: %w", p, MaxChannelLen, ErrInvalid)
	}
	for i := 0; i < len(p); i++ {
		if p[i] != '*' && !channelByte(p[i]) {
			return fmt.Errorf("channel pattern %q has %q at byte %d: %w", p, p[i], i, ErrInvalid)
		}
	}
	return nil
}

// MatchPattern reports whether channel matches pattern, where '*' matches any
// run of characters (including none) and every other byte matches itself:
// "project_7_*" covers project 7's channels, "*" covers every channel.
func MatchPattern(pattern, channel string) bool {
	// Iterative glob with single backtrack point: linear in practice, no recursion.
	p, c := 0, 0
	star, mark := -1, 0
	for c < len(channel) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, c
			p++
		case p < len(pattern) && pattern[p] == channel[c]:
			p++
			c++
		case star >= 0:
			p = star + 1
			mark++
			c = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// The channel groups of the Django Channels app relay replaces.

// NotificationsChannel is the per-user notifications channel, user_{id}_notifications.
func NotificationsChannel(userID string) string { return "user_" + userID + "_notifications" }

// TicketsChannel is a project's ticket updates channel, project_{id}_tickets.
func TicketsChannel(projectID string) string { return "project_" + projectID + "_tickets" }

// PresenceChannel is a project's presence channel, project_{id}_presence.
func PresenceChannel(projectID string) string { return "project_" + projectID + "_presence" }

// ValidateID checks a user or project id used in a path or channel name: a
// decimal number or a short token of channel bytes without '_' ambiguity.
func ValidateID(kind, id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%s id %q must be 1 to 64 characters: %w", kind, id, ErrInvalid)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%s id %q may hold only letters, digits and '-': %w", kind, id, ErrInvalid)
		}
	}
	return nil
}

// ProjectOf returns the project id of a project_{id}_… channel.
func ProjectOf(channel string) (string, bool) {
	rest, ok := strings.CutPrefix(channel, "project_")
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "_")
	return id, ok && id != ""
}
