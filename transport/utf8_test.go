package transport_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/transport"
)

// TestPublishRefusesInvalidUnicode: an event that is not Unicode text would
// be sent raw in WebSocket text frames, which browsers must fail (1007), on
// every replay. It is refused with a 400 that says where, and nothing of its
// request is stored.
func TestPublishRefusesInvalidUnicode(t *testing.T) {
	eachStore(t, func(t *testing.T, st string) {
		r := startRelay(t, withStore(st))
		pub := publisher(t)
		for _, tc := range []struct {
			name, body, want string
		}{
			{"invalid byte", "{\"channel\":\"u8\",\"type\":\"t\",\"data\":\"caf\xe9\"}",
				"event is not valid UTF-8 at byte 38: send JSON encoded as UTF-8"},
			{"invalid byte in the type", "{\"channel\":\"u8\",\"type\":\"\xff\"}",
				"event is not valid UTF-8 at byte 24"},
			{"lone surrogate", `{"channel":"u8","type":"t","data":{"title":"\ud800"}}`,
				`event has a lone UTF-16 surrogate \ud800 at byte 44, which is no character`},
			{"in a batch", "[{\"channel\":\"u8\",\"type\":\"t\"},{\"channel\":\"u8\",\"type\":\"t\",\"d\":\"\xc3(\"}]",
				"event 1: event is not valid UTF-8 at byte 32"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, out := r.publish(t, pub, tc.body)
				if status != http.StatusBadRequest || out["error"] != "bad_request" {
					t.Fatalf("got %d %v, want 400 bad_request", status, out)
				}
				if msg, _ := out["message"].(string); !strings.HasPrefix(msg, tc.want) {
					t.Errorf("message: got %q, want %q…", msg, tc.want)
				}
			})
		}
		if evs := r.kept(t, "u8"); len(evs) != 0 {
			t.Errorf("the log holds %d events of refused requests, want none", len(evs))
		}

		// Unicode text, raw or escaped in pairs, goes through as sent.
		reader := token(t, auth.Identity{UserID: "9", Subscribe: []string{"u8"}}, time.Hour)
		conn, _, err := wsDial(t, r.url+q("/events", "channel", "u8", "token", reader), nil)
		if err != nil {
			t.Fatal(err)
		}
		if m := wsNext(t, conn); m["type"] != "connection_established" {
			t.Fatalf("got %v, want connection_established", m)
		}
		if status, out := r.publish(t, pub, `{"channel":"u8","type":"t","data":"café 🎉 \ud83c\udf89"}`); status != http.StatusOK {
			t.Fatalf("publish: got %d %v, want 200", status, out)
		}
		raw := wsText(t, conn)
		if m := envelope(t, raw); m["data"] != "café 🎉 🎉" {
			t.Errorf("data: got %q, want %q", m["data"], "café 🎉 🎉")
		}
	})
}

// TestWebSocketRepliesAreUnicode: what relay writes back to a WebSocket
// client, echoes and error messages quoting its input included, is UTF-8
// whatever the client sent, in a text or a binary frame.
func TestWebSocketRepliesAreUnicode(t *testing.T) {
	r := startRelay(t)
	conn, _, err := wsDial(t, r.url+q("/events/projects/1/presence", "token", alice(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for m := wsNext(t, conn); m["type"] != "connection_established"; m = wsNext(t, conn) {
	}
	for _, tc := range []struct {
		name string
		kind int
		msg  string
		want string // the reply's start
	}{
		{"valid ping", websocket.TextMessage, `{"type":"ping","timestamp":"12:00 é"}`, `{"type":"pong","timestamp":"12:00 é"}`},
		{"ping with an invalid byte", websocket.TextMessage, "{\"type\":\"ping\",\"timestamp\":\"\xff\"}",
			`{"type":"error","error":"bad_request","message":"message is not valid UTF-8 at byte 28`},
		{"ping with an invalid byte, binary", websocket.BinaryMessage, "{\"type\":\"ping\",\"timestamp\":[\"\xc3\"]}",
			`{"type":"error","error":"bad_request","message":"message is not valid UTF-8 at byte 29`},
		{"ping with a lone surrogate", websocket.TextMessage, `{"type":"ping","timestamp":"\udc00"}`,
			`{"type":"error","error":"bad_request","message":"message has a lone UTF-16 surrogate \\udc00 at byte 28`},
		{"unknown type, invalid byte", websocket.TextMessage, "{\"type\":\"x\xff\"}",
			`{"type":"error","error":"bad_request","message":"message is not valid UTF-8 at byte 10`},
		{"unknown type quoted", websocket.TextMessage, `{"type":"tÿping"}`,
			`{"type":"error","error":"unknown_type","message":"relay does not know message type \"tÿping\""`},
		{"not JSON", websocket.BinaryMessage, "\xff\xfe", `{"type":"error","error":"bad_request"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := conn.WriteMessage(tc.kind, []byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			if got := wsText(t, conn); !strings.HasPrefix(got, tc.want) {
				t.Errorf("got %s, want %s…", got, tc.want)
			}
		})
	}
}

// TestCloseReasonIsUnicode: a close reason quoting input is cut to the 123
// bytes a close frame carries on a character boundary, so the client can read
// it (gorilla, like browsers, fails a close frame that is not UTF-8).
func TestCloseReasonIsUnicode(t *testing.T) {
	r := startRelay(t)
	cursor := "x" + strings.Repeat("é", 60) // the cut at byte 120 falls inside an é
	conn, _, err := wsDial(t, r.url+q("/events/notifications", "token", alice(t), "last_event_id", cursor), nil)
	if err != nil {
		t.Fatal(err)
	}
	code, reason := wsCloseCode(t, conn)
	if code != transport.CloseBadRequest || !strings.HasPrefix(reason, `event id "xéé`) || !strings.HasSuffix(reason, "é...") {
		t.Errorf("got %d %q, want %d and the cursor cut after an é", code, reason, transport.CloseBadRequest)
	}
}

// wsText reads the next message, which must be a text frame of UTF-8.
func wsText(t *testing.T, conn *websocket.Conn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	kind, raw, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if kind != websocket.TextMessage || !utf8.Valid(raw) {
		t.Fatalf("got a frame of kind %d, %q: want a text frame of UTF-8", kind, raw)
	}
	return string(raw)
}
