package auth

import "testing"

func TestCanSubscribe(t *testing.T) {
	member := &Identity{UserID: "42", Projects: []string{"7", "12"}}
	patterned := &Identity{UserID: "42", Subscribe: []string{"project_7_*", "lobby"}}
	everything := &Identity{UserID: "42", Subscribe: []string{"*"}}
	tests := []struct {
		name    string
		id      *Identity
		channel string
		want    bool
	}{
		{"own notifications", member, "user_42_notifications", true},
		{"other user's notifications", member, "user_43_notifications", false},
		{"user id prefix", member, "user_4_notifications", false},
		{"notifications suffix only", member, "user_42_notificationsx", false},
		{"member project tickets", member, "project_7_tickets", true},
		{"member project presence", member, "project_12_presence", true},
		{"other project", member, "project_8_tickets", false},
		{"project id prefix", member, "project_1_tickets", false},
		{"project without suffix", member, "project_7", false},
		{"pattern project_7_*", patterned, "project_7_tickets", true},
		{"pattern project_7_* other project", patterned, "project_70_tickets", false},
		{"exact pattern", patterned, "lobby", true},
		{"no pattern matches", patterned, "lobby2", false},
		{"star matches all", everything, "project_99_tickets", true},
		{"star and own notifications", everything, "user_1_notifications", true},
		{"invalid channel", everything, "bad channel", false},
		{"empty channel", everything, "", false},
		{"nil identity", nil, "lobby", false},
		{"publish grants no subscribe", &Identity{UserID: "1", Publish: []string{"*"}}, "lobby", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.id.CanSubscribe(tt.channel); got != tt.want {
				t.Errorf("CanSubscribe(%q): got %v, want %v", tt.channel, got, tt.want)
			}
		})
	}
}

func TestCanPublish(t *testing.T) {
	id := &Identity{UserID: "42", Projects: []string{"7"}, Subscribe: []string{"*"},
		Publish: []string{"project_7_*", "user_*_notifications"}}
	tests := []struct {
		name    string
		id      *Identity
		channel string
		want    bool
	}{
		{"pattern project_7_*", id, "project_7_tickets", true},
		{"other project", id, "project_8_tickets", false},
		{"any user's notifications", id, "user_99_notifications", true},
		{"subscribe * grants no publish", id, "lobby", false},
		{"membership grants no publish", &Identity{UserID: "42", Projects: []string{"7"}}, "project_7_tickets", false},
		{"own notifications need a pattern", &Identity{UserID: "42"}, "user_42_notifications", false},
		{"star", &Identity{UserID: "1", Publish: []string{"*"}}, "anything.at:all", true},
		{"star refuses invalid channel", &Identity{UserID: "1", Publish: []string{"*"}}, "a/b", false},
		{"nil identity", nil, "lobby", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.id.CanPublish(tt.channel); got != tt.want {
				t.Errorf("CanPublish(%q): got %v, want %v", tt.channel, got, tt.want)
			}
		})
	}
}

func TestMemberOf(t *testing.T) {
	id := &Identity{UserID: "1", Projects: []string{"7", "acme"}}
	tests := []struct {
		name    string
		id      *Identity
		project string
		want    bool
	}{
		{"numeric member", id, "7", true},
		{"string member", id, "acme", true},
		{"not a member", id, "8", false},
		{"empty id", id, "", false},
		{"nil identity", nil, "7", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.id.MemberOf(tt.project); got != tt.want {
				t.Errorf("MemberOf(%q): got %v, want %v", tt.project, got, tt.want)
			}
		})
	}
}
