package transport_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/transport"
)

// TestTypingFlood: one member's socket sends typing changes as fast as it
// can. The other members receive at most the connection's bucket of them
// and stay connected; the flooder is told rate_limited, then closed 4029.
func TestTypingFlood(t *testing.T) {
	const members = 10
	r := startRelay(t, withFastPresence())
	var watchers []*client
	for i := range members {
		c := mustConnect(t, wsKind, presenceURL(r, wsKind, userTok(t, strconv.Itoa(100+i))), nil)
		c.live(t)
		watchers = append(watchers, c)
	}
	flooder, _, err := websocket.DefaultDialer.Dial(wsURL(presenceURL(r, wsKind, alice(t))), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer flooder.Close()

	type end struct {
		limited int
		code    int
	}
	ended := make(chan end, 1)
	go func() {
		var e end
		for {
			_, raw, err := flooder.ReadMessage()
			if ce, ok := err.(*websocket.CloseError); ok {
				e.code = ce.Code
			}
			if err != nil {
				ended <- e
				return
			}
			if strings.Contains(string(raw), `"rate_limited"`) {
				e.limited++
			}
		}
	}()
	start := time.Now()
	sent := 0
	for ; sent < 20000; sent++ {
		msg := fmt.Sprintf(`{"type":"typing","ticket_id":5,"is_typing":%t}`, sent%2 == 0)
		if err := flooder.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			break
		}
	}
	var e end
	select {
	case e = <-ended:
	case <-time.After(wait):
		t.Fatalf("the flooder is still connected %v after %d messages", wait, sent)
	}
	took := time.Since(start)
	if e.code != transport.CloseRateLimited || e.limited == 0 {
		t.Errorf("flooder: got close %d after %d rate_limited errors, want close %d after at least one", e.code, e.limited, transport.CloseRateLimited)
	}

	// Every watcher is still connected: it gets an event published now,
	// and counts alice's typing messages before it.
	check := r.mustPublish(t, "project_1_presence", "check", nil)
	limit := transport.DefaultActionBurst + int(took.Seconds()*transport.DefaultActionRate) + 1
	for i, w := range watchers {
		typing := 0
		for {
			m := w.next(t)
			if m.envID() == check {
				break
			}
			if typeOf(m) == "typing" && m.Env["user_id"] == "1" {
				typing++
			}
		}
		if typing > limit {
			t.Errorf("watcher %d: got %d typing messages in %v, want at most %d", i, typing, took, limit)
		}
		if i == 0 {
			t.Logf("flooder sent %d typing messages in %v, got %d rate_limited errors, closed %d; each of %d watchers got %d (%.0f/s) and stayed connected",
				sent, took, e.limited, e.code, members, typing, float64(typing)/took.Seconds())
		}
	}
}

// TestTypingCoalesced: an unchanged typing state sent again and again is
// broadcast once; a change is broadcast at once.
func TestTypingCoalesced(t *testing.T) {
	r := startRelay(t, withFastPresence())
	bob := mustConnect(t, wsKind, presenceURL(r, wsKind, bobTok(t)), nil)
	bob.live(t)
	conn, _, err := websocket.DefaultDialer.Dial(wsURL(presenceURL(r, wsKind, alice(t))), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	isTyping := func(m msg) bool { return typeOf(m) == "typing" && m.Env["user_id"] == "1" }
	for range 8 {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"typing","ticket_id":5,"is_typing":true}`)); err != nil {
			t.Fatal(err)
		}
	}
	bob.until(t, "alice typing", isTyping)
	// Within the repeat window (a third of the 500 ms typing timeout) the
	// seven repeats are not broadcast.
	bob.quiet(t, testTyping/4, "a repeated typing state", isTyping)
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"typing","ticket_id":5,"is_typing":false}`)); err != nil {
		t.Fatal(err)
	}
	if m := bob.until(t, "alice stopped typing", isTyping); m.Env["is_typing"] != false {
		t.Errorf("after a change: got %v, want is_typing false", m.Env)
	}
}

// TestActionRateHTTP: the HTTP action endpoints share the user's action
// bucket: past it, 429 rate_limited with Retry-After.
func TestActionRateHTTP(t *testing.T) {
	const burst = 5
	r := startRelay(t, withLimits(func(l *transport.Limits) {
		l.UserActionRate = 1
		l.UserActionBurst = burst
	}))
	post := func(path, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, r.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+alice(t))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for i := range burst {
		if resp := post("/api/projects/1/presence", `{"type":"viewing","ticket_id":5}`); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("action %d: got %d %s, want 204", i, resp.StatusCode, readAll(t, resp.Body))
		}
	}
	for _, tc := range []struct{ path, body string }{
		{"/api/projects/1/presence", `{"type":"viewing","ticket_id":6}`},
		{"/api/notifications/read", `{"all":true}`},
	} {
		resp := post(tc.path, tc.body)
		if got := errorJSON(t, resp); resp.StatusCode != http.StatusTooManyRequests || got != "rate_limited" {
			t.Errorf("%s past the bucket: got %d %q, want 429 rate_limited", tc.path, resp.StatusCode, got)
		}
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("%s: Retry-After %q, want whole seconds", tc.path, resp.Header.Get("Retry-After"))
		}
	}
}

// TestActionRateWebSocket: a ping past the connection's bucket is answered
// rate_limited and the connection stays open.
func TestActionRateWebSocket(t *testing.T) {
	r := startRelay(t, withLimits(func(l *transport.Limits) {
		l.ActionRate = 1
		l.ActionBurst = 2
	}))
	conn, _, err := wsDial(t, r.url+"/ws/notifications/?token="+alice(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m := wsNext(t, conn); m["type"] != "connection_established" {
		t.Fatalf("first message: got %v", m)
	}
	for i := range 3 {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"ping","timestamp":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []string{"pong", "pong", "error"} {
		m := wsNext(t, conn)
		if m["type"] != want {
			t.Fatalf("reply %d: got %v, want %s", i, m, want)
		}
		if want == "error" && (m["error"] != "rate_limited" || m["request"] != "ping" || m["message"] == "") {
			t.Errorf("refusal: got %v, want rate_limited for ping with a message", m)
		}
	}
	r.mustPublish(t, "user_1_notifications", "still_open", nil)
	if m := wsNext(t, conn); m["type"] != "still_open" {
		t.Errorf("after a refusal: got %v, want the next event", m)
	}
}

// TestWildcardOriginNoCookies: with RELAY_ALLOWED_ORIGINS=*, a foreign page
// may use a token it holds but never the browser's cookie, and gets no
// Access-Control-Allow-Credentials; an origin listed by name still may.
func TestWildcardOriginNoCookies(t *testing.T) {
	const foreign, listed = "https://evil.example", "https://app.example"
	r := startRelay(t, withConfig(func(c *transport.Config) { c.AllowedOrigins = []string{"*", listed} }))
	url := r.url + "/events/notifications"
	h := func(origin string, cookie bool) http.Header {
		hd := http.Header{"Origin": {origin}}
		if cookie {
			hd.Set("Cookie", "relay_token="+alice(t))
		}
		return hd
	}

	for _, kind := range kinds {
		c, resp, err := connect(t, kind, url, h(foreign, true))
		if err != nil {
			t.Fatal(err)
		}
		switch kind {
		case sseKind:
			if c != nil || resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("sse, foreign origin with a cookie: got %d, want 401", statusOf(resp))
			} else if msg := readAll(t, resp.Body); !strings.Contains(msg, "cookie") {
				t.Errorf("sse refusal %s: want it to say why (the cookie)", msg)
			}
			if v := resp.Header.Get("Access-Control-Allow-Credentials"); v != "" {
				t.Errorf("sse refusal: Access-Control-Allow-Credentials %q, want none", v)
			}
		case wsKind:
			if c == nil {
				t.Fatalf("ws, foreign origin with a cookie: handshake refused %d, want close 4001", statusOf(resp))
			}
			c.ended(t)
			if c.code != transport.CloseUnauthorized {
				t.Errorf("ws, foreign origin with a cookie: got close %d, want %d", c.code, transport.CloseUnauthorized)
			}
		}
		mustConnect(t, kind, q(url, "token", alice(t)), h(foreign, false)).live(t)
		mustConnect(t, kind, url, h(listed, true)).live(t)
	}

	for _, tc := range []struct {
		origin, method string
		cookie         bool
		creds          string
	}{
		{foreign, http.MethodGet, false, ""},
		{foreign, http.MethodOptions, false, ""},
		{"null", http.MethodGet, false, ""},
		{listed, http.MethodGet, true, "true"},
		{listed, http.MethodOptions, false, "true"},
	} {
		req, _ := http.NewRequest(tc.method, url+"?token="+alice(t), nil)
		req.Header = h(tc.origin, tc.cookie)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 || resp.Header.Get("Access-Control-Allow-Origin") != tc.origin ||
			resp.Header.Get("Access-Control-Allow-Credentials") != tc.creds {
			t.Errorf("%s from %s: got %d, Allow-Origin %q, Allow-Credentials %q; want 2xx, %q, %q", tc.method, tc.origin, resp.StatusCode,
				resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Access-Control-Allow-Credentials"), tc.origin, tc.creds)
		}
	}
}

// TestSlowBody: a POST whose body trickles in is cut at the body deadline
// with 408 and its connection closed; a prompt one is served, and streams,
// which have no body, outlive the deadline.
func TestSlowBody(t *testing.T) {
	const deadline = 300 * time.Millisecond
	r := startRelay(t, withConfig(func(c *transport.Config) {
		c.Limits.BodyTimeout = deadline
		c.Heartbeat = 50 * time.Millisecond
	}))
	for _, path := range []string{"/api/publish", "/api/notifications/read", "/api/projects/1/presence"} {
		t.Run(strings.TrimPrefix(path, "/api/"), func(t *testing.T) {
			conn, err := net.Dial("tcp", r.ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			head := "POST " + path + " HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer " + alice(t) +
				"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
			if _, err := io.WriteString(conn, head); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			stop := make(chan struct{})
			trickled := make(chan struct{})
			go func() { // a byte every 100 ms until the server answers
				defer close(trickled)
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := io.WriteString(conn, " "); err != nil {
							return
						}
					}
				}
			}()
			_ = conn.SetReadDeadline(time.Now().Add(wait))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			close(stop)
			<-trickled
			if err != nil {
				t.Fatalf("trickling body: no answer within %v: %v", wait, err)
			}
			took := time.Since(start)
			if got := errorJSON(t, resp); resp.StatusCode != http.StatusRequestTimeout || got != "request_timeout" {
				t.Errorf("trickling body: got %d %q, want 408 request_timeout", resp.StatusCode, got)
			}
			if took > deadline+time.Second {
				t.Errorf("trickling body answered after %v, want about %v", took, deadline)
			}
			if _, err := br.ReadByte(); err == nil {
				t.Error("the connection is still open after the 408, want it closed")
			}
		})
	}
	// A stream outlives the body deadline: heartbeats for twice as long, then an event.
	c, _ := openSSE(t, r.url+"/events/notifications?token="+alice(t), nil)
	start := time.Now()
	for time.Since(start) < 2*deadline {
		c.frame(t)
	}
	id := r.mustPublish(t, "user_1_notifications", "after", nil)
	for {
		if f := c.next(t); f.ID == id {
			break
		}
	}
	if st, _ := r.publish(t, publisher(t), `{"channel":"user_1_notifications","type":"prompt"}`); st != http.StatusOK {
		t.Errorf("a prompt publish: got %d, want 200", st)
	}
}

// TestTypingSustained: a member sending typing changes at 5 times the
// connection's rate for 2 s is held to its rate (bursts of ActionBurst, then
// ActionRate a second) and, below the hard limit's pace, stays connected.
func TestTypingSustained(t *testing.T) {
	const pace, span = 50, 2 * time.Second
	r := startRelay(t, withFastPresence())
	bob := mustConnect(t, wsKind, presenceURL(r, wsKind, bobTok(t)), nil)
	bob.live(t)
	conn, _, err := websocket.DefaultDialer.Dial(wsURL(presenceURL(r, wsKind, alice(t))), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() { // alice's replies: rate_limited errors
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(time.Second / pace)
	defer tick.Stop()
	start := time.Now()
	sent := 0
	for time.Since(start) < span {
		<-tick.C
		msg := fmt.Sprintf(`{"type":"typing","ticket_id":5,"is_typing":%t}`, sent%2 == 0)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatalf("after %d messages: %v", sent, err)
		}
		sent++
	}
	took := time.Since(start)
	check := r.mustPublish(t, "project_1_presence", "check", nil)
	typing := 0
	for {
		m := bob.next(t)
		if m.envID() == check {
			break
		}
		if typeOf(m) == "typing" && m.Env["user_id"] == "1" {
			typing++
		}
	}
	limit := transport.DefaultActionBurst + int(took.Seconds()*transport.DefaultActionRate) + 1
	if typing > limit {
		t.Errorf("got %d typing messages in %v, want at most %d", typing, took, limit)
	}
	t.Logf("alice sent %d typing changes in %v (%.0f/s); bob received %d (%.1f/s; limit %d a second after a burst of %d)",
		sent, took.Round(time.Millisecond), float64(sent)/took.Seconds(), typing, float64(typing)/took.Seconds(), transport.DefaultActionRate, transport.DefaultActionBurst)
}
