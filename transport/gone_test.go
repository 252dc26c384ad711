package transport_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/relaydev/relay/transport"
)

// TestSSEClientGone: a hijacked SSE stream ends as soon as its client
// closes its connection, not at its next write (heartbeats here are 1 h
// apart); a client that sends a few bytes (an SSE client has nothing to
// say: they are read and dropped) keeps its stream; one that sends more
// than 64 KiB (256 KiB at once) is ended.
func TestSSEClientGone(t *testing.T) {
	r := startRelay(t, withConfig(func(c *transport.Config) { c.Heartbeat = time.Hour }))
	host := hostOf(t, r)
	conn, br := rawSSE(t, host, "/events/projects/1/tickets")
	readUntil(t, br, "event: connection_established")
	awaitStreams(t, r, 1)

	if _, err := conn.Write(bytes.Repeat([]byte("GET / HTTP/1.1\r\n"), 256)); err != nil { // 4 KiB
		t.Fatalf("write to the stream: %v", err)
	}
	id := r.mustPublish(t, "project_1_tickets", "after_junk", nil)
	readUntil(t, br, "id: "+id)
	conn.Close()
	awaitStreams(t, r, 0)

	conn, br = rawSSE(t, host, "/events/projects/1/tickets")
	readUntil(t, br, "event: connection_established")
	awaitStreams(t, r, 1)
	flood := make(chan error, 1)
	go func() { _, err := conn.Write(bytes.Repeat([]byte("GET / HTTP/1.1\r\n"), 16<<10)); flood <- err }()
	awaitStreams(t, r, 0)
	conn.Close()
	<-flood
}

// TestSSEClientGoneAmongReusedSockets closes half of many SSE streams and
// opens as many again, whose sockets take the closed ones' descriptor
// numbers: every stream still open gets the next event, and each closed
// one ended, none other.
func TestSSEClientGoneAmongReusedSockets(t *testing.T) {
	const n = 40
	r := startRelay(t, withConfig(func(c *transport.Config) {
		c.Heartbeat = time.Hour
		c.Limits.ConnsPerUser, c.Limits.ConnectBurst = 4*n, 4*n
	}))
	host := hostOf(t, r)
	type stream struct {
		conn net.Conn
		br   *bufio.Reader
	}
	open := func() stream {
		conn, br := rawSSE(t, host, "/events/projects/1/tickets")
		readUntil(t, br, "event: connection_established")
		return stream{conn, br}
	}
	var live []stream
	for range n {
		live = append(live, open())
	}
	awaitStreams(t, r, n)
	for round := range 3 {
		kept := live[:0]
		for i, s := range live {
			if i%2 == round%2 {
				s.conn.Close()
			} else {
				kept = append(kept, s)
			}
		}
		live = kept
		awaitStreams(t, r, len(live))
		for len(live) < n {
			live = append(live, open())
		}
		awaitStreams(t, r, n)
	}
	id := r.mustPublish(t, "project_1_tickets", "to_all", nil)
	for _, s := range live {
		readUntil(t, s.br, "id: "+id)
	}
	awaitStreams(t, r, n)
}

func hostOf(t *testing.T, r *relay) string {
	t.Helper()
	u, err := url.Parse(r.url)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// awaitStreams waits until alice holds n streams on the server.
func awaitStreams(t *testing.T, r *relay, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("alice to hold %d streams", n), func() bool {
		users, _, _ := transport.LimitCounts(r.srv, "1", localIP)
		return users == n
	})
}
