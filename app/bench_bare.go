package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// bareBuffer is each bare subscriber's queue, in messages. A subscriber
// whose queue is full is disconnected, as relay does: a broadcaster that
// blocked on one reader would stall every other.
const bareBuffer = 1024

// bareBatch is how many queued messages a subscriber writes at once: per
// flush over SSE, per write system call over WebSocket.
const bareBatch = 64

// bareWriteTimeout ends a stream whose client stopped reading, so that
// shutdown never waits on it.
const bareWriteTimeout = 10 * time.Second

// bareBroadcaster is the ceiling relay is measured against: one channel,
// no auth, no log, no JSON. A publish's body is sent as it came, as an SSE
// "data:" frame on every GET and as a text message on every WebSocket, each
// encoded once for all subscribers. Both transports write what is queued
// in one go, up to bareBatch messages: gorilla does the WebSocket handshake,
// the welcome and the close, and the messages are written as encoded frames
// straight to the connection (gorilla's WritePreparedMessage makes one write
// system call per message, which made the ceiling slower than relay).
type bareBroadcaster struct {
	mu    sync.Mutex
	subs  map[*bareSub]struct{}
	seq   atomic.Int64
	quit  chan struct{} // closed by close: every stream ends
	once  sync.Once
	conns sync.WaitGroup // WebSocket handlers, which Shutdown does not wait for
	up    websocket.Upgrader
}

type bareSub struct {
	ch     chan bareMsg
	kicked chan struct{} // closed when the queue overflowed
}

type bareMsg struct {
	sse []byte // "data: <body>\n\n"
	ws  []byte // a server's text frame of the body: unmasked, no compression
}

var bareWriteBuffers sync.Pool

func newBareBroadcaster() *bareBroadcaster {
	return &bareBroadcaster{subs: map[*bareSub]struct{}{}, quit: make(chan struct{}), up: websocket.Upgrader{
		ReadBufferSize: 1024, WriteBufferSize: 4096, WriteBufferPool: &bareWriteBuffers,
		CheckOrigin: func(*http.Request) bool { return true }}}
}

func (b *bareBroadcaster) close() { b.once.Do(func() { close(b.quit) }) }

func (b *bareBroadcaster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost:
		b.publish(w, r)
	case websocket.IsWebSocketUpgrade(r):
		b.conns.Add(1)
		defer b.conns.Done()
		b.serveWS(w, r)
	default:
		b.serveSSE(w, r)
	}
}

func (b *bareBroadcaster) publish(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	frame := make([]byte, 0, len(body)+8)
	frame = append(append(append(frame, "data: "...), body...), "\n\n"...)
	msg := bareMsg{sse: frame, ws: appendServerFrame(make([]byte, 0, len(body)+10), body)}
	b.mu.Lock()
	for s := range b.subs {
		select {
		case s.ch <- msg:
		default:
			delete(b.subs, s)
			close(s.kicked)
		}
	}
	b.mu.Unlock()
	id := b.seq.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"id":"` + strconv.FormatInt(id, 10) + `"}`))
}

func (b *bareBroadcaster) subscribe() *bareSub {
	s := &bareSub{ch: make(chan bareMsg, bareBuffer), kicked: make(chan struct{})}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

func (b *bareBroadcaster) unsubscribe(s *bareSub) {
	b.mu.Lock()
	delete(b.subs, s)
	b.mu.Unlock()
}

const bareWelcome = `{"type":"connection_established"}`

func (b *bareBroadcaster) serveSSE(w http.ResponseWriter, r *http.Request) {
	s := b.subscribe()
	defer b.unsubscribe(s)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	_, err := io.WriteString(w, "event: connection_established\ndata: "+bareWelcome+"\n\n")
	for err == nil {
		if err = rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-b.quit:
			return
		case <-s.kicked:
			return
		case m := <-s.ch:
			_ = rc.SetWriteDeadline(time.Now().Add(bareWriteTimeout)) // for the writes and the flush
			_, err = w.Write(m.sse)
			for i := 1; i < bareBatch && err == nil && len(s.ch) > 0; i++ {
				m = <-s.ch
				_, err = w.Write(m.sse)
			}
		}
	}
}

func (b *bareBroadcaster) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := b.up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer conn.Close()
	s := b.subscribe()
	defer b.unsubscribe(s)
	readDone := make(chan struct{})
	go func() { // reads (pongs, the client's close) until the connection ends
		defer close(readDone)
		for {
			if _, _, err := conn.NextReader(); err != nil {
				return
			}
		}
	}()
	defer func() { conn.Close(); <-readDone }()
	err = conn.WriteMessage(websocket.TextMessage, []byte(bareWelcome)) // written whole: gorilla holds nothing back
	nc, buf := conn.NetConn(), []byte(nil)
	for err == nil {
		select {
		case <-readDone:
			return
		case <-b.quit:
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
			return
		case <-s.kicked:
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4008, "slow"), time.Now().Add(time.Second))
			return
		case m := <-s.ch:
			buf = append(buf[:0], m.ws...)
			for i := 1; i < bareBatch && len(s.ch) > 0; i++ {
				m = <-s.ch
				buf = append(buf, m.ws...)
			}
			_ = nc.SetWriteDeadline(time.Now().Add(bareWriteTimeout))
			_, err = nc.Write(buf)
		}
	}
}

// appendServerFrame appends m as one WebSocket text frame from a server
// (RFC 6455 section 5.2): FIN and opcode 1, unmasked, then the length in
// 7, 16 or 64 bits. The bench's client tests feed frames made with it.
func appendServerFrame(b, m []byte) []byte {
	switch n := len(m); {
	case n < 126:
		b = append(b, 0x81, byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x81, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x81, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, m...)
}

// bareCmd is `relay bench bare`: the bare broadcaster on a free port until ctx
// ends, printing its URL first as relay does. The bench starts it as its
// own process so it is measured alone, as relay is.
func bareCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("bench bare: takes no arguments, got %q", args[0])
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("bench bare: %w", err)
	}
	b := newBareBroadcaster()
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "relay bench bare: listening on http://%s\n", ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	b.close() // streams end, so Shutdown has only short requests to wait for
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); err == nil || errors.Is(err, http.ErrServerClosed) {
		err = serr
	}
	b.conns.Wait()
	return err
}
