package transport

import (
	"errors"
	"testing"
)

// TestRegistryRemembersDisconnects: add refuses a stream that a disconnect
// since its mark covers, and one that began before the oldest disconnect it
// remembers (it cannot tell, so the client reconnects and is asked again).
func TestRegistryRemembersDisconnects(t *testing.T) {
	ended := errors.New("ended")
	r := newRegistry()
	since := r.mark()
	r.disconnect("7", []string{"project_1_tickets"}, ended)
	for _, tc := range []struct {
		name     string
		user     string
		channels []string
		want     error
	}{
		{"covered channel", "7", []string{"project_2_tickets", "project_1_tickets"}, ended},
		{"other channel", "7", []string{"project_2_tickets"}, nil},
		{"other user", "8", []string{"project_1_tickets"}, nil},
	} {
		l, err := r.add(tc.user, tc.channels, since)
		if !errors.Is(err, tc.want) || (err == nil) != (l != nil) {
			t.Errorf("%s: got %v, %v, want %v", tc.name, l, err, tc.want)
		}
	}
	if _, err := r.add("7", []string{"project_1_tickets"}, r.mark()); err != nil {
		t.Errorf("a stream begun after the disconnect: got %v, want it added", err)
	}

	old := r.mark()
	for range recentDisconnects + 1 {
		r.disconnect("9", nil, ended)
	}
	if _, err := r.add("7", []string{"project_1_tickets"}, old); !errors.Is(err, errRestarting) {
		t.Errorf("a stream older than every remembered disconnect: got %v, want errRestarting", err)
	}
	if _, err := r.add("7", []string{"project_1_tickets"}, old+1); err != nil {
		t.Errorf("a stream within the remembered disconnects, none its own: got %v, want it added", err)
	}
}
