package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relaydev/relay/auth"
)

func TestRunServesAndShutsDown(t *testing.T) {
	inst := start(t, map[string]string{"RELAY_JWT_SECRET": testSecret})
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(inst.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200", path, resp.StatusCode)
		}
	}
	tok := mint(t, auth.Identity{UserID: "7", Projects: []string{"3"}})
	s := openStream(t, inst.url+"/events/projects/3/tickets?token="+tok)
	id := publish(t, inst.url, "project_3_tickets", 1)
	if got := s.next(t); got["id"] != id {
		t.Errorf("event id: got %v, want %s", got["id"], id)
	}

	inst.stop(t)
	select {
	case name := <-s.names:
		if name != "shutdown" {
			t.Errorf("named event at shutdown: got %q, want shutdown", name)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no shutdown event")
	}
	select {
	case <-s.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("stream did not end at shutdown")
	}
}

func TestRunReturnsBindError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	env := map[string]string{"RELAY_ADDR": ln.Addr().String(), "RELAY_JWT_SECRET": testSecret}
	err = run(context.Background(), []string{"relay"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "RELAY_ADDR") {
		t.Errorf("got %v, want a listen error that names RELAY_ADDR", err)
	}
}

func TestConfigPrecedence(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"default", map[string]string{}, nil, ":8080"},
		{"PORT", map[string]string{"PORT": "9000"}, nil, ":9000"},
		{"RELAY_ADDR beats PORT", map[string]string{"PORT": "9000", "RELAY_ADDR": "127.0.0.1:7000"}, nil, "127.0.0.1:7000"},
		{"flag beats env", map[string]string{"RELAY_ADDR": ":1"}, []string{"-addr", ":2"}, ":2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Addr != tt.want {
				t.Errorf("addr: got %q, want %q", cfg.Addr, tt.want)
			}
		})
	}
	_, err := loadConfig(nil, func(k string) string { return map[string]string{"RELAY_HEARTBEAT": "soon"}[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "RELAY_HEARTBEAT") {
		t.Errorf("bad duration: got %v, want an error naming RELAY_HEARTBEAT", err)
	}
}

func TestDevModePrintsToken(t *testing.T) {
	inst := start(t, map[string]string{})
	out := inst.out.String()
	_, rest, ok := strings.Cut(out, "valid 8h:\n  ")
	if !ok {
		t.Fatalf("dev hint missing from output:\n%s", out)
	}
	tok, _, _ := strings.Cut(rest, "\n")
	s := openStream(t, inst.url+"/events/notifications?token="+tok)
	req, _ := http.NewRequest(http.MethodPost, inst.url+"/api/publish",
		strings.NewReader(`{"channel":"user_1_notifications","type":"notification","data":{"title":"hi"}}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := s.next(t); got["type"] != "notification" {
		t.Errorf("got %v, want the published notification", got)
	}
}

func TestTokenAndPublishCommands(t *testing.T) {
	inst := start(t, map[string]string{"RELAY_JWT_SECRET": testSecret})
	env := map[string]string{"RELAY_JWT_SECRET": testSecret, "RELAY_URL": inst.url}
	getenv := func(k string) string { return env[k] }

	var out bytes.Buffer
	if err := run(context.Background(), []string{"relay", "token", "--sub", "1", "--name", "alice", "--projects", "1,2"}, getenv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	v, _ := auth.NewVerifier([]byte(testSecret))
	id, err := v.Verify(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("minted token does not verify: %v", err)
	}
	if id.UserID != "1" || id.Name != "alice" || len(id.Projects) != 2 {
		t.Errorf("identity: got %+v", id)
	}

	s := openStream(t, inst.url+"/events/notifications?token="+strings.TrimSpace(out.String()))
	out.Reset()
	err = run(context.Background(), []string{"relay", "publish", "--channel", "user_1_notifications", "--type", "notification", "--data", `{"title":"x"}`}, getenv, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := s.next(t)
	if !strings.Contains(out.String(), got["id"].(string)) {
		t.Errorf("publish printed %q, want the id %v subscribers see", out.String(), got["id"])
	}
	if err := run(context.Background(), []string{"relay", "publish", "--channel", "x"}, getenv, io.Discard, io.Discard); err == nil {
		t.Error("publish without --type: got nil error")
	}
}
