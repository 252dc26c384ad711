package main

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/auth"
)

// streamLimits lifts the per-client limits: these tests open every stream as
// one user from one address.
var streamLimits = map[string]string{
	"RELAY_MAX_CONNS_PER_USER": "1000000", "RELAY_MAX_CONNS_PER_IP": "1000000",
	"RELAY_CONNECT_RATE": "1000000", "RELAY_CONNECT_BURST": "1000000",
}

// endedStream is how one stream ended at a shutdown, and when.
type endedStream struct {
	at     time.Time
	ending string // "shutdown" (SSE, with its retry hint), "close 1001" (WebSocket), or what else came
	retry  string // the SSE retry hint of the ending
}

// openSSE opens an SSE stream on url and, in a goroutine owned by wg,
// reports its ending to ended once it is over.
func openSSE(t *testing.T, client *http.Client, url string, wg *sync.WaitGroup, ended chan<- endedStream) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("stream: got status %d, want 200", resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	for { // live once connection_established has come
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before its welcome: %v", err)
		}
		if strings.HasPrefix(line, "event: connection_established") {
			break
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer resp.Body.Close()
		var e endedStream
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				e.at = time.Now()
				ended <- e
				return
			}
			line = strings.TrimSpace(line)
			if name, ok := strings.CutPrefix(line, "event: "); ok {
				e.ending = name
			} else if retry, ok := strings.CutPrefix(line, "retry: "); ok {
				e.retry = retry
			}
		}
	}()
}

// openWS opens a WebSocket stream on url and reports its ending likewise.
func openWS(t *testing.T, url string, wg *sync.WaitGroup, ended chan<- endedStream) {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for { // live once connection_established has come
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("websocket ended before its welcome: %v", err)
		}
		if strings.Contains(string(msg), `"connection_established"`) {
			break
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer conn.Close()
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				e := endedStream{at: time.Now(), ending: err.Error()}
				var ce *websocket.CloseError
				if errors.As(err, &ce) && ce.Code == websocket.CloseGoingAway {
					e.ending = "close 1001"
				}
				ended <- e
				return
			}
		}
	}()
}

// TestShutdownSpreadsEndings: a relay process stopped by SIGTERM ends its
// streams over RELAY_SHUTDOWN_SPREAD, not all at once: no tenth of the
// window holds more than 30% of them (10% expected), each ends with the
// shutdown ending (SSE: the shutdown event and the base retry hint;
// WebSocket: close 1001), all within the shutdown timeout, and the process
// exits 0. With the spread at 0 they all end at once (within a generous
// 2 s), with the same endings.
func TestShutdownSpreadsEndings(t *testing.T) {
	if testing.Short() {
		t.Skip("starts relay processes")
	}
	for _, tc := range []struct {
		name   string
		spread time.Duration
	}{{"spread", 3 * time.Second}, {"at once", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			const perTransport = 100
			const timeout = 8 * time.Second
			env := map[string]string{"RELAY_JWT_SECRET": testSecret, "RELAY_SHUTDOWN_TIMEOUT": timeout.String(),
				"RELAY_SHUTDOWN_SPREAD": tc.spread.String(), "RELAY_LOG_LEVEL": "warn"}
			for k, v := range streamLimits {
				env[k] = v
			}
			url, cmd := startChild(t, env)
			tok := mint(t, auth.Identity{UserID: "7", Projects: []string{"3"}})
			path := "/events/projects/3/tickets?token=" + tok
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: -1}}
			defer client.CloseIdleConnections()
			var wg sync.WaitGroup
			ended := make(chan endedStream, 2*perTransport)
			for range perTransport {
				openSSE(t, client, url+path, &wg, ended)
				openWS(t, "ws"+strings.TrimPrefix(url, "http")+path, &wg, ended)
			}

			began := time.Now()
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("relay exited with %v after SIGTERM, want status 0", err)
				}
			case <-time.After(timeout + 5*time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("relay did not exit within %s of SIGTERM", timeout+5*time.Second)
			}
			wg.Wait()
			close(ended)

			window := max(tc.spread, 2*time.Second) // at once: all within 2 s
			var bins [10]int
			n := 0
			for e := range ended {
				n++
				switch {
				case e.ending == "shutdown" && e.retry != "2000":
					t.Errorf("SSE shutdown ending with retry %q, want the base 2000", e.retry)
				case e.ending != "shutdown" && e.ending != "close 1001":
					t.Errorf("a stream ended with %q, want the shutdown ending", e.ending)
				}
				d := e.at.Sub(began)
				if d > timeout {
					t.Errorf("a stream ended %s after SIGTERM, after the %s timeout", d, timeout)
				}
				bins[min(int(d*10/window), 9)]++
			}
			if n != 2*perTransport {
				t.Errorf("%d streams ended, want %d", n, 2*perTransport)
			}
			t.Logf("streams ended per tenth of %s after SIGTERM: %v", window, bins)
			busiest := 0
			for _, b := range bins {
				busiest = max(busiest, b)
			}
			switch {
			case tc.spread > 0 && busiest > n*3/10:
				t.Errorf("the busiest tenth of the %s spread held %d of %d endings, want at most 30%%", tc.spread, busiest, n)
			case tc.spread == 0 && bins[9] != 0:
				t.Errorf("with no spread, %d streams ended more than %s after SIGTERM", bins[9], window*9/10)
			}
		})
	}
}

// TestShutdownSpreadSetting: RELAY_SHUTDOWN_SPREAD must leave a second of
// RELAY_SHUTDOWN_TIMEOUT and stay within 300 s; its default shrinks to fit
// a short timeout rather than stop relay from starting.
func TestShutdownSpreadSetting(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		want    time.Duration
		wantErr string
	}{
		{env: map[string]string{}, want: 3 * time.Second},
		{env: map[string]string{"RELAY_SHUTDOWN_SPREAD": "0"}, want: 0},
		{env: map[string]string{"RELAY_SHUTDOWN_TIMEOUT": "2s"}, want: time.Second},
		{env: map[string]string{"RELAY_SHUTDOWN_TIMEOUT": "500ms"}, want: 0},
		{env: map[string]string{"RELAY_SHUTDOWN_TIMEOUT": "310s", "RELAY_SHUTDOWN_SPREAD": "300s"}, want: 300 * time.Second},
		{env: map[string]string{"RELAY_SHUTDOWN_TIMEOUT": "400s", "RELAY_SHUTDOWN_SPREAD": "301s"}, wantErr: "at most 5m0s"},
		{env: map[string]string{"RELAY_SHUTDOWN_SPREAD": "4s"}, wantErr: "does not fit RELAY_SHUTDOWN_TIMEOUT=4s"},
		{env: map[string]string{"RELAY_SHUTDOWN_SPREAD": "-1s"}, wantErr: "want a duration"},
		{env: map[string]string{"RELAY_SHUTDOWN_SPREAD": "soon"}, wantErr: "want a duration"},
	} {
		cfg, err := loadConfig(nil, func(k string) string { return tc.env[k] }, io.Discard)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v: got %v, want an error with %q", tc.env, err, tc.wantErr)
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.wantErr == "" && cfg.ShutdownSpread != tc.want:
			t.Errorf("%v: spread %s, want %s", tc.env, cfg.ShutdownSpread, tc.want)
		}
	}
}
