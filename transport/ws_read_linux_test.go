package transport

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/auth"
)

// TestWSReaderStack opens idle WebSocket readers that have each read a
// client message and consumed an empty pong, and checks where they wait and
// what their stacks cost: with a frameWatch, the socket waits in the
// server's epoll set and no reader goroutine is left at all; without one
// (as under TLS), a reader waits in its read, on a 4 KiB stack. The cost is
// the growth of the process's stack memory per reader after collections, so
// it counts whole stacks, not timings; each kind is measured in a fresh
// process (this test binary, run for TestWSReaderStackChild), as stacks
// freed by one kind would be reused by the other and hide its cost. Then a
// second message on each connection must still be answered (the set starts
// a reader for it) and each client's close must end its reader. The race
// detector's instrumentation deepens every frame, so under it the stack
// figures are not checked.
func TestWSReaderStack(t *testing.T) {
	parked, reading := childStacks(t, "parked"), childStacks(t, "reading")
	t.Logf("stack in use per idle connection: %d bytes with its socket in the epoll set, %d with a reader in its read", parked, reading)
	if raceEnabled {
		return
	}
	if parked > 1024 {
		t.Errorf("an idle connection whose socket waits in the set holds %d bytes of stack, want none", parked)
	}
	if reading-parked < 2048 {
		t.Errorf("readers in their read hold %d bytes of stack, sockets in the set %d: want a reader's 2 KiB or more saved", reading, parked)
	}
}

const stackChildEnv = "RELAY_TEST_READER_STACK"

// childStacks runs TestWSReaderStackChild for kind in a fresh process and
// returns the stack per reader it reports.
func childStacks(t *testing.T, kind string) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWSReaderStackChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), stackChildEnv+"="+kind)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s readers: %v\n%s", kind, err, out)
	}
	_, after, ok := bytes.Cut(out, []byte("stack per reader: "))
	if !ok {
		t.Fatalf("%s readers: no figure in\n%s", kind, out)
	}
	var n int64
	if _, err := fmt.Sscan(string(after), &n); err != nil {
		t.Fatalf("%s readers: %v in\n%s", kind, err, out)
	}
	return n
}

// TestWSReaderStackChild is TestWSReaderStack's measurement, run by it in a
// process of its own; run otherwise, it does nothing.
func TestWSReaderStackChild(t *testing.T) {
	kind := os.Getenv(stackChildEnv)
	if kind == "" {
		return
	}
	fmt.Printf("stack per reader: %d\n", readerStacks(t, 400, kind == "parked"))
}

// readerStacks opens n WebSocket connections whose server side runs only
// the reader (no session), sends each a client ping message and an empty
// pong, waits until every message has been handled and every reader is
// where it waits between messages (none left, when parked), and returns
// the growth of StackInuse per connection. Then it sends each a second
// message, which must be handled too, and closes them: every reader must
// end.
func readerStacks(t *testing.T, n int, parked bool) int64 {
	t.Helper()
	s := testReaderServer()
	var readers sync.WaitGroup
	var replies []chan reply
	var mu sync.Mutex
	e := echo.New()
	e.GET("/", func(c echo.Context) error {
		ws, err := testReader(s, c)
		if err != nil {
			return nil
		}
		if ws.frames == nil && parked {
			t.Error("no frameWatch on a TCP connection")
		}
		if !parked {
			ws.frames.stop()
			ws.frames = nil
		}
		readers.Add(1)
		ws.endRead = func() {
			ws.frames.stop()
			ws.conn.Close()
			readers.Done()
		}
		mu.Lock()
		replies = append(replies, ws.replies)
		mu.Unlock()
		go ws.read()
		return nil
	})
	srv := httptest.NewServer(e)
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		readers.Wait()
		srv.Close()
	}()
	send := func(c *websocket.Conn) {
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}

	before := stackInuse()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	for range n {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
		send(c)
	}
	takeReplies(t, &mu, &replies, n)
	where := "(*wsConn).readFrame"
	if parked {
		where = ""
	}
	waitReaders(t, n, where)
	grown := (stackInuse() - before) / int64(n)
	for _, c := range conns {
		send(c)
	}
	takeReplies(t, &mu, &replies, n)
	return grown
}

// takeReplies waits for one reply on each of the n readers' replies,
// failing after 10 s.
func takeReplies(t *testing.T, mu *sync.Mutex, replies *[]chan reply, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for i := 0; i < n; i++ {
		mu.Lock()
		for len(*replies) <= i {
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
		}
		r := (*replies)[i]
		mu.Unlock()
		select {
		case <-r:
		case <-deadline:
			t.Fatalf("%d of %d client messages handled after 10 s", i, n)
		}
	}
}

// testReader upgrades c to a WebSocket whose reader is set up as
// serveWebSocket sets it up, with no session: the reply to a client
// message stays in replies, which holds one.
func testReader(s *Server, c echo.Context) (*wsConn, error) {
	conn, err := s.upgrader().Upgrade(c.Response(), c.Request(), nil)
	if err != nil {
		return nil, err
	}
	ws := &wsConn{srv: s, conn: conn.NetConn(), cfg: &s.cfg, id: &auth.Identity{UserID: "1"},
		replies: make(chan reply, 1)}
	ws.out = newSockWriter(ws.conn)
	ws.frames = s.watcher.frames(ws)
	return ws, nil
}

// waitReaders polls the goroutine dump until n reader goroutines are
// parked in where, and none elsewhere (where "": none at all), failing
// after 10 s.
func waitReaders(t *testing.T, n int, where string) {
	t.Helper()
	if where == "" {
		n = 0
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		in, total := 0, 0
		var other []byte
		for _, g := range goroutineStacks() {
			if !bytes.Contains(g, []byte("(*wsConn).read(")) {
				continue
			}
			total++
			if where != "" && bytes.Contains(g, []byte(where)) && bytes.Contains(g, []byte("[IO wait")) {
				in++
			} else {
				other = g
			}
		}
		if in == n && total == n {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("%s", other)
			t.Fatalf("%d readers parked in %q after 10 s, want %d (%d readers in all)", in, where, n, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// goroutineStacks is every goroutine's stack, one dump entry each.
func goroutineStacks() [][]byte {
	buf := make([]byte, 1<<20)
	for {
		if k := runtime.Stack(buf, true); k < len(buf) {
			return bytes.Split(buf[:k], []byte("\n\n"))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// stackInuse is the process's goroutine stack memory after collections
// have shrunk what they can (each halves a stack used below a quarter).
func stackInuse() int64 {
	for range 3 {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.StackInuse)
}

// TestWSReaderTLS: on a connection whose net.Conn has no file descriptor
// (TLS terminated by relay), upgrade sets up no frameWatch and the reader
// waits in its read: a client's pong and message are still read and
// handled.
func TestWSReaderTLS(t *testing.T) {
	s := testReaderServer()
	type served struct {
		frames  *frameWatch
		replies chan reply
	}
	got := make(chan served, 1)
	done := make(chan struct{})
	e := echo.New()
	e.GET("/", func(c echo.Context) error {
		ws, err := testReader(s, c)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return nil
		}
		ws.endRead = func() {
			ws.conn.Close()
			close(done)
		}
		go ws.read()
		got <- served{ws.frames, ws.replies}
		return nil
	})
	srv := httptest.NewTLSServer(e)
	defer srv.Close()
	d := websocket.Dialer{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
	c, _, err := d.Dial("wss"+strings.TrimPrefix(srv.URL, "https"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer func() {
		c.Close()
		<-done
	}()
	sv := <-got
	if sv.frames != nil {
		t.Error("a frameWatch on a TLS connection")
	}
	if err := c.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","timestamp":7}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-sv.replies:
		if want := `{"type":"pong","timestamp":7}`; string(r.msg) != want {
			t.Errorf("reply: got %s, want %s", r.msg, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply to the client's ping within 10 s")
	}
}

// TestFrameWatchPongFlood: the set's goroutine consumes only the pongs
// that answer relay's pings, and leaves every other to the reader (which
// counts them against the connection's rate); every pong it consumes
// counts as the client alive.
func TestFrameWatchPongFlood(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	g := newSockWatcher()
	ws := &wsConn{conn: server}
	w := g.frames(ws)
	if w == nil {
		t.Fatal("no frameWatch on a TCP connection")
	}
	defer w.stop()
	const sent, pinged = 12, 2
	var flood []byte
	for range sent {
		flood = AppendClientFrame(flood, 0x8A, true, nil)
	}
	if _, err := client.Write(flood); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); unread(t, w) < len(flood); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d bytes of pongs arrived within 10 s", unread(t, w), len(flood))
		}
	}
	left := func() int { return unread(t, w) + w.nheld }

	ws.pingsOut.Store(pinged)
	w.g.mu.Lock()
	end, resume := w.ready(0)
	w.g.mu.Unlock()
	if !end || resume == nil {
		t.Fatalf("ready after %d pongs for %d pings: got end %v, want the watch ended and a reader started", sent, pinged, end)
	}
	if got, want := left(), len(flood)-pinged*emptyPongLen; got != want {
		t.Errorf("left by the set: %d bytes, want %d (%d pongs consumed)", got, want, pinged)
	}
	if ws.lastRead.Load() == 0 {
		t.Error("the pongs consumed did not count as the client alive")
	}
	if got := w.park(); got != readOn {
		t.Errorf("the reader's park before a pong no ping asked for: got %v, want readOn", got)
	}
	if got, want := left(), len(flood)-pinged*emptyPongLen; got != want {
		t.Errorf("left by the reader's park: %d bytes, want %d", got, want)
	}
	ws.pingsOut.Store(sent - pinged)
	if got := w.park(); got != parked {
		t.Errorf("the reader's park after as many pings as pongs: got %v, want parked", got)
	}
	if got := left(); got != 0 {
		t.Errorf("left after the pongs were all answers: %d bytes, want none", got)
	}
	if !w.stop() {
		t.Error("stop: the socket was not parked")
	}
}

// unread is how many bytes wait on w's socket.
func unread(t *testing.T, w *frameWatch) int {
	t.Helper()
	var b [256]byte
	n, _, err := syscall.Recvfrom(w.fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err == syscall.EAGAIN {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}
