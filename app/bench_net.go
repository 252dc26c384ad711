package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// streamsPerAddr is how many streams the bench opens from one loopback
// source address. Each connection binds its source port before it connects,
// so one address offers at most the ephemeral range (32768–60999 here,
// 28,232 ports) across every destination; 5,000 leaves room for the
// publishers, for TIME_WAIT of earlier runs and for other programs.
const streamsPerAddr = 5000

// maxSourceAddrs bounds the loopback addresses used: 127.0.0.2 to
// 127.0.0.251, far beyond any process's file limit at streamsPerAddr.
const maxSourceAddrs = 250

// Transports the bench speaks.
const (
	transportSSE = "sse"
	transportWS  = "ws"
)

func transportName(tr string) string {
	if tr == transportWS {
		return "WebSocket"
	}
	return "SSE"
}

// sourceAddrs are the loopback addresses that streams streams dial from,
// perAddr each (Linux routes all of 127.0.0.0/8 to lo, so they need no
// set-up). 127.0.0.1 is left to the publishers.
func sourceAddrs(streams, perAddr int) []netip.Addr {
	k := min(max(1, (streams+perAddr-1)/perAddr), maxSourceAddrs)
	addrs := make([]netip.Addr, k)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)})
	}
	return addrs
}

// benchNet opens the bench's streams: stream i dials from source address
// i mod len(addrs), so they spread evenly.
type benchNet struct {
	addrs   []netip.Addr
	clients []*http.Client
	dialers []*websocket.Dialer
}

var benchWriteBuffers sync.Pool // a client writes only pongs and closes

func newBenchNet(streams, perAddr int) *benchNet {
	n := &benchNet{addrs: sourceAddrs(streams, perAddr)}
	for _, a := range n.addrs {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: a.AsSlice()}, Timeout: 10 * time.Second}
		n.clients = append(n.clients, &http.Client{Transport: &http.Transport{
			DialContext: d.DialContext, DisableCompression: true, MaxIdleConnsPerHost: 8}})
		n.dialers = append(n.dialers, &websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: 10 * time.Second,
			ReadBufferSize: 4096, WriteBufferSize: 512, WriteBufferPool: &benchWriteBuffers})
	}
	return n
}

func (n *benchNet) close() {
	for _, c := range n.clients {
		c.CloseIdleConnections()
	}
}

// streamPath is the path of project's tickets channel on tr: the Django
// Channels path for WebSocket, the SSE one otherwise.
func streamPath(tr, project string) string {
	if tr == transportWS {
		return "/ws/projects/" + project + "/tickets/"
	}
	return "/events/projects/" + project + "/tickets"
}

// benchStream is one open stream, read by one goroutine.
type benchStream interface {
	// next returns the data of the stream's next message (valid until the
	// next call) and whether it is the connection_established message.
	next() (data []byte, welcome bool, err error)
	close()
}

// open opens stream i (its source address is i's) at url, which has
// streamPath's form with a query; ctx ending closes it.
func (n *benchNet) open(ctx context.Context, i int, tr, url string) (benchStream, error) {
	k := i % len(n.addrs)
	if tr == transportWS {
		conn, resp, err := n.dialers[k].DialContext(ctx, "ws"+strings.TrimPrefix(url, "http"), nil)
		if err != nil {
			if resp != nil {
				err = fmt.Errorf("%w (%s)", err, resp.Status)
			}
			return nil, fmt.Errorf("bench: websocket from %s: %w", n.addrs[k], err)
		}
		conn.SetReadLimit(1 << 20)
		return &wsStream{conn: conn, stop: context.AfterFunc(ctx, func() { conn.Close() })}, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := n.clients[k].Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: stream from %s: %w", n.addrs[k], err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("bench: stream: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return &sseStream{body: resp.Body, br: bufio.NewReaderSize(resp.Body, 4096)}, nil
}

// sseStream reads relay's frames: an optional "event:" line, then "id:",
// then one "data:" line; comments and retry lines are skipped.
type sseStream struct {
	body io.ReadCloser
	br   *bufio.Reader
	long []byte // a line longer than br's buffer
}

var (
	sseEvent   = []byte("event: ")
	sseData    = []byte("data: ")
	sseWelcome = []byte("event: connection_established")
	wsWelcome  = []byte(`{"type":"connection_established"`)
)

func (s *sseStream) next() ([]byte, bool, error) {
	named, welcome := false, false // the frame has an event line; it is connection_established
	for {
		line, err := s.line()
		if err != nil {
			return nil, false, err
		}
		switch {
		case len(line) == 1: // the blank line ending a frame
			named, welcome = false, false
		case bytes.HasPrefix(line, sseEvent):
			named, welcome = true, bytes.HasPrefix(line, sseWelcome)
		case bytes.HasPrefix(line, sseData) && (!named || welcome):
			return bytes.TrimSuffix(line[len(sseData):], []byte("\n")), welcome, nil
		}
	}
}

func (s *sseStream) line() ([]byte, error) {
	line, err := s.br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	s.long = append(s.long[:0], line...)
	for err == bufio.ErrBufferFull {
		line, err = s.br.ReadSlice('\n')
		s.long = append(s.long, line...)
	}
	return s.long, err
}

func (s *sseStream) close() { s.body.Close() }

// wsStream reads text messages; gorilla answers pings while it reads.
type wsStream struct {
	conn *websocket.Conn
	stop func() bool
	msg  bytes.Buffer // the message next returned, its storage reused
}

// next reads the next message into s.msg, as sseStream reads lines into
// its bufio.Reader: gorilla's ReadMessage would allocate each message
// anew, and the garbage of a 1,000-event catch-up (half a megabyte, and
// the collections it sets off) was most of the bench client's time on
// WebSocket, which SSE's reader does not spend.
func (s *wsStream) next() ([]byte, bool, error) {
	_, r, err := s.conn.NextReader()
	if err != nil {
		return nil, false, err
	}
	s.msg.Reset()
	if _, err := s.msg.ReadFrom(r); err != nil {
		return nil, false, err
	}
	msg := s.msg.Bytes()
	return msg, bytes.HasPrefix(msg, wsWelcome), nil
}

func (s *wsStream) close() {
	s.stop()
	s.conn.Close()
}

// awaitWelcome reads s until its connection_established message: from then
// on every event published reaches it.
func awaitWelcome(s benchStream) error {
	for {
		_, welcome, err := s.next()
		if err != nil {
			return fmt.Errorf("bench: stream ended before connection_established: %w", err)
		}
		if welcome {
			return nil
		}
	}
}
