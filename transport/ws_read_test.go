package transport_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/transport"
)

// clientFrame is a final client frame of opcode op: masked, as a client's
// must be (RFC 6455 §5.3).
func clientFrame(op byte, payload string) []byte { return rawFrame(0x80|op, true, payload) }

// rawFrame is a client frame of first byte b0 (FIN, reserved bits and
// opcode), masked or not.
func rawFrame(b0 byte, masked bool, payload string) []byte {
	return transport.AppendClientFrame(nil, b0, masked, []byte(payload))
}

func bytewise(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// TestWSReadFrames writes client frames on the socket as given, each
// element of writes in one Write (a TCP segment on loopback), and checks the
// client's ping message is answered, and one after it too: whether the
// reader sees a frame whole, in pieces, or with an empty pong (which relay's
// reader may consume without gorilla, see ws_read_linux.go) before or after
// it in one segment, gorilla's framing stays where it was.
func TestWSReadFrames(t *testing.T) {
	r := startRelay(t)
	ping := clientFrame(websocket.TextMessage, `{"type":"ping","timestamp":1}`)
	pong := clientFrame(websocket.PongMessage, "")
	for _, tc := range []struct {
		name   string
		writes [][]byte
	}{
		{"whole", [][]byte{ping}},
		{"byte by byte", bytewise(ping)},
		{"pong byte by byte, then the message", append(bytewise(pong), ping)},
		{"pong and message in one segment", [][]byte{cat(pong, ping)}},
		{"message and pong in one segment", [][]byte{cat(ping, pong)}},
		{"message and a pong cut short in one segment", [][]byte{cat(ping, pong[:3]), pong[3:]}},
		{"pongs, a message and a pong in one segment", [][]byte{cat(pong, pong, pong, ping, pong)}},
		{"a pong cut short, then its rest with the message", [][]byte{pong[:4], cat(pong[4:], ping)}},
		{"two pongs and a message's first byte, then its rest", [][]byte{cat(pong, pong, ping[:1]), ping[1:]}},
		{"a pong's first byte, then its rest and a message's first 7 bytes, then the rest", [][]byte{pong[:1], cat(pong[1:], ping[:7]), ping[7:]}},
		{"a pong with a payload", [][]byte{clientFrame(websocket.PongMessage, "x"), ping}},
		{"a pong with a payload, with the message", [][]byte{cat(clientFrame(websocket.PongMessage, "relay"), ping)}},
		{"a 16-bit length message", [][]byte{clientFrame(websocket.TextMessage, `{"type":"ping","timestamp":1,"pad":"`+strings.Repeat("a", 300)+`"}`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := wsLive(t, r, "/events/projects/1/tickets")
			raw := conn.NetConn()
			for _, w := range tc.writes {
				if _, err := raw.Write(w); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 2 {
				if m := wsNext(t, conn); m["type"] != "pong" {
					t.Fatalf("answer %d: got %v, want a pong", i, m)
				}
				if i == 0 {
					if _, err := raw.Write(ping); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

// TestWSClientClose: a client's close frame is answered with a close frame
// of its code, and the stream ends.
func TestWSClientClose(t *testing.T) {
	r := startRelay(t)
	conn := wsLive(t, r, "/events/projects/1/tickets")
	msg := string(websocket.FormatCloseMessage(websocket.CloseGoingAway, "bye"))
	if _, err := conn.NetConn().Write(cat(clientFrame(websocket.PongMessage, ""), clientFrame(websocket.CloseMessage, msg))); err != nil {
		t.Fatal(err)
	}
	if code, _ := wsCloseCode(t, conn); code != websocket.CloseGoingAway {
		t.Errorf("close code: got %d, want %d", code, websocket.CloseGoingAway)
	}
	waitFor(t, "the stream to end", func() bool { return r.hub.Subscribers() == 0 })
}

// TestWSPongsKeepAlive: a client that answers every ping with an empty
// pong (as gorilla's client and browsers do) and sends nothing else stays
// connected well past the read deadline a pong extends.
func TestWSPongsKeepAlive(t *testing.T) {
	const heartbeat, writeTimeout = 50 * time.Millisecond, 500 * time.Millisecond
	r := startRelay(t, withConfig(func(c *transport.Config) {
		c.Heartbeat = heartbeat
		c.WriteTimeout = writeTimeout
	}))
	conn := wsLive(t, r, "/events/projects/1/tickets")
	pings := make(chan struct{}, 100)
	conn.SetPingHandler(func(data string) error {
		pings <- struct{}{}
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	msgs := make(chan []byte, 1)
	readErr := make(chan error, 1)
	go func() {
		for {
			_, m, err := conn.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			msgs <- m
		}
	}()
	// Past three deadlines' worth of pings (2 heartbeats and a write timeout).
	want := 3 * int((2*heartbeat+writeTimeout)/heartbeat)
	deadline := time.After(time.Duration(want) * heartbeat * 10)
	for n := 0; n < want; n++ {
		select {
		case <-pings:
		case err := <-readErr:
			t.Fatalf("after %d pings answered: %v", n, err)
		case <-deadline:
			t.Fatalf("%d pings of %d within %v", n, want, time.Duration(want)*heartbeat*10)
		}
	}
	id := r.mustPublish(t, "project_1_tickets", "still here", nil)
	select {
	case m := <-msgs:
		if e := envelope(t, string(m)); e["id"] != id {
			t.Errorf("got %v, want event %s", e, id)
		}
	case err := <-readErr:
		t.Fatalf("after %d pings: %v", want, err)
	case <-time.After(wait):
		t.Fatal("no event")
	}
	conn.Close()
	<-readErr
}

// TestWSProtocolErrors: relay reads client frames itself (ws_read.go), so
// it enforces RFC 6455's rules for them: each violation closes with its
// code, and the stream ends.
func TestWSProtocolErrors(t *testing.T) {
	r := startRelay(t)
	const fin, text, cont = 0x80, websocket.TextMessage, 0
	for _, tc := range []struct {
		name  string
		frame []byte
		code  int
	}{
		{"unmasked", rawFrame(fin|text, false, `{"type":"ping"}`), websocket.CloseProtocolError},
		{"reserved bit", rawFrame(fin|0x40|text, true, `{"type":"ping"}`), websocket.CloseProtocolError},
		{"fragmented ping", rawFrame(websocket.PingMessage, true, "x"), websocket.CloseProtocolError},
		{"ping over 125 bytes", clientFrame(websocket.PingMessage, strings.Repeat("x", 126)), websocket.CloseProtocolError},
		{"reserved data opcode", rawFrame(fin|3, true, "x"), websocket.CloseProtocolError},
		{"reserved control opcode", rawFrame(fin|0xB, true, "x"), websocket.CloseProtocolError},
		{"continuation of nothing", rawFrame(fin|cont, true, "x"), websocket.CloseProtocolError},
		{"new message inside a fragmented one", cat(rawFrame(text, true, `{"type":`), rawFrame(fin|text, true, `{}`)), websocket.CloseProtocolError},
		{"close with a 1-byte payload", clientFrame(websocket.CloseMessage, "x"), websocket.CloseProtocolError},
		{"close with 1005", clientFrame(websocket.CloseMessage, "\x03\xed"), websocket.CloseProtocolError},
		{"close with 999", clientFrame(websocket.CloseMessage, "\x03\xe7"), websocket.CloseProtocolError},
		{"close with a reason not UTF-8", clientFrame(websocket.CloseMessage, "\x03\xe8\xff"), websocket.CloseInvalidFramePayloadData},
		{"message over the limit in fragments", cat(rawFrame(text, true, strings.Repeat(" ", transport.MaxClientMessage)),
			rawFrame(fin|cont, true, " ")), websocket.CloseMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := wsLive(t, r, "/events/projects/1/tickets")
			if _, err := conn.NetConn().Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			if code, reason := wsCloseCode(t, conn); code != tc.code {
				t.Errorf("close: got %d %q, want %d", code, reason, tc.code)
			}
		})
	}
	waitFor(t, "every stream to end", func() bool { return r.hub.Subscribers() == 0 })
}

// TestWSFragmentedMessage: a message in fragments, with control frames
// between them (RFC 6455 §5.4 allows them there), is read whole, and its
// reply and the pong for the client's ping both come back.
func TestWSFragmentedMessage(t *testing.T) {
	r := startRelay(t)
	conn := wsLive(t, r, "/events/projects/1/tickets")
	pongs := make(chan string, 1)
	conn.SetPongHandler(func(data string) error { pongs <- data; return nil })
	frames := cat(
		rawFrame(websocket.TextMessage, true, `{"type":"pi`),
		clientFrame(websocket.PingMessage, "between"),
		clientFrame(websocket.PongMessage, ""),
		rawFrame(0, true, `ng","timest`),
		rawFrame(0x80, true, `amp":42}`),
	)
	for _, w := range [][]byte{frames, nil} {
		if w == nil { // and once more, a byte at a time
			w = frames
			for _, b := range bytewise(w) {
				if _, err := conn.NetConn().Write(b); err != nil {
					t.Fatal(err)
				}
			}
		} else if _, err := conn.NetConn().Write(w); err != nil {
			t.Fatal(err)
		}
		if m := wsNext(t, conn); m["type"] != "pong" || m["timestamp"] != float64(42) {
			t.Fatalf("reply: got %v, want a pong with timestamp 42", m)
		}
		select {
		case got := <-pongs:
			if got != "between" {
				t.Errorf("pong: got %q, want %q", got, "between")
			}
		default:
			t.Error("no pong for the ping between the fragments")
		}
	}
}

// TestWSControlFrameFlood: a client's pings, and its pongs that answer no
// ping of relay's, count against the connection's rate like messages: past
// the burst a ping goes unanswered, and a client that goes on is closed with
// 4029. The pongs that answer relay's own pings count for nothing.
func TestWSControlFrameFlood(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"pings", clientFrame(websocket.PingMessage, "x")},
		{"pongs", clientFrame(websocket.PongMessage, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRelay(t, withLimits(func(l *transport.Limits) {
				l.ActionRate = 1
				l.ActionBurst = 5
				l.ActionHardLimit = 20
			}))
			conn := wsLive(t, r, "/events/projects/1/tickets")
			pongs := 0
			conn.SetPongHandler(func(string) error { pongs++; return nil })
			var flood []byte
			for range 100 {
				flood = append(flood, tc.frame...)
			}
			if _, err := conn.NetConn().Write(flood); err != nil {
				t.Fatal(err)
			}
			if code, _ := wsCloseCode(t, conn); code != 4029 {
				t.Errorf("close code: got %d, want 4029", code)
			}
			if tc.name == "pings" && (pongs < 5 || pongs > 7) {
				t.Errorf("pongs answering 100 pings: got %d, want the burst of 5 (and the refill meanwhile)", pongs)
			}
		})
	}
	t.Run("answers to relay's pings", func(t *testing.T) {
		r := startRelay(t, withConfig(func(c *transport.Config) {
			c.Heartbeat = 5 * time.Millisecond
			c.Limits.ActionRate, c.Limits.ActionBurst, c.Limits.ActionHardLimit = 1, 1, 2
		}))
		conn := wsLive(t, r, "/events/projects/1/tickets")
		pings := 0
		conn.SetPingHandler(func(data string) error {
			pings++
			return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		// Pings are handled inside the read, which returns only on a
		// message, a close or the deadline.
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			_, _, err := conn.ReadMessage()
			if err == nil {
				continue
			}
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				t.Fatalf("after answering %d pings: %v, want the stream still open", pings, err)
			}
			break
		}
		if pings < 50 {
			t.Errorf("pings in 2 s at a 5 ms heartbeat: got %d, want many more than the connection's rate of 1 a second", pings)
		}
	})
}
