package events

import (
	"bytes"
	"testing"
)

// FuzzParseDraftFast checks that parseDraftFast, when it takes an event,
// gives the draft parseDraftMap gives, byte for byte: the same members, in
// the same order, compacted and escaped alike.
func FuzzParseDraftFast(f *testing.F) {
	for _, s := range []string{
		`{"channel":"c","type":"t"}`,
		`{"type":"t","zeta":1,"channel":"c","data":{"b":2,"a":[1]}}`,
		`{"channel": "project_1_tickets", "type": "ticket_update", "action": "updated", "data": {"ticket_id": 5, "title": "a <b> & c", "tags": ["x", "y"]}}`,
		`{"channel":"c","type":"t","data":"line\u2028sep\u2029 ` + "\u2028\u2029" + `","id":"x","ts":1,"idempotency_key":"k-1"}`,
		"{\"channel\":\"c\",\"type\":\"t\",\"data\":{\"a\" :\r\n 1,\n\"b\":\"x\\ny\\\"z\"}}",
		`{"channel":"c","type":"t","data":[1e400, -0.5e-3, true, false, null, {}, []]}`,
		`{"channel":"c","type":"t","type":"u"}`,
		`{"channel":"c\u0041","type":"t"}`,
		`{"channel":"c","type":"t","":"","a<":1}`,
		`{"channel":"c","type":"t","idempotency_key":"bad key"}`,
		`{"channel":"c","type":"t","n":12 , "m" : "x" }`,
		` [] `, `null`, `{}`, `{"channel":"c","type":"t"`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fast, ok := parseDraftFast(raw)
		slow, err := parseDraftMap(raw)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("%q: the fast path took what the map path refuses: %v", raw, err)
		}
		if fast.Channel != slow.Channel || fast.Type != slow.Type || fast.IdempotencyKey != slow.IdempotencyKey || !bytes.Equal(fast.Fields, slow.Fields) {
			t.Fatalf("%q:\nfast %q %q %q %s\nmap  %q %q %q %s", raw, fast.Channel, fast.Type, fast.IdempotencyKey, fast.Fields,
				slow.Channel, slow.Type, slow.IdempotencyKey, slow.Fields)
		}
	})
}

// TestParseDraftFastTakes checks that the fast path takes the events
// backends send (compact or with spaces, as Python's json.dumps writes
// them), so that publishing does not quietly fall back to the map path.
func TestParseDraftFastTakes(t *testing.T) {
	for _, s := range []string{
		`{"channel":"project_3_tickets","type":"bench","data":{"p":1,"n":2}}`,
		`{"channel": "project_1_tickets", "type": "ticket_update", "action": "updated", "data": {"ticket_id": 5, "title": "a <b> & c"}}`,
		`{"channel":"user_1_notifications","type":"notification_message","idempotency_key":"k-1","data":{"id":"8f0c","title":"Ticket assigned"}}`,
	} {
		if _, ok := parseDraftFast([]byte(s)); !ok {
			t.Errorf("%s: fast path declined", s)
		}
	}
}

func BenchmarkParseDraft(b *testing.B) {
	raw := []byte(`{"channel":"project_3_tickets","type":"bench","data":{"p":1,"n":2}}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := parseDraftFast(raw); !ok {
				b.Fatal("declined")
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parseDraftMap(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
