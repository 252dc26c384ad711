package transport

import (
	"bytes"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/auth"
)

// bytesConn is a connection that reads the given bytes, then io.EOF, and
// records what is written to it.
type bytesConn struct {
	net.Conn // nil: only the methods below are called
	in       *bytes.Reader
	out      bytes.Buffer
}

func (c *bytesConn) Read(p []byte) (int, error)       { return c.in.Read(p) }
func (c *bytesConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *bytesConn) SetWriteDeadline(time.Time) error { return nil }

// testReaderServer is a Server with what a WebSocket reader uses: config,
// limits and the epoll set.
func testReaderServer() *Server {
	s := &Server{cfg: Config{}.withDefaults(), logger: slog.New(slog.DiscardHandler), watcher: newSockWatcher()}
	s.limits = newLimiter(s.cfg.Limits)
	return s
}

func maskedFrame(b0 byte, payload []byte) []byte { return AppendClientFrame(nil, b0, true, payload) }

// FuzzClientFrames feeds bytes to the WebSocket reader as a client's frames
// (with the reader's messages dropped: FuzzClientMessage covers them).
// Whatever the bytes, the reader must end without a panic once they run
// out, and everything it wrote back must be whole server control frames
// (unmasked, final, at most 125 bytes), a close frame last if one was
// written at all.
func FuzzClientFrames(f *testing.F) {
	ping := maskedFrame(0x81, []byte(`{"type":"ping"}`))
	for _, seed := range [][]byte{
		ping,
		maskedFrame(0x8A, nil),
		maskedFrame(0x89, []byte("hello")),
		maskedFrame(0x88, websocket.FormatCloseMessage(1000, "bye")),
		maskedFrame(0x88, []byte{3}),
		append(maskedFrame(0x01, []byte(`{"ty`)), maskedFrame(0x80, []byte(`pe":"ping"}`))...),
		AppendClientFrame(nil, 0x81, false, []byte("unmasked")),
		maskedFrame(0xC1, []byte("rsv1")),
		maskedFrame(0x8B, nil),
		maskedFrame(0x82, bytes.Repeat([]byte("x"), 300)),
		{0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &bytesConn{in: bytes.NewReader(in)}
		s := testReaderServer()
		ws := &wsConn{srv: s, conn: c, out: newSockWriter(c), cfg: &s.cfg, id: &auth.Identity{UserID: "1"}, ended: true}
		ended := false
		for range len(in) + 1 { // each frame read takes at least two bytes, or fails
			if err := ws.readFrame(); err != nil {
				if ce, ok := err.(*closeError); ok {
					_ = ws.writeControl(websocket.CloseMessage, closeMessage(ce.code, ce.reason), time.Second)
				}
				ended = true
				break
			}
		}
		if !ended {
			t.Fatalf("the reader read %d frames out of %d bytes and did not end", len(in)+1, len(in))
		}
		out := c.out.Bytes()
		for len(out) > 0 {
			if len(out) < 2 {
				t.Fatalf("a frame cut short: % x", out)
			}
			b0, n := out[0], int(out[1])
			switch {
			case b0&0x80 == 0 || b0&0x70 != 0 || b0&0x0f < websocket.CloseMessage:
				t.Fatalf("not a final control frame: first byte %#x", b0)
			case n > 125:
				t.Fatalf("a control frame of %d bytes, masked or over 125", n)
			case len(out) < 2+n:
				t.Fatalf("a frame cut short: % x", out)
			}
			if b0&0x0f == websocket.CloseMessage && len(out) > 2+n {
				t.Fatalf("%d bytes written after a close frame", len(out)-2-n)
			}
			out = out[2+n:]
		}
	})
}
