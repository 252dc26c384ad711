package transport_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/transport"
)

// TestPublishIDs checks that the publish answer's id (or ids, in order) is
// the envelope id subscribers of both transports receive.
// Over both stores.
func TestPublishIDs(t *testing.T) {
	eachStore(t, func(t *testing.T, st string) {
		r := startRelay(t, withStore(st))
		url := q(r.url+"/events", "channel", "project_1_tickets", "channel", "project_2_tickets", "token", alice(t))
		var clients []*client
		for _, kind := range kinds {
			c := mustConnect(t, kind, url, nil)
			c.live(t)
			clients = append(clients, c)
		}

		status, out := r.publish(t, publisher(t), `{"channel":"project_1_tickets","type":"one"}`)
		if status != http.StatusOK {
			t.Fatalf("single: got %d %v, want 200", status, out)
		}
		single, _ := out["id"].(string)
		if len(out) != 1 || single == "" {
			t.Fatalf("single answer: got %v, want {\"id\": …}", out)
		}

		status, out = r.publish(t, publisher(t), ` [
			{"channel":"project_2_tickets","type":"b0"},
			{"channel":"project_1_tickets","type":"b1"},
			{"channel":"project_2_tickets","type":"b2"}
		]`)
		if status != http.StatusOK {
			t.Fatalf("batch: got %d %v, want 200", status, out)
		}
		raw, _ := out["ids"].([]any)
		if len(out) != 1 || len(raw) != 3 {
			t.Fatalf("batch answer: got %v, want {\"ids\": [3 ids]}", out)
		}
		want := []string{single}
		for _, id := range raw {
			want = append(want, id.(string))
		}
		if seqOf(t, want[2]) != seqOf(t, want[0])+1 || seqOf(t, want[3]) != seqOf(t, want[1])+1 {
			t.Errorf("ids %v: want consecutive seqs per channel, in batch order", want)
		}
		for _, c := range clients {
			var got, types []string
			for range want {
				m := c.event(t)
				got = append(got, m.envID())
				types = append(types, m.Env["type"].(string))
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s ids: got %v, want %v", c.kind, got, want)
			}
			if !slices.Equal(types, []string{"one", "b0", "b1", "b2"}) {
				t.Errorf("%s order: got %v, want one b0 b1 b2", c.kind, types)
			}
		}
	})
}

// TestPublishAnswerBytes checks the single publish's answer byte for byte:
// the same JSON, Content-Type and trailing newline whether relay writes it
// itself or through Echo's encoder (?pretty indents it, as Echo does).
func TestPublishAnswerBytes(t *testing.T) {
	r := startRelay(t)
	for _, tc := range []struct{ query, want string }{
		{"", "{\"id\":\"%s\"}\n"},
		{"?pretty", "{\n  \"id\": \"%s\"\n}\n"},
	} {
		req, _ := http.NewRequest(http.MethodPost, r.url+"/api/publish"+tc.query, strings.NewReader(`{"channel":"project_1_tickets","type":"t"}`))
		req.Header.Set("Authorization", "Bearer "+publisher(t))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct{ ID string }
		if err := json.Unmarshal(body, &out); err != nil || out.ID == "" {
			t.Fatalf("%q: answer %q: %v", tc.query, body, err)
		}
		if want := fmt.Sprintf(tc.want, out.ID); string(body) != want {
			t.Errorf("%q: got %q, want %q", tc.query, body, want)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%q: Content-Type %q, want application/json", tc.query, ct)
		}
	}
}

// TestPublishRefused checks that bad publish requests get a clear 4xx JSON
// answer and store nothing: not even the good events of a batch.
// Over both stores.
func TestPublishRefused(t *testing.T) {
	const max = 1024
	eachStore(t, func(t *testing.T, st string) {
		r := startRelay(t, withStore(st), withConfig(func(c *transport.Config) { c.MaxPayload = max }))
		pub := publisher(t)
		narrow := token(t, auth.Identity{UserID: "backend", Publish: []string{"project_2_*"}}, time.Hour)
		big := strings.Repeat("x", max)
		for _, tc := range []struct {
			name, token, body string
			status            int
			code              string
		}{
			{"malformed JSON", pub, `{"channel":"project_1_tickets","type":`, 400, "bad_request"},
			{"empty body", pub, ``, 400, "bad_request"},
			{"JSON string", pub, `"project_1_tickets"`, 400, "bad_request"},
			{"JSON null", pub, `null`, 400, "bad_request"},
			{"trailing garbage", pub, `{"channel":"project_1_tickets","type":"t"} x`, 400, "bad_request"},
			{"missing channel", pub, `{"type":"t"}`, 400, "bad_request"},
			{"channel not a string", pub, `{"channel":7,"type":"t"}`, 400, "bad_request"},
			{"missing type", pub, `{"channel":"project_1_tickets"}`, 400, "bad_request"},
			{"empty type", pub, `{"channel":"project_1_tickets","type":""}`, 400, "bad_request"},
			{"invalid channel name", pub, `{"channel":"project 1/tickets","type":"t"}`, 400, "bad_request"},
			{"relay's own channel, publish *", pub, `{"channel":"relay.control","type":"disconnect","user_id":"1"}`, 400, "bad_request"},
			{"empty batch", pub, `[]`, 400, "bad_request"},
			{"malformed batch", pub, `[{"channel":"project_1_tickets","type":"t"},`, 400, "bad_request"},
			{"batch with one bad event", pub, `[{"channel":"project_1_tickets","type":"t"},{"channel":"project_1_tickets"}]`, 400, "bad_request"},
			{"batch of non-objects", pub, `[1,2]`, 400, "bad_request"},
			{"payload over MaxPayload", pub, `{"channel":"project_1_tickets","type":"t","data":"` + big + `"}`, 413, "payload_too_large"},
			{"batch with one event over MaxPayload", pub,
				`[{"channel":"project_1_tickets","type":"t"},{"channel":"project_1_tickets","type":"t","data":"` + big + `"}]`, 413, "payload_too_large"},
			{"body over the batch limit", pub, `[` + strings.Repeat(`{"channel":"project_1_tickets","type":"t"},`, 16*max/40) + `{}]`,
				413, "payload_too_large"},
			{"no token", "", `{"channel":"project_1_tickets","type":"t"}`, 401, "unauthorized"},
			{"bad token", "x.y.z", `{"channel":"project_1_tickets","type":"t"}`, 401, "unauthorized"},
			{"no publish claim", alice(t), `{"channel":"project_1_tickets","type":"t"}`, 403, "forbidden"},
			{"pattern not covering", narrow, `{"channel":"project_1_tickets","type":"t"}`, 403, "forbidden"},
			{"batch with one channel not covered", narrow,
				`[{"channel":"project_2_tickets","type":"t"},{"channel":"project_1_tickets","type":"t"}]`, 403, "forbidden"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, out := r.publish(t, tc.token, tc.body)
				if status != tc.status {
					t.Errorf("status: got %d %v, want %d", status, out, tc.status)
				}
				if code := checkErrorBody(t, out); code != tc.code {
					t.Errorf("error: got %q, want %q", code, tc.code)
				}
			})
		}
		for _, ch := range []string{"project_1_tickets", "project_2_tickets"} {
			if evs := r.kept(t, ch); len(evs) != 0 {
				t.Errorf("%s holds %d events after refused publishes, want none", ch, len(evs))
			}
		}
		// A narrow token may still publish what its pattern covers.
		if status, out := r.publish(t, narrow, `{"channel":"project_2_presence","type":"t"}`); status != http.StatusOK {
			t.Errorf("publish inside the pattern: got %d %v, want 200", status, out)
		}
	})
}

// TestPublishMethod refuses a GET of the publish URL with a JSON 405.
func TestPublishMethod(t *testing.T) {
	r := startRelay(t)
	resp, err := http.Get(r.url + "/api/publish")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("status: got %d, want 405", resp.StatusCode)
	}
	if code := errorJSON(t, resp); code != "method_not_allowed" {
		t.Errorf("error: got %q, want method_not_allowed", code)
	}
}

// TestHealth checks the liveness and readiness answers.
func TestHealth(t *testing.T) {
	r := startRelay(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		t.Run(path, func(t *testing.T) {
			resp, err := http.Get(r.url + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status: got %d, want 200", resp.StatusCode)
			}
		})
	}
}

// TestUnknownRoute answers an unknown URL with a JSON 404.
func TestUnknownRoute(t *testing.T) {
	r := startRelay(t)
	for _, path := range []string{"/nope", "/events/projects/1", "/ws/projects/1/other/"} {
		t.Run(path, func(t *testing.T) {
			resp, err := http.Get(r.url + path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("status: got %d, want 404", resp.StatusCode)
			}
			if code := errorJSON(t, resp); code != "not_found" {
				t.Errorf("error: got %q, want not_found", code)
			}
		})
	}
}
