package transport

import (
	"context"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
)

// beatWire is a wire that records when heartbeats are written.
type beatWire struct{ beats []time.Time }

func (w *beatWire) Event(*events.Event) error { return nil }
func (w *beatWire) Reset(string) error        { return nil }
func (w *beatWire) start() error              { return nil }
func (w *beatWire) welcome([]byte) error      { return nil }
func (w *beatWire) heartbeat() error          { w.beats = append(w.beats, time.Now()); return nil }
func (w *beatWire) tryBeat() bool             { return false } // the session writes each
func (w *beatWire) reply([]byte) error        { return nil }
func (w *beatWire) flush() error              { return nil }
func (w *beatWire) end(ending) error          { return nil }

// TestHeartbeatGrid runs idle sessions that went live at different moments
// of one heartbeat slot, and moments apart: each sends its heartbeats at
// most Heartbeat apart (the first at most Heartbeat after it went live) and
// at most a slot sooner, and streams that went live within one slot beat
// at the same moments, so that their timers fire together.
func TestHeartbeatGrid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const heartbeat = 15 * time.Second
		slot := heartbeat / beatSlots
		mem := store.NewMemory(events.Retention{})
		defer mem.Close()
		hub := events.NewHub(mem, events.HubOptions{})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		if err := hub.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer hub.Close()
		cfg := Config{Heartbeat: heartbeat, KeepPastExpiry: true}.withDefaults()
		beats := newBeater(heartbeat)

		// Offsets into the test's time at which each session goes live:
		// the first three within one slot, the last far from them.
		time.Sleep(slot - time.Duration(time.Now().UnixNano()%int64(slot))) // to a slot's start
		offsets := []time.Duration{slot / 10, slot / 2, slot - slot/10, 7*slot + slot/3}
		wires := make([]*beatWire, len(offsets))
		lives := make([]time.Time, len(offsets))
		done := make(chan error, len(offsets))
		start := time.Now()
		for i, off := range offsets {
			time.Sleep(start.Add(off).Sub(time.Now()))
			sub, err := hub.Subscribe(ctx, []string{"project_1_tickets"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			wires[i] = &beatWire{}
			ss := &session{w: wires[i], sub: sub, cfg: &cfg, beats: beats,
				metrics: NewMetrics(), ended: &liveStream{done: make(chan struct{})}}
			lives[i] = time.Now()
			ss.arm()
			go func() {
				err := ss.live(ctx, false)
				ss.disarm() // the last to leave the grid ends the beater's goroutine
				done <- err
			}()
		}
		time.Sleep(5*heartbeat + slot)
		cancel()
		for range offsets {
			if err := <-done; err != nil {
				t.Errorf("session ended with %v, want nil", err)
			}
		}

		for i, w := range wires {
			if len(w.beats) < 5 {
				t.Fatalf("session %d: %d heartbeats in 5 heartbeat intervals, want at least 5", i, len(w.beats))
			}
			prev := lives[i]
			for k, b := range w.beats {
				if gap := b.Sub(prev); gap > heartbeat || gap <= heartbeat-slot {
					t.Errorf("session %d, heartbeat %d: %v after the one before (or going live), want within (%v, %v]",
						i, k, gap, heartbeat-slot, heartbeat)
				}
				prev = b
			}
		}
		for i := 1; i < 3; i++ {
			if got, want := wires[i].beats[0], wires[0].beats[0]; !got.Equal(want) {
				t.Errorf("session %d, live %v after session 0 in the same slot: first heartbeat at %v, want %v (session 0's)",
					i, lives[i].Sub(lives[0]), got.Sub(start), want.Sub(start))
			}
		}
		if a, b := wires[3].beats[0], wires[0].beats[0]; a.Sub(b) != 7*slot {
			t.Errorf("session 3, live 7 slots after session 0: first heartbeat %v after session 0's, want %v", a.Sub(b), 7*slot)
		}
	})
}

// TestHeartbeatRestGoesFirst: when the beater's write left part of a
// heartbeat unwritten (sockWriter.rest), the stream's next write sends that
// part before its own bytes, so no frame lands inside a heartbeat.
func TestHeartbeatRestGoesFirst(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	defer server.Close()
	w := newSockWriter(server)
	w.rest = sseHeartbeat[1:] // the socket took ":" only
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	*w.buf() = append(*w.buf(), "data: x\n\n"...)
	if err := w.flush(time.Second); err != nil {
		t.Fatal(err)
	}
	server.Close()
	if b, want := <-got, "\n\ndata: x\n\n"; string(b) != want {
		t.Errorf("written: got %q, want %q", b, want)
	}
	if len(w.rest) != 0 {
		t.Errorf("rest after the write: %q, want none", w.rest)
	}
}

// TestWatchCloseLimit: the read loop that watches an SSE client where no
// epoll set can (TLS, other systems) ends a client that sends more than
// maxSSEClientBytes, as the epoll set does, and keeps one that sends less.
func TestWatchCloseLimit(t *testing.T) {
	for _, tc := range []struct {
		sent  int
		ended bool
	}{{maxSSEClientBytes / 2, false}, {maxSSEClientBytes + 1024, true}} {
		server, client := net.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		gone := make(chan struct{})
		go watchClose(server, cancel, gone)
		wrote := make(chan struct{})
		go func() { // a pipe's write waits for the reader, which stops at the limit
			defer close(wrote)
			_, _ = client.Write(make([]byte, tc.sent))
		}()
		select {
		case <-ctx.Done():
			if !tc.ended {
				t.Errorf("%d bytes sent: the stream ended, want it kept", tc.sent)
			}
		case <-time.After(map[bool]time.Duration{false: 100 * time.Millisecond, true: 5 * time.Second}[tc.ended]):
			if tc.ended {
				t.Errorf("%d bytes sent: the stream was kept, want it ended", tc.sent)
			}
		}
		client.Close()
		<-wrote
		<-gone
		server.Close()
	}
}
