package transport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/transport"
)

// answer is a publish's status, headers and decoded body.
type answer struct {
	status int
	header http.Header
	body   map[string]any
}

// publishWith posts body to /api/publish with extra headers.
func (r *relay) publishWith(t *testing.T, body string, header map[string]string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.url+"/api/publish", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+publisher(t))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		t.Fatalf("publish answer is not JSON: %v", err)
	}
	return a
}

// replayed reports the answer's Idempotent-Replayed header.
func (a answer) replayed() bool { return a.header.Get(transport.HeaderIdempotentReplayed) == "true" }

// TestPublishIdempotent: a single event with an Idempotency-Key header, and
// a batch with an idempotency_key per event, published again answer the
// first ids, marked Idempotent-Replayed, in the same body shape, and store
// nothing: the log keeps one copy, and subscribers see each event once.
// Over both stores.
func TestPublishIdempotent(t *testing.T) {
	const ch = "project_1_tickets"
	eachStore(t, func(t *testing.T, st string) {
		r := startRelay(t, withStore(st))
		var clients []*client
		for _, kind := range kinds {
			c := mustConnect(t, kind, q(r.url+"/events/projects/1/tickets", "token", alice(t)), nil)
			c.live(t)
			clients = append(clients, c)
		}
		single := `{"channel":"` + ch + `","type":"single"}`
		key := map[string]string{transport.HeaderIdempotencyKey: "ticket-5-update-17"}
		first := r.publishWith(t, single, key)
		if first.status != http.StatusOK || first.replayed() {
			t.Fatalf("first single: got %d %v (replayed %v), want 200, not replayed", first.status, first.body, first.replayed())
		}
		again := r.publishWith(t, single, key)
		if again.status != http.StatusOK || !again.replayed() || len(again.body) != 1 || again.body["id"] != first.body["id"] {
			t.Errorf("repeated single: got %d %v (replayed %v), want 200 {\"id\": %v}, replayed", again.status, again.body, again.replayed(), first.body["id"])
		}

		batch := `[{"channel":"` + ch + `","type":"b0","idempotency_key":"k0"},{"channel":"` + ch + `","type":"b1","idempotency_key":"k1"}]`
		firstBatch := r.publishWith(t, batch, nil)
		if firstBatch.status != http.StatusOK || firstBatch.replayed() {
			t.Fatalf("first batch: got %d %v, want 200, not replayed", firstBatch.status, firstBatch.body)
		}
		againBatch := r.publishWith(t, batch, nil)
		if againBatch.status != http.StatusOK || !againBatch.replayed() || fmt.Sprint(againBatch.body) != fmt.Sprint(firstBatch.body) {
			t.Errorf("repeated batch: got %d %v (replayed %v), want 200 %v, replayed", againBatch.status, againBatch.body, againBatch.replayed(), firstBatch.body)
		}
		// One repeat and one new key: the new one is stored; the answer is
		// not a replay as a whole.
		mixed := r.publishWith(t, `[{"channel":"`+ch+`","type":"b1","idempotency_key":"k1"},{"channel":"`+ch+`","type":"b2","idempotency_key":"k2"}]`, nil)
		ids, _ := mixed.body["ids"].([]any)
		if mixed.status != http.StatusOK || mixed.replayed() || len(ids) != 2 || ids[0] != firstBatch.body["ids"].([]any)[1] {
			t.Errorf("batch with one repeat: got %d %v (replayed %v), want the first id of k1 and a new one, not replayed", mixed.status, mixed.body, mixed.replayed())
		}
		last := r.mustPublish(t, ch, "last", nil)

		want := []string{first.body["id"].(string)}
		for _, id := range firstBatch.body["ids"].([]any) {
			want = append(want, id.(string))
		}
		want = append(want, ids[1].(string), last)
		var kept []string
		for _, ev := range r.kept(t, ch) {
			kept = append(kept, ev.ID())
		}
		if !slices.Equal(kept, want) {
			t.Errorf("log keeps %v, want %v: one copy of each", kept, want)
		}
		for _, c := range clients {
			var got []string
			for len(got) < len(want) {
				got = append(got, c.event(t).envID())
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s subscriber got %v, want %v: each event once", c.kind, got, want)
			}
		}
	})
}

// TestPublishIdempotencyKeyRefused: the header is for single events, must be
// a valid key, and must agree with the event's own idempotency_key.
func TestPublishIdempotencyKeyRefused(t *testing.T) {
	r := startRelay(t)
	const ev = `{"channel":"project_1_tickets","type":"t"}`
	for _, tc := range []struct {
		name, body, key, want string
	}{
		{"header on a batch", "[" + ev + "]", "k", "idempotency_key"},
		{"header and member differ", `{"channel":"project_1_tickets","type":"t","idempotency_key":"a"}`, "b", "differ"},
		{"key with a space", ev, "a b", "printable"},
		{"key too long", ev, strings.Repeat("k", events.MaxIdempotencyKey+1), "bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := r.publishWith(t, tc.body, map[string]string{transport.HeaderIdempotencyKey: tc.key})
			if a.status != http.StatusBadRequest || checkErrorBody(t, a.body) != "bad_request" {
				t.Errorf("got %d %v, want 400 bad_request", a.status, a.body)
			}
			if msg, _ := a.body["message"].(string); !strings.Contains(msg, tc.want) {
				t.Errorf("message %q, want it to mention %q", msg, tc.want)
			}
		})
	}
	if n := len(r.kept(t, "project_1_tickets")); n != 0 {
		t.Errorf("refused publishes stored %d events, want 0", n)
	}
	// Header and member that agree are one key.
	body := `{"channel":"project_1_tickets","type":"t","idempotency_key":"same"}`
	a := r.publishWith(t, body, map[string]string{transport.HeaderIdempotencyKey: "same"})
	b := r.publishWith(t, body, nil)
	if a.status != http.StatusOK || !b.replayed() || b.body["id"] != a.body["id"] {
		t.Errorf("header and member agreeing, then the member alone: got %v then %v (replayed %v), want the same id, replayed", a.body, b.body, b.replayed())
	}
}

// appendFails is a log whose Append fails with err, or when err is nil
// never answers (until the caller's context ends).
type appendFails struct {
	events.Log
	err error
}

func (f *appendFails) Append(ctx context.Context, _ []events.Draft) ([]*events.Event, error) {
	if f.err != nil {
		return nil, f.err
	}
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestPublishStoreUnavailable: a publish the store cannot confirm answers
// 503 store_unavailable with Retry-After and a body saying the event may or
// may not be stored and to retry with the same idempotency key, and never
// waits longer than StoreTimeout.
func TestPublishStoreUnavailable(t *testing.T) {
	const timeout = 200 * time.Millisecond
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"store unavailable", fmt.Errorf("redis: i/o timeout: %w", events.ErrUnavailable)},
		{"store does not answer", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wrap := func(l events.Log) events.Log { return &appendFails{Log: l, err: tc.err} }
			r := startRelay(t, withLog(wrap), withConfig(func(c *transport.Config) { c.StoreTimeout = timeout }))
			start := time.Now()
			a := r.publishWith(t, `{"channel":"project_1_tickets","type":"t"}`, map[string]string{transport.HeaderIdempotencyKey: "k"})
			if d := time.Since(start); d > timeout+2*time.Second {
				t.Errorf("answered after %v, want within StoreTimeout (%v) and a margin", d, timeout)
			}
			if a.status != http.StatusServiceUnavailable || checkErrorBody(t, a.body) != "store_unavailable" {
				t.Errorf("got %d %v, want 503 store_unavailable", a.status, a.body)
			}
			if got := a.header.Get("Retry-After"); got != "1" {
				t.Errorf("Retry-After: got %q, want 1", got)
			}
			msg, _ := a.body["message"].(string)
			for _, want := range []string{"may or may not be stored", "same idempotency key"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q, want it to say %q", msg, want)
				}
			}
		})
	}
}
