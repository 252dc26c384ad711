package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/store/redistest"
)

// presenceWatch is a user online on one relay, through a presence stream
// that reconnects like a browser, recording every user_status it sees.
type presenceWatch struct {
	sub *subscriber
	mu  sync.Mutex
	log []presenceChange
}

type presenceChange struct {
	at           time.Time
	action, user string
}

func watchPresence(t *testing.T, ctx context.Context, wg *sync.WaitGroup, hc *http.Client, r *relayProc, id, name string) *presenceWatch {
	t.Helper()
	tok := mint(t, auth.Identity{UserID: id, Name: name, Projects: []string{"1"}})
	w := &presenceWatch{}
	s := newSubscriber("presence-"+name, false, "/events/projects/1/presence", tok, func() []string { return []string{r.url} }, hc, nil)
	s.onEnv = func(m map[string]any) {
		if m["type"] != "user_status" {
			return
		}
		a, _ := m["action"].(string)
		u, _ := m["user_id"].(string)
		w.mu.Lock()
		w.log = append(w.log, presenceChange{time.Now(), a, u})
		w.mu.Unlock()
	}
	w.sub = s
	wg.Go(func() { s.run(ctx) })
	return w
}

// first returns when action for user was first seen after since.
func (w *presenceWatch) first(action, user string, since time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.log {
		if c.action == action && c.user == user && !c.at.Before(since) {
			return c.at, true
		}
	}
	return time.Time{}, false
}

// last is the last action seen for user ("" if none).
func (w *presenceWatch) last(user string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.log) - 1; i >= 0; i-- {
		if w.log[i].user == user {
			return w.log[i].action
		}
	}
	return ""
}

// onlineAt lists the user ids GET /api/projects/1/presence answers on r.
func onlineAt(hc *http.Client, r *relayProc, tok string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/api/projects/1/presence", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st struct {
		Users []struct {
			UserID string `json:"user_id"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET presence: status %d", resp.StatusCode)
	}
	var ids []string
	for _, u := range st.Users {
		ids = append(ids, u.UserID)
	}
	slices.Sort(ids)
	return ids, nil
}

// pollBoth waits until both relays list users 1 and 2, and returns when.
func pollBoth(hc *http.Client, c *cluster, tok string, within time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		ok := true
		for _, r := range c.relays {
			ids, err := onlineAt(hc, r, tok)
			ok = ok && err == nil && slices.Equal(ids, []string{"1", "2"})
		}
		if ok {
			return time.Now(), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Time{}, false
}

const presenceTTL = 3 * time.Second

func presenceCluster(t *testing.T) (*cluster, *http.Client, context.Context, *sync.WaitGroup) {
	t.Helper()
	c := newCluster(t, 2, true, redistest.NoPersistence, map[string]string{
		"RELAY_PRESENCE_TTL": presenceTTL.String(), "RELAY_PRESENCE_GRACE": "2s",
	})
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithCancel(context.Background())
	wg := &sync.WaitGroup{}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return c, &http.Client{Transport: tr}, ctx, wg
}

// runPresenceKill: alice is online through relay B, bob through relay A; B
// is killed with SIGKILL; A must announce alice left within the TTL plus a
// third (the documented bound).
func runPresenceKill(t *testing.T) {
	c, hc, ctx, wg := presenceCluster(t)
	bob := watchPresence(t, ctx, wg, hc, c.relays[0], "2", "bob")
	watchPresence(t, ctx, wg, hc, c.relays[1], "1", "alice")
	tok := mint(t, auth.Identity{UserID: "2", Projects: []string{"1"}})
	if _, ok := pollBoth(hc, c, tok, 10*time.Second); !ok {
		t.Fatal("alice and bob were not both online on both relays within 10s")
	}
	killed := time.Now()
	c.relays[1].kill(t)
	bound := presenceTTL + presenceTTL/3
	deadline := time.Now().Add(bound + 2*time.Second)
	var at time.Time
	for ok := false; !ok && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		at, ok = bob.first("left", "1", killed)
	}
	if at.IsZero() {
		t.Fatalf("relay A never announced alice left after her relay was killed (bound %s)", bound)
	}
	t.Logf("%s: alice announced left %s after relay B's SIGKILL (TTL %s, bound %s)", t.Name(),
		at.Sub(killed).Round(10*time.Millisecond), presenceTTL, bound)
	if at.Sub(killed) > bound+time.Second { // a second for scheduling on a loaded machine
		t.Errorf("left announced after %s, want within %s", at.Sub(killed), bound)
	}
}

// runPresenceOutage: alice on relay A, bob on relay B, both connected
// throughout; Redis is down (restarted empty) or stalled (SIGSTOP) longer
// than the TTL. Within one heartbeat (TTL/3) of Redis answering, both relays
// must list both users again, and a user announced left must be announced
// joined again.
func runPresenceOutage(t *testing.T, paused bool) {
	c, hc, ctx, wg := presenceCluster(t)
	alice := watchPresence(t, ctx, wg, hc, c.relays[0], "1", "alice")
	bob := watchPresence(t, ctx, wg, hc, c.relays[1], "2", "bob")
	tok := mint(t, auth.Identity{UserID: "2", Projects: []string{"1"}})
	if _, ok := pollBoth(hc, c, tok, 10*time.Second); !ok {
		t.Fatal("alice and bob were not both online on both relays within 10s")
	}
	if paused {
		c.redis.Pause(t)
		time.Sleep(presenceTTL + time.Second) // the outage itself
		c.redis.Resume(t)
	} else {
		c.redis.Stop(t)
		time.Sleep(presenceTTL + time.Second)
		c.redis.Start(t)
	}
	back := time.Now()
	heartbeat := presenceTTL / 3
	at, ok := pollBoth(hc, c, tok, heartbeat+10*time.Second)
	if !ok {
		for _, r := range c.relays {
			ids, err := onlineAt(hc, r, tok)
			t.Logf("%s lists %v (%v)", r.name, ids, err)
		}
		t.Fatalf("presence did not list both users on both relays within %s of Redis answering", heartbeat+10*time.Second)
	}
	took := at.Sub(back)
	t.Logf("%s: both users listed on both relays %s after Redis answered (heartbeat %s)", t.Name(), took.Round(10*time.Millisecond), heartbeat)
	if took > heartbeat+time.Second {
		t.Errorf("presence came back after %s, want within one heartbeat (%s) plus 1s", took, heartbeat)
	}
	// Whoever was announced left while still connected is announced joined.
	deadline := time.Now().Add(heartbeat + 2*time.Second)
	for _, w := range []*presenceWatch{alice, bob} {
		for _, user := range []string{"1", "2"} {
			for w.last(user) == "left" && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if w.last(user) == "left" {
				t.Errorf("%s's last word on user %s is left, but the user is still connected", w.sub.name, user)
			}
		}
	}
}
