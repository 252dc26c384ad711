package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/relaydev/relay/events"
)

// unicodeCases are published events whose text is or is not Unicode. They are
// unit cases and seeds of FuzzParseDraft.
var unicodeCases = []struct {
	name string
	raw  string
	ok   bool
	at   string // for a refusal, the "byte N" the message names
}{
	{"UTF-8 text", `{"channel":"c","type":"t","data":"héllo 日本 🎉"}`, true, ""},
	{"escaped pair", `{"channel":"c","type":"t","data":"\ud83c\udf89"}`, true, ""},
	{"escaped BMP characters", `{"channel":"c","type":"t","data":"\u00e9\uFFFD\u0000\uffff"}`, true, ""},
	{"escaped backslash before u", `{"channel":"c","type":"t","data":"\\ud800"}`, true, ""},
	{"escaped quote, then surrogate-looking text", `{"channel":"c","type":"t","data":"\"\\ud800\""}`, true, ""},
	{"invalid byte in a value", "{\"channel\":\"c\",\"type\":\"t\",\"data\":\"a\xffb\"}", false, "byte 35"},
	{"invalid byte in the type", "{\"channel\":\"c\",\"type\":\"\xc3\"}", false, "byte 23"},
	{"invalid byte in a key", "{\"channel\":\"c\",\"type\":\"t\",\"\xfe\":1}", false, "byte 27"},
	{"invalid byte in a reserved member", "{\"channel\":\"c\",\"type\":\"t\",\"id\":\"\x80\"}", false, "byte 32"},
	{"invalid byte deep inside", "{\"channel\":\"c\",\"type\":\"t\",\"data\":{\"a\":[1,\"\xed\xa0\x80\"]}}", false, "byte 42"},
	{"overlong encoding", "{\"channel\":\"c\",\"type\":\"t\",\"data\":\"\xc0\xaf\"}", false, "byte 34"},
	{"truncated sequence at the end of a string", "{\"channel\":\"c\",\"type\":\"t\",\"data\":\"\xe6\x97\"}", false, "byte 34"},
	{"lone high surrogate", `{"channel":"c","type":"t","data":"\ud800"}`, false, "byte 34"},
	{"lone low surrogate", `{"channel":"c","type":"t","data":"x\uDC00"}`, false, "byte 35"},
	{"high surrogate then a non-surrogate", `{"channel":"c","type":"t","data":"\ud800\u0041"}`, false, "byte 34"},
	{"two high surrogates", `{"channel":"c","type":"t","data":"\ud800\ud800\udc00"}`, false, "byte 34"},
	{"lone surrogate in the type", `{"channel":"c","type":"\udfff"}`, false, "byte 23"},
	{"lone surrogate in a key", `{"channel":"c","type":"t","\ud83c":1}`, false, "byte 27"},
	{"high surrogate at the end of a string", `{"channel":"c","type":"t","data":"ab\ud83c"}`, false, "byte 36"},
}

func TestParseDraftUnicode(t *testing.T) {
	for _, tc := range unicodeCases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := events.ParseDraft([]byte(tc.raw), 0)
			if tc.ok {
				if err != nil {
					t.Fatalf("got %v, want a draft", err)
				}
				checkDraft(t, []byte(tc.raw), d)
				return
			}
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("got %+v, %v, want ErrInvalid", d, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "event ") || !strings.Contains(msg, " at "+tc.at+":") && !strings.Contains(msg, " at "+tc.at+",") {
				t.Errorf("message %q: want it to start with \"event \" and name %s", msg, tc.at)
			}
		})
	}
}

func TestValidateUnicodeMessages(t *testing.T) {
	err := events.ValidateUnicode([]byte("\"\xff\""))
	if want := "is not valid UTF-8 at byte 1: send JSON encoded as UTF-8"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("invalid byte: got %v, want %q…", err, want)
	}
	err = events.ValidateUnicode([]byte(`"\uD800"`))
	if want := `has a lone UTF-16 surrogate \ud800 at byte 1, which is no character`; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("lone surrogate: got %v, want %q…", err, want)
	}
}

// FuzzParseDraft checks what ParseDraft lets into a log: a draft whose
// envelope is one line of valid JSON and valid Unicode, with relay's own id,
// channel and ts exactly once, and every other member as published.
func FuzzParseDraft(f *testing.F) {
	for _, tc := range unicodeCases {
		f.Add([]byte(tc.raw))
	}
	for _, s := range []string{
		`{"channel":"c","type":"t"}`,
		`{"channel":"project_1_tickets","type":"ticket.updated","data":{"id":5,"title":"<b>&</b>\u2028"},"id":"x","ts":1,"idempotency_key":"k-1"}`,
		`{"channel":"c","type":"t","\u0069d":"escaped reserved key","t\u0073":2}`,
		`{"channel":"c","type":"t","type":"u","data":1,"data":2}`,
		`{"channel":"c","type":"t","CHANNEL":"x","Id":"y"}`,
		`{"channel":"c","type":"t","idempotency_key":"bad key"}`,
		"{\"channel\":\"c\",\"type\":\"t\",\"data\":{\"a\" :\r\n 1,\n\"b\":\"x\\ny\"}}",
		`{"channel":"c","type":"t","data":[1e400]}`,
		`{"channel":"c\u0000","type":"t"}`,
		`{"channel":"c","type":"t","":""}`,
		` [] `, `null`, `{}`, `{"channel":"c","type":"t"`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := events.ParseDraft(raw, 4096)
		if err != nil {
			if !errors.Is(err, events.ErrInvalid) && !errors.Is(err, events.ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrInvalid nor ErrTooLarge", err)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("error message %q is not UTF-8", err)
			}
			return
		}
		if !utf8.Valid(raw) {
			t.Fatalf("accepted %q, which is not UTF-8", raw)
		}
		checkDraft(t, raw, d)
	})
}

// checkDraft checks an accepted draft and the envelope of an event made from
// it against the published object raw.
func checkDraft(t *testing.T, raw []byte, d events.Draft) {
	t.Helper()
	if err := events.ValidateChannel(d.Channel); err != nil {
		t.Fatalf("accepted channel %q: %v", d.Channel, err)
	}
	if d.Type == "" || !utf8.ValidString(d.Type) {
		t.Fatalf("accepted type %q", d.Type)
	}
	ev := events.NewEvent(d, events.Position{Epoch: "e", Seq: 1}, time.Unix(0, 0))
	env := ev.JSON()
	if !json.Valid(env) || !utf8.Valid(env) {
		t.Fatalf("envelope %q is not valid JSON in UTF-8", env)
	}
	if err := events.ValidateUnicode(env); err != nil {
		t.Fatalf("envelope %s: %v", env, err)
	}
	if n := bytes.Count(ev.SSE(), []byte("\n")); n != 3 {
		t.Fatalf("SSE frame %q has %d newlines, want 3 (id, data, blank)", ev.SSE(), n)
	}
	keys := topKeys(t, env)
	for _, k := range []string{"id", "channel", "ts", "type"} {
		if keys[k] != 1 {
			t.Errorf("envelope %s has %q %d times, want once", env, k, keys[k])
		}
	}
	if keys["idempotency_key"] != 0 {
		t.Errorf("envelope %s carries the idempotency key", env)
	}
	got, sent := decodeObject(t, env), decodeObject(t, raw)
	if got["id"] != "e-1" || got["channel"] != d.Channel || got["type"] != d.Type || sent["channel"] != d.Channel {
		t.Errorf("envelope %s: id, channel, type: got %v, %v, %v, want e-1, %s, %s", env, got["id"], got["channel"], got["type"], d.Channel, d.Type)
	}
	for _, k := range []string{"id", "channel", "ts", "idempotency_key"} {
		delete(got, k)
		delete(sent, k)
	}
	g, _ := json.Marshal(got)
	s, _ := json.Marshal(sent)
	if !bytes.Equal(g, s) {
		t.Errorf("members: got %s, published %s", g, s)
	}
}

// decodeObject decodes a JSON object, numbers kept as written: relay forwards
// them as sent, even those beyond float64 (1e400).
func decodeObject(t *testing.T, obj []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("%s: %v", obj, err)
	}
	return m
}

// topKeys counts the member names of a JSON object, duplicates included.
func topKeys(t *testing.T, obj []byte) map[string]int {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not an object: %v", obj, err)
	}
	keys := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", obj, err)
		}
		keys[tok.(string)]++
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatalf("%s: %v", obj, err)
		}
	}
	return keys
}
