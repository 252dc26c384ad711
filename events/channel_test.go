package events_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/relaydev/relay/events"
)

func TestValidateChannel(t *testing.T) {
	for _, tc := range []struct {
		name    string
		channel string
		ok      bool
	}{
		{"tickets", "project_7_tickets", true},
		{"every allowed byte", "AZaz09_.:-", true},
		{"one byte", "a", true},
		{"200 bytes", strings.Repeat("c", 200), true},
		{"empty", "", false},
		{"201 bytes", strings.Repeat("c", 201), false},
		{"space", "a b", false},
		{"slash", "a/b", false},
		{"star", "project_*", false},
		{"comma (the cursor separator)", "a,b", false},
		{"equals (the cursor pair sign)", "a=b", false},
		{"non-ASCII", "café", false},
		{"NUL", "a\x00", false},
		{"newline", "a\nb", false},
		{"relay's own (reserved)", "relay.control", false},
		{"reserved prefix alone", "relay.", false},
		{"relay without the dot", "relay_events", true},
		{"the prefix not at the start", "my.relay.control", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := events.ValidateChannel(tc.channel)
			if tc.ok && err != nil {
				t.Errorf("ValidateChannel(%q): got %v, want nil", tc.channel, err)
			}
			if !tc.ok && !errors.Is(err, events.ErrInvalid) {
				t.Errorf("ValidateChannel(%q): got %v, want ErrInvalid", tc.channel, err)
			}
		})
	}
}

func TestValidatePattern(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		ok      bool
	}{
		{"*", true},
		{"project_7_*", true},
		{"*_notifications", true},
		{"a**b", true},
		{"project_7_tickets", true},
		{"", false},
		{strings.Repeat("*", 201), false},
		{"a b*", false},
		{"?", false},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			err := events.ValidatePattern(tc.pattern)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, events.ErrInvalid)) {
				t.Errorf("ValidatePattern(%q): got %v, want ok=%v", tc.pattern, err, tc.ok)
			}
		})
	}
}

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern, channel string
		want             bool
	}{
		{"*", "anything", true},
		{"*", "a", true},
		{"project_7_*", "project_7_tickets", true},
		{"project_7_*", "project_7_", true},
		{"project_7_*", "project_70_tickets", false},
		{"project_7_*", "project_7", false},
		{"project_*_tickets", "project_12_tickets", true},
		{"project_*_tickets", "project_12_presence", false},
		{"project_*_tickets", "project__tickets", true},
		{"*_notifications", "user_1_notifications", true},
		{"*_notifications", "user_1_notifications_x", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"exact", "inexact", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a*b*c", "acb", false},
		{"a**c", "abc", true},
		{"*a*a*a*b", strings.Repeat("a", 100), false},
		{"*a", "baa", true},
		{"ab*", "a", false},
		{"x", "", false},
		{"*", "", true},
	} {
		t.Run(tc.pattern+"/"+tc.channel, func(t *testing.T) {
			if got := events.MatchPattern(tc.pattern, tc.channel); got != tc.want {
				t.Errorf("MatchPattern(%q, %q): got %v, want %v", tc.pattern, tc.channel, got, tc.want)
			}
		})
	}
}

func TestChannelGroups(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{events.NotificationsChannel("1"), "user_1_notifications"},
		{events.TicketsChannel("7"), "project_7_tickets"},
		{events.PresenceChannel("7"), "project_7_presence"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
		if err := events.ValidateChannel(tc.got); err != nil {
			t.Errorf("%s: %v", tc.got, err)
		}
	}
}

func TestProjectOf(t *testing.T) {
	for _, tc := range []struct {
		channel, id string
		ok          bool
	}{
		{"project_7_tickets", "7", true},
		{"project_abc-1_presence", "abc-1", true},
		{"project_7", "", false},
		{"project__tickets", "", false},
		{"user_7_notifications", "", false},
		{"projects_7_tickets", "", false},
	} {
		t.Run(tc.channel, func(t *testing.T) {
			id, ok := events.ProjectOf(tc.channel)
			if ok != tc.ok || (ok && id != tc.id) {
				t.Errorf("ProjectOf(%q): got %q, %v, want %q, %v", tc.channel, id, ok, tc.id, tc.ok)
			}
		})
	}
}

func TestValidateID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"1", true},
		{"42", true},
		{"abc-DEF-9", true},
		{strings.Repeat("9", 64), true},
		{"", false},
		{strings.Repeat("9", 65), false},
		{"abc_x", false},
		{"a.b", false},
		{"a b", false},
		{"1/2", false},
	} {
		t.Run(tc.id, func(t *testing.T) {
			err := events.ValidateID("project", tc.id)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, events.ErrInvalid)) {
				t.Errorf("ValidateID(%q): got %v, want ok=%v", tc.id, err, tc.ok)
			}
		})
	}
}
