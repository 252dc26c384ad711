package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
)

func TestParseDraft(t *testing.T) {
	for _, tc := range []struct {
		name       string
		raw        string
		max        int
		wantErr    error
		wantFields string // the members kept, when accepted
	}{
		{"minimal", `{"channel":"c","type":"t"}`, 0, nil, `"type":"t"`},
		{"other members kept as sent, sorted", `{"type":"t","zeta":1,"channel":"c","data":{"b":2,"a":[1]}}`, 0, nil,
			`"data":{"b":2,"a":[1]},"type":"t","zeta":1`},
		{"reserved members dropped", `{"channel":"c","type":"t","id":"x","ts":"y"}`, 0, nil, `"type":"t"`},
		{"whitespace", " \n{ \"channel\" : \"c\" , \"type\" : \"t\" }\n", 0, nil, `"type":"t"`},
		{"inner whitespace compacted: SSE data stays one line", "{\"channel\":\"c\",\"type\":\"t\",\"data\":{\"a\" :\r\n 1,\n\"b\":\"x\\ny\"}}", 0, nil,
			`"data":{"a":1,"b":"x\ny"},"type":"t"`},
		{"exactly at the limit", `{"channel":"c","type":"t"}`, 26, nil, `"type":"t"`},
		{"over the limit", `{"channel":"c","type":"t"}`, 25, events.ErrTooLarge, ""},
		{"over the default limit", `{"channel":"c","type":"t","d":"` + strings.Repeat("x", events.DefaultMaxPayload) + `"}`, 0, events.ErrTooLarge, ""},
		{"not JSON", `{"channel":`, 0, events.ErrInvalid, ""},
		{"empty", ``, 0, events.ErrInvalid, ""},
		{"null", `null`, 0, events.ErrInvalid, ""},
		{"array", `[{"channel":"c","type":"t"}]`, 0, events.ErrInvalid, ""},
		{"string", `"c"`, 0, events.ErrInvalid, ""},
		{"missing channel", `{"type":"t"}`, 0, events.ErrInvalid, ""},
		{"null channel", `{"channel":null,"type":"t"}`, 0, events.ErrInvalid, ""},
		{"numeric channel", `{"channel":1,"type":"t"}`, 0, events.ErrInvalid, ""},
		{"empty channel", `{"channel":"","type":"t"}`, 0, events.ErrInvalid, ""},
		{"invalid channel", `{"channel":"a b","type":"t"}`, 0, events.ErrInvalid, ""},
		{"missing type", `{"channel":"c"}`, 0, events.ErrInvalid, ""},
		{"empty type", `{"channel":"c","type":""}`, 0, events.ErrInvalid, ""},
		{"object type", `{"channel":"c","type":{}}`, 0, events.ErrInvalid, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := events.ParseDraft([]byte(tc.raw), tc.max)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("got %+v, %v, want %v", d, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want a draft", err)
			}
			if d.Channel != "c" || d.Type != "t" {
				t.Errorf("channel, type: got %q, %q, want c, t", d.Channel, d.Type)
			}
			if string(d.Fields) != tc.wantFields {
				t.Errorf("fields: got %s, want %s", d.Fields, tc.wantFields)
			}
		})
	}
}

func TestNewDraft(t *testing.T) {
	d, err := events.NewDraft("c", "t", map[string]int{"n": 1})
	if err != nil || string(d.Fields) != `"data":{"n":1},"type":"t"` {
		t.Errorf("NewDraft: got %s, %v", d.Fields, err)
	}
	if _, err := events.NewDraft("c", "t", func() {}); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("NewDraft(func): got %v, want ErrInvalid", err)
	}
	if _, err := events.NewDraft("bad channel", "t", nil); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("NewDraft(bad channel): got %v, want ErrInvalid", err)
	}
}

// TestEventEncodings checks the shared encodings of a stored event: the
// envelope JSON, the SSE frame with its id line, and the frame without it.
func TestEventEncodings(t *testing.T) {
	d, err := events.ParseDraft([]byte(`{"channel":"project_1_tickets","type":"t","data":"a\nb"}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("x", 3600))
	ev := events.NewEvent(d, events.Position{Epoch: "ep", Seq: 9}, at)

	if got := ev.ID(); got != "ep-9" {
		t.Errorf("ID: got %q, want ep-9", got)
	}
	var env map[string]any
	if err := json.Unmarshal(ev.JSON(), &env); err != nil {
		t.Fatalf("JSON %s: %v", ev.JSON(), err)
	}
	want := map[string]any{"id": "ep-9", "channel": "project_1_tickets", "type": "t", "data": "a\nb", "ts": "2026-01-02T02:04:05.0000006Z"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("envelope %s: got %v, want %v", k, env[k], v)
		}
	}
	if len(env) != len(want) {
		t.Errorf("envelope: got %v, want %v", env, want)
	}
	if _, err := time.Parse(time.RFC3339, env["ts"].(string)); err != nil {
		t.Errorf("ts: %v", err)
	}
	if got, want := string(ev.SSE()), "id: ep-9\ndata: "+string(ev.JSON())+"\n\n"; got != want {
		t.Errorf("SSE: got %q, want %q", got, want)
	}
	if got, want := string(ev.SSEData()), "data: "+string(ev.JSON())+"\n\n"; got != want {
		t.Errorf("SSEData: got %q, want %q", got, want)
	}
	if strings.Count(string(ev.SSE()), "\n") != 3 {
		t.Errorf("SSE frame %q: want the data on one line (newlines in data escaped)", ev.SSE())
	}
	calls := 0
	build := func(*events.Event) any { calls++; return calls }
	if a, b := ev.Ext(build), ev.Ext(build); a != 1 || b != 1 || calls != 1 {
		t.Errorf("Ext: got %v, %v after %d builds, want one shared build", a, b, calls)
	}
}

func TestControl(t *testing.T) {
	got := string(events.Control("reset", "channel", "c", "message", "say \"hi\"\n"))
	want := `{"type":"reset","channel":"c","message":"say \"hi\"\n"}`
	if got != want {
		t.Errorf("Control: got %s, want %s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Errorf("Control: %s is not JSON", got)
	}
}

func TestEphemeralEncoding(t *testing.T) {
	d, err := events.NewDraft("project_1_presence", "typing", map[string]any{"ticket_id": 5})
	if err != nil {
		t.Fatal(err)
	}
	ev := events.NewEphemeral(d, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if got := ev.ID(); got != "" {
		t.Errorf("ID: got %q, want none", got)
	}
	want := `{"channel":"project_1_presence","ts":"2026-01-02T03:04:05Z","data":{"ticket_id":5},"type":"typing"}`
	if got := string(ev.JSON()); got != want {
		t.Errorf("JSON:\n got %s\nwant %s", got, want)
	}
	if got := string(ev.SSE()); got != "data: "+want+"\n\n" {
		t.Errorf("SSE frame: got %q, want a data line and no id line", got)
	}
}
