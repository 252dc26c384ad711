package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/store/redistest"
)

// childEnv marks a test binary started as a relay process of its own.
const childEnv = "RELAY_TEST_CHILD"

// startChild starts this test binary as a separate relay process (see
// TestMain), so a test can kill it with SIGKILL, and returns its URL.
func startChild(t *testing.T, env map[string]string) (url string, cmd *exec.Cmd) {
	t.Helper()
	cmd = exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1", "RELAY_ADDR=127.0.0.1:0")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	_, rest, ok := strings.Cut(line, "listening on ")
	if err != nil || !ok {
		t.Fatalf("child relay did not start: %q %v", line, err)
	}
	url, _, _ = strings.Cut(rest, " ")
	return url, cmd
}

// waitFor reads s until an event matching want arrives.
func waitEvent(t *testing.T, s *stream, what string, within time.Duration, want func(map[string]any) bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case d := <-s.data:
			var m map[string]any
			if json.Unmarshal([]byte(d), &m) == nil && want(m) {
				return
			}
		case <-deadline:
			t.Fatalf("no %s within %s", what, within)
		}
	}
}

func userStatus(action, user string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		return m["type"] == "user_status" && m["action"] == action && m["user_id"] == user
	}
}

// Two relay processes share presence through Redis; when one is killed with
// SIGKILL, the other announces its users as left.
func TestPresenceAcrossProcessesAndKill(t *testing.T) {
	env := map[string]string{
		"RELAY_JWT_SECRET": testSecret, "REDIS_URL": redistest.URL(t), "RELAY_REDIS_PREFIX": redistest.Prefix(t),
		"RELAY_PRESENCE_TTL": "2s", "RELAY_PRESENCE_GRACE": "300ms",
	}
	a := start(t, env)
	childURL, child := startChild(t, env)

	bob := mint(t, auth.Identity{UserID: "2", Name: "bob", Projects: []string{"1"}})
	alice := mint(t, auth.Identity{UserID: "1", Name: "alice", Projects: []string{"1"}})
	onA := openStream(t, a.url+"/events/projects/1/presence?token="+bob)
	openStream(t, childURL+"/events/projects/1/presence?token="+alice)
	waitEvent(t, onA, "alice joining (on the other process)", 5*time.Second, userStatus("joined", "1"))

	req, _ := http.NewRequest(http.MethodGet, a.url+"/api/projects/1/presence", nil)
	req.Header.Set("Authorization", "Bearer "+bob)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		Users []struct {
			UserID string `json:"user_id"`
		}
	}
	_ = json.NewDecoder(resp.Body).Decode(&state)
	resp.Body.Close()
	if len(state.Users) != 2 {
		t.Errorf("users seen by process A: got %+v, want alice and bob", state.Users)
	}

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Holds last 2 s, sweeps run every 2/3 s: alice leaves within 2.7 s.
	waitEvent(t, onA, "alice announced as left after her process died", 6*time.Second, userStatus("left", "1"))
}
