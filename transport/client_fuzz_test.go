package transport_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/transport"
)

// FuzzClientMessage feeds WebSocket client messages to the parser a
// connection's reader uses (alice's, reading project 1's presence). Whatever
// the bytes, the reply goes out in a text frame, so it must be nil or one JSON
// object of Unicode text: a pong (only for a ping, echoing its timestamp) or
// an error with a code and a message. Nothing but a typing, viewing or
// mark_read action may be answered with silence.
func FuzzClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping","timestamp":123}`,
		`{"type":"ping","timestamp":"2026-03-01T12:00:00Z é"}`,
		`{"type":"ping","timestamp":{"a":[1,2,{"b":null}]}}`,
		`{"type":"ping"}`,
		"{\"type\":\"ping\",\"timestamp\":\"\xff\"}",
		`{"type":"ping","timestamp":"\ud800"}`,
		`{"type":"ping","timestamp":"\ud83c\udf89 <&>"}`,
		`{"type":"typing","ticket_id":5,"is_typing":true}`,
		`{"type":"typing","project_id":"2","ticket_id":5,"is_typing":false}`,
		`{"type":"typing","project_id":3,"ticket_id":5,"is_typing":true}`,
		`{"type":"typing","ticket_id":"5","is_typing":true}`,
		`{"type":"viewing","ticket_id":null}`,
		`{"type":"viewing","project_id":"a_b","ticket_id":1e3}`,
		`{"type":"mark_read","id":"b3c1e0d2-uuid"}`,
		`{"type":"mark_read","id":42}`,
		`{"type":"mark_read","id":[1]}`,
		`{"type":"mark_read"}`,
		"{\"type\":\"t\xc3\"}",
		`{"type":"nope"}`, `{"type":""}`, `{"type":1}`, `[]`, `null`, `"ping"`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	srv := clientMessageServer(f)
	alice := &auth.Identity{UserID: "1", Name: "alice", Projects: []string{"1", "2"}, Expires: time.Now().Add(time.Hour)}
	f.Fuzz(func(t *testing.T, raw []byte) {
		reply := srv.HandleClientMessage(alice, []string{"1"}, raw)
		if reply == nil {
			var m struct{ Type string }
			if json.Unmarshal(raw, &m) != nil || m.Type != "typing" && m.Type != "viewing" && m.Type != "mark_read" {
				t.Fatalf("%q: no reply", raw)
			}
			return
		}
		if !json.Valid(reply) || !utf8.Valid(reply) || events.ValidateUnicode(reply) != nil {
			t.Fatalf("%q: reply %q is not JSON of Unicode text", raw, reply)
		}
		var r struct {
			Type, Error, Message string
			Timestamp            json.RawMessage
		}
		if err := json.Unmarshal(reply, &r); err != nil {
			t.Fatalf("%q: reply %s: %v", raw, reply, err)
		}
		switch r.Type {
		case "pong":
			var in struct {
				Type      string
				Timestamp json.RawMessage
			}
			if err := json.Unmarshal(raw, &in); err != nil || in.Type != "ping" {
				t.Fatalf("%q: pong for what is not a ping", raw)
			}
			if !bytes.Equal(canonical(t, in.Timestamp), canonical(t, r.Timestamp)) {
				t.Fatalf("%q: pong timestamp %s, want %s", raw, r.Timestamp, in.Timestamp)
			}
		case "error":
			if r.Error == "" || r.Message == "" {
				t.Fatalf("%q: error reply %s without a code or a message", raw, reply)
			}
		default:
			t.Fatalf("%q: reply %s is neither a pong nor an error", raw, reply)
		}
	})
}

// clientMessageServer is a relay server over a memory store with presence
// and notifications, without a listener: the client-message parser needs no
// connection.
func clientMessageServer(f *testing.F) *transport.Server {
	f.Helper()
	// Limits out of the way: the fuzzer sends far more than a client may.
	unlimited := transport.Limits{ActionRate: 1 << 30, ActionBurst: 1 << 30, UserActionRate: 1 << 30, UserActionBurst: 1 << 30}
	r, proc := buildRelay(f, withConfig(func(c *transport.Config) { c.Limits = unlimited }))
	f.Cleanup(func() {
		if err := proc.Close(); err != nil {
			f.Errorf("close: %v", err)
		}
	})
	return r.srv
}

// canonical is raw JSON re-encoded (numbers as written), so that equal
// values compare equal whatever their spacing and escapes; nil for none.
func canonical(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	b, _ := json.Marshal(v)
	return b
}
