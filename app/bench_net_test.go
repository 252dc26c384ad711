package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// The bench's two stream readers must cost the client alike per message:
// a catch-up figure is the server's time plus the client's, and a reader
// that makes garbage of every message (as gorilla's ReadMessage does)
// measures the bench rather than relay.

// catchupJSON is a catch-up event of the bench's (catchupTime), as relay
// sends it.
func catchupJSON(n int) []byte {
	return fmt.Appendf(nil, `{"id":"k3j9x2ab7q-%d","channel":"project_2_tickets","ts":"2026-12-02T07:00:00.000Z","type":"bench","data":{"n":%d,"pad":"%s"}}`,
		n+1, n, strings.Repeat("x", 100))
}

// loopStream is the bench's reader for tr over a connection that sends
// msgs, framed as relay frames them, over and over.
func loopStream(t testing.TB, tr string, msgs ...[]byte) benchStream {
	t.Helper()
	var frames []byte
	for _, m := range msgs {
		if tr == transportWS {
			frames = appendServerFrame(frames, m)
		} else {
			frames = fmt.Appendf(frames, "id: x\ndata: %s\n\n", m)
		}
	}
	if tr == transportSSE {
		r := &loopReader{loop: frames}
		return &sseStream{body: io.NopCloser(r), br: bufio.NewReaderSize(r, 4096)}
	}
	c := &loopConn{loop: loopReader{loop: frames}}
	d := newBenchNet(1, 1).dialers[0]
	d.NetDialContext = func(context.Context, string, string) (net.Conn, error) { return c, nil }
	conn, _, err := d.Dial("ws://relay.test/ws/projects/2/tickets/", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &wsStream{conn: conn, stop: func() bool { return true }}
}

// loopReader reads loop over and over, after head.
type loopReader struct {
	head, loop []byte
	off        int
}

func (r *loopReader) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	n := copy(p, r.loop[r.off:])
	r.off = (r.off + n) % len(r.loop)
	return n, nil
}

// loopConn is a WebSocket client's connection to a server that answers its
// handshake, then sends its loop. Only what gorilla's client calls is here.
type loopConn struct {
	net.Conn
	loop loopReader
}

func (c *loopConn) Write(p []byte) (int, error) {
	if c.loop.head == nil { // the handshake request: answer it
		_, rest, _ := bytes.Cut(p, []byte("Sec-WebSocket-Key: "))
		key, _, _ := bytes.Cut(rest, []byte("\r\n"))
		sum := sha1.Sum(append(key, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"...))
		c.loop.head = fmt.Appendf(nil, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
			base64.StdEncoding.EncodeToString(sum[:]))
	}
	return len(p), nil
}

func (c *loopConn) Read(p []byte) (int, error)       { return c.loop.Read(p) }
func (c *loopConn) Close() error                     { return nil }
func (c *loopConn) SetDeadline(time.Time) error      { return nil }
func (c *loopConn) SetReadDeadline(time.Time) error  { return nil }
func (c *loopConn) SetWriteDeadline(time.Time) error { return nil }

func TestBenchStreamsReadEachMessageWhole(t *testing.T) {
	msgs := [][]byte{catchupJSON(0), []byte(`{"n":1}`), bytes.Repeat([]byte("y"), 70_000), catchupJSON(3)}
	for _, tr := range []string{transportSSE, transportWS} {
		s := loopStream(t, tr, msgs...)
		for round := range 2 {
			for k, want := range msgs {
				got, _, err := s.next()
				if err != nil {
					t.Fatalf("%s, round %d, message %d: %v", tr, round, k, err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s, round %d, message %d: got %d bytes %.40q…, want %d bytes %.40q…", tr, round, k, len(got), got, len(want), want)
				}
			}
		}
	}
}

// TestBenchStreamsReadWithoutGarbage keeps the WebSocket reader as cheap as
// the SSE one: no message of a catch-up is allocated anew once the reader
// has seen one of its size. Gorilla allocates one small reader per message
// (NextReader), which is all the WebSocket reader may allocate.
func TestBenchStreamsReadWithoutGarbage(t *testing.T) {
	for _, tc := range []struct {
		tr   string
		most float64
	}{{transportSSE, 0}, {transportWS, 1}} {
		s := loopStream(t, tc.tr, catchupJSON(0), catchupJSON(1))
		if _, _, err := s.next(); err != nil {
			t.Fatal(err)
		}
		var err error
		allocs := testing.AllocsPerRun(1000, func() { _, _, err = s.next() })
		if err != nil {
			t.Fatal(err)
		}
		if allocs > tc.most {
			t.Errorf("%s: %.0f allocations per message read, want at most %.0f", tc.tr, allocs, tc.most)
		}
	}
}

// BenchmarkBenchStreamNext is the bench client's cost of reading one
// catch-up event, per transport:
//
//	go test -run '^$' -bench BenchStreamNext -benchmem ./app
func BenchmarkBenchStreamNext(b *testing.B) {
	for _, tr := range []string{transportSSE, transportWS} {
		b.Run(tr, func(b *testing.B) {
			s := loopStream(b, tr, catchupJSON(0), catchupJSON(1))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
