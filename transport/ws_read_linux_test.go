package transport

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"

	"github.com/relaydev/relay/auth"
)

// TestWSReaderStack opens idle WebSocket readers that have each read a
// client message and consumed an empty pong, and checks where they wait and
// what their stacks cost: parked in frameWaiter.await on the 2 KiB stack a
// goroutine starts with, against parked in gorilla (the reader without a
// frameWaiter) on a 4 KiB one. The cost is the growth of the process's
// stack memory per reader after collections, so it counts whole stacks, not
// timings; each kind is measured in a fresh process (this test binary, run
// for TestWSReaderStackChild), as stacks freed by one kind would be reused
// by the other and hide its cost. The race detector's instrumentation
// deepens every frame past 2 KiB, so under it only where the readers wait
// is checked.
func TestWSReaderStack(t *testing.T) {
	shallow, deep := childStacks(t, "shallow"), childStacks(t, "deep")
	t.Logf("stack in use per idle reader: %d bytes waiting in frameWaiter, %d in gorilla", shallow, deep)
	if raceEnabled {
		return
	}
	if shallow > 3072 {
		t.Errorf("a reader waiting in frameWaiter holds %d bytes of stack, want its starting 2048", shallow)
	}
	if deep-shallow < 1024 {
		t.Errorf("readers in gorilla hold %d bytes of stack, in frameWaiter %d: want the 2 KiB saved", deep, shallow)
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
	fmt.Printf("stack per reader: %d\n", readerStacks(t, 400, kind == "shallow"))
}

// readerStacks opens n WebSocket connections whose server side runs only
// the reader (no session), sends each a client ping message and an empty
// pong, waits until every reader is parked where it
// waits between messages, and returns the growth of StackInuse per reader.
func readerStacks(t *testing.T, n int, shallow bool) int64 {
	t.Helper()
	s := &Server{cfg: Config{}.withDefaults(), logger: slog.New(slog.DiscardHandler)}
	s.limits = newLimiter(s.cfg.Limits)
	var readers sync.WaitGroup
	e := echo.New()
	e.GET("/", func(c echo.Context) error {
		ws, err := testReader(s, c)
		if err != nil {
			return nil
		}
		if ws.frames == nil && shallow {
			t.Error("no frameWaiter on a TCP connection")
		}
		if !shallow {
			ws.frames = nil
		}
		readers.Add(1)
		go ws.read(func() {
			ws.conn.Close()
			readers.Done()
		})
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

	before := stackInuse()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	for range n {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conns = append(conns, c)
		if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	where := "(*wsConn).readFrame"
	if shallow {
		where = "(*frameWaiter).await"
	}
	waitParked(t, n, where)
	return (stackInuse() - before) / int64(n)
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
	ws.frames = newFrameWaiter(ws.conn)
	return ws, nil
}

// waitParked polls the goroutine dump until n readLoop goroutines are
// parked in where (and none elsewhere), failing after 10 s.
func waitParked(t *testing.T, n int, where string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		for {
			if k := runtime.Stack(buf, true); k < len(buf) {
				buf = buf[:k]
				break
			}
			buf = make([]byte, 2*len(buf))
		}
		in, total := 0, 0
		for _, g := range bytes.Split(buf, []byte("\n\n")) {
			if !bytes.Contains(g, []byte("(*wsConn).read(")) { // a reader, maybe one about to hand over
				continue
			}
			total++
			if bytes.Contains(g, []byte(where)) && bytes.Contains(g, []byte("[IO wait")) {
				in++
			}
		}
		if in == n && total == n {
			return
		}
		if time.Now().After(deadline) {
			for _, g := range bytes.Split(buf, []byte("\n\n")) {
				if bytes.Contains(g, []byte("(*wsConn).read(")) && !bytes.Contains(g, []byte(where)) {
					t.Logf("%s", g)
					break
				}
			}
			t.Fatalf("%d of %d readers parked in %s after 10 s (%d readers)", in, n, where, total)
		}
		buf = buf[:cap(buf)]
		time.Sleep(10 * time.Millisecond)
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
// (TLS terminated by relay), upgrade sets up no frameWaiter and the reader
// waits in gorilla: a client's pong and message are still read and handled.
func TestWSReaderTLS(t *testing.T) {
	s := &Server{cfg: Config{}.withDefaults(), logger: slog.New(slog.DiscardHandler)}
	s.limits = newLimiter(s.cfg.Limits)
	type served struct {
		frames  *frameWaiter
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
		go ws.read(func() {
			ws.conn.Close()
			close(done)
		})
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
		t.Error("a frameWaiter on a TLS connection")
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
