package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/store/redistest"
)

// runConnectRace: a client connecting with no cursor is live from its
// 200/101 on. Each round connects, publishes the instant the headers (SSE)
// or the 101 (WebSocket) arrive, and waits for that event.
func runConnectRace(t *testing.T, redis, ws bool) {
	c := newCluster(t, 1, redis, redistest.NoPersistence, nil)
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	pubTok := mint(t, auth.Identity{UserID: "backend", Publish: []string{"*"}})
	const workers, rounds = 8, 25
	var mu sync.Mutex
	lost, errs := 0, map[string]int{}
	var wg sync.WaitGroup
	for w := range workers {
		project := fmt.Sprint(w + 1)
		user := mint(t, auth.Identity{UserID: "1", Projects: []string{project}})
		wg.Go(func() {
			for n := range rounds {
				ok, err := raceRound(hc, c.relays[0].url, project, user, pubTok, n, ws)
				mu.Lock()
				switch {
				case err != nil:
					errs[err.Error()]++
				case !ok:
					lost++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%s: rounds=%d lost=%d errors=%v", t.Name(), workers*rounds, lost, errs)
	if lost > 0 {
		t.Errorf("%d of %d events published right after the %s were never delivered, want 0", lost, workers*rounds,
			map[bool]string{false: "200", true: "101"}[ws])
	}
	if len(errs) > 0 {
		t.Errorf("rounds that could not run: %v", errs)
	}
}

// raceRound connects live-only, publishes at once, and reports whether the
// event arrived within 3 s.
func raceRound(hc *http.Client, base, project, user, pubTok string, n int, ws bool) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	channel := "project_" + project + "_tickets"
	var next func() (string, error) // the next envelope id received
	if ws {
		conn, resp, err := (&websocket.Dialer{HandshakeTimeout: 3 * time.Second}).DialContext(ctx,
			"ws"+strings.TrimPrefix(base, "http")+"/ws/projects/"+project+"/tickets/?token="+user, nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			return false, fmt.Errorf("dial: %v", err)
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		next = func() (string, error) {
			_, msg, err := conn.ReadMessage()
			var m struct{ ID string }
			_ = json.Unmarshal(msg, &m)
			return m.ID, err
		}
	} else {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events/projects/"+project+"/tickets?token="+user, nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := hc.Do(req)
		if err != nil {
			return false, fmt.Errorf("connect: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("status %d", resp.StatusCode)
		}
		br := bufio.NewReader(resp.Body)
		next = func() (string, error) {
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return "", err
				}
				if d, ok := strings.CutPrefix(line, "data: "); ok {
					var m struct{ ID string }
					_ = json.Unmarshal([]byte(d), &m)
					return m.ID, nil
				}
			}
		}
	}
	// The client has its answer: publish now.
	id, err := postEvent(ctx, hc, base, pubTok, channel, n)
	if err != nil {
		return false, err
	}
	for {
		got, err := next()
		if err != nil {
			return false, nil // the deadline passed without the event
		}
		if got == id {
			return true, nil
		}
	}
}

// postEvent publishes one event and returns its id.
func postEvent(ctx context.Context, hc *http.Client, base, tok, channel string, n int) (string, error) {
	body := fmt.Sprintf(`{"channel":%q,"type":"fault","n":%d}`, channel, n)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/publish", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("publish: %v", err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("publish: status %d", resp.StatusCode)
	}
	return out.ID, nil
}
