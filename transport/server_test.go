package transport_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
	"github.com/relaydev/relay/transport"
)

// TestHealthzVersion: /healthz says the process serves, and which build.
func TestHealthzVersion(t *testing.T) {
	for _, c := range []struct{ set, want string }{{"v1.4.2", "v1.4.2"}, {"", "dev"}} {
		r := startRelay(t, withConfig(func(cfg *transport.Config) { cfg.Version = c.set }))
		resp, err := http.Get(r.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || body["status"] != "ok" || body["version"] != c.want {
			t.Errorf("Version %q: got %d %v (%v), want 200 {status: ok, version: %s}", c.set, resp.StatusCode, body, err, c.want)
		}
	}
}

// TestNewServerNeedsItsDeps: a server without a hub or an authenticator is
// refused when it is made, not when a request comes.
func TestNewServerNeedsItsDeps(t *testing.T) {
	mem := store.NewMemory(events.Retention{})
	defer mem.Close()
	hub := events.NewHub(mem, events.HubOptions{})
	for name, d := range map[string]transport.Deps{"no hub": {}, "no auth": {Hub: hub}} {
		if srv, err := transport.NewServer(d, transport.Config{}, nil); err == nil || srv != nil {
			t.Errorf("%s: got %v, %v; want an error", name, srv, err)
		}
	}
}
