package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// bareServer serves a bare broadcaster on a real listener; seen collects
// the source address of every request.
func bareServer(t *testing.T) (*benchTarget, *addrSet, *bareBroadcaster) {
	t.Helper()
	b := newBareBroadcaster()
	seen := &addrSet{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			seen.add(r.RemoteAddr)
		}
		b.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		b.close() // ends every stream, so Close does not wait on one
		ts.Close()
		b.conns.Wait()
	})
	return &benchTarget{name: "bare", url: ts.URL, bare: true}, seen, b
}

func (b *bareBroadcaster) subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

type addrSet struct {
	mu    sync.Mutex
	addrs []string
}

func (s *addrSet) add(remote string) {
	ap, err := netip.ParseAddrPort(remote)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.addrs = append(s.addrs, "bad "+remote)
		return
	}
	s.addrs = append(s.addrs, ap.Addr().String())
}

func (s *addrSet) sorted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(slices.Values(s.addrs))
}

func TestBareBroadcasterDelivers(t *testing.T) {
	target, _, _ := bareServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := newBenchNet(2, streamsPerAddr)
	defer n.close()
	var streams []benchStream
	for i, tr := range []string{transportSSE, transportWS} {
		s, err := n.open(ctx, i, tr, target.url+streamPath(tr, "1"))
		if err != nil {
			t.Fatalf("%s: %v", tr, err)
		}
		defer s.close()
		if err := awaitWelcome(s); err != nil {
			t.Fatalf("%s: %v", tr, err)
		}
		streams = append(streams, s)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	var sent []string
	for k := range 3 {
		body := fmt.Sprintf(`{"channel":"c","type":"bench","data":{"n":%d}}`, k)
		answer, err := post(ctx, client, target, "bare", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"id":"%d"}`, k+1); string(answer) != want {
			t.Errorf("publish %d answered %s, want %s", k, answer, want)
		}
		sent = append(sent, body)
	}
	for i, s := range streams {
		for k, want := range sent {
			data, welcome, err := s.next()
			if err != nil {
				t.Fatalf("stream %d, event %d: %v", i, k, err)
			}
			if welcome || string(data) != want {
				t.Errorf("stream %d, event %d: got %q (welcome %v), want %q", i, k, data, welcome, want)
			}
		}
	}
}

func TestBareBroadcasterDropsAStoppedReader(t *testing.T) {
	target, _, b := bareServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := newBenchNet(1, streamsPerAddr)
	defer n.close()
	s, err := n.open(ctx, 0, transportWS, target.url+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := awaitWelcome(s); err != nil {
		t.Fatal(err)
	}
	// Not reading: the socket buffers fill, then the queue, and the
	// subscriber is dropped, which ends its stream with close 4008.
	client := &http.Client{}
	defer client.CloseIdleConnections()
	body := []byte(`{"pad":"` + strings.Repeat("x", 16<<10) + `"}`)
	for sent := 0; b.subscribers() > 0; sent++ {
		if sent > 100_000 {
			t.Fatal("a reader that stopped was never dropped")
		}
		if _, err := post(ctx, client, target, "bare", body); err != nil {
			t.Fatal(err)
		}
	}
	for {
		if _, _, err := s.next(); err != nil {
			if !websocket.IsCloseError(err, 4008) {
				t.Errorf("stream ended with %v, want close 4008", err)
			}
			return
		}
	}
}

func TestBareCmdServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- bareCmd(ctx, nil, pw); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	_, url, ok := strings.Cut(strings.TrimSpace(line), "listening on ")
	if err != nil || !ok {
		cancel()
		t.Fatalf("first line %q, %v; want its URL", line, err)
	}
	n := newBenchNet(1, streamsPerAddr)
	defer n.close()
	s, err := n.open(ctx, 0, transportSSE, url+"/events")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer s.close()
	if err := awaitWelcome(s); err != nil {
		t.Error(err)
	}
	cancel() // as SIGTERM does: the open stream must not hold the shutdown
	if err := <-done; err != nil {
		t.Errorf("bareCmd returned %v, want nil", err)
	}
	if err := bareCmd(context.Background(), []string{"x"}, io.Discard); err == nil {
		t.Error("bareCmd took an argument, want an error")
	}
}

func TestSourceAddrs(t *testing.T) {
	tests := []struct {
		streams, perAddr int
		want             []string
	}{
		{1, 5000, []string{"127.0.0.2"}},
		{5000, 5000, []string{"127.0.0.2"}},
		{5001, 5000, []string{"127.0.0.2", "127.0.0.3"}},
		{18000, 5000, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}},
		{0, 5000, []string{"127.0.0.2"}},
	}
	for _, tc := range tests {
		var got []string
		for _, a := range sourceAddrs(tc.streams, tc.perAddr) {
			got = append(got, a.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("sourceAddrs(%d, %d) = %q, want %q", tc.streams, tc.perAddr, got, tc.want)
		}
	}
	if got := sourceAddrs(1<<20, 1); len(got) != maxSourceAddrs || got[len(got)-1].String() != "127.0.0.251" {
		t.Errorf("a million streams, one per address: %d addresses up to %s, want %d up to 127.0.0.251", len(got), got[len(got)-1], maxSourceAddrs)
	}
}

func TestStreamsSpreadOverSourceAddrs(t *testing.T) {
	target, seen, _ := bareServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := newBenchNet(6, 2) // three addresses, two streams each
	defer n.close()
	for i := range 6 {
		tr := []string{transportSSE, transportWS}[i%2]
		s, err := n.open(ctx, i, tr, target.url+streamPath(tr, "1"))
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		defer s.close()
		if err := awaitWelcome(s); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3", "127.0.0.4", "127.0.0.4"}
	if got := seen.sorted(); !slices.Equal(got, want) {
		t.Errorf("the server saw streams from %q, want %q", got, want)
	}
}

// TestBareBroadcasterFrames: the frames the bare broadcaster encodes itself
// read as the messages published, whatever the length's encoding (7, 16 or
// 64 bits).
func TestBareBroadcasterFrames(t *testing.T) {
	target, _, b := bareServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(target.url, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, welcome, err := conn.ReadMessage(); err != nil || string(welcome) != bareWelcome {
		t.Fatalf("welcome: %q, %v", welcome, err)
	}
	for b.subscribers() == 0 {
		time.Sleep(time.Millisecond)
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	var sent [][]byte
	for _, n := range []int{1, 125, 126, 0xFFFF, 0x10000, 0} {
		body := []byte(strings.Repeat(string(rune('a'+len(sent))), n))
		if _, err := post(ctx, client, target, "bare", body); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, body)
	}
	for i, want := range sent {
		typ, got, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("message %d (%d bytes): %v", i, len(want), err)
		}
		if typ != websocket.TextMessage || string(got) != string(want) {
			t.Errorf("message %d: got type %d and %d bytes, want a text message of %d", i, typ, len(got), len(want))
		}
	}
}
