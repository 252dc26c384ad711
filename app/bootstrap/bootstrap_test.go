package bootstrap_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"

	"github.com/relaydev/relay/app/bootstrap"
	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func verifier(t *testing.T) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier([]byte("bootstrap-test-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestBuildServesAndCloses builds a process over each store, serves one
// request of its own routes and one of the extra routes, and closes it (twice:
// Close is idempotent); the hub is closed after.
func TestBuildServesAndCloses(t *testing.T) {
	for _, st := range []string{"memory", "redis"} {
		t.Run(st, func(t *testing.T) {
			cfg := bootstrap.Config{Auth: verifier(t), Routes: func(e *echo.Echo) {
				e.GET("/extra", func(c echo.Context) error { return c.String(http.StatusTeapot, "extra") })
			}}
			if st == "redis" {
				cfg.RedisURL, cfg.RedisPrefix = redistest.URL(t), redistest.Prefix(t)
			}
			p, err := bootstrap.Build(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(p.Server)
			for path, want := range map[string]int{"/readyz": http.StatusOK, "/extra": http.StatusTeapot} {
				resp, err := http.Get(ts.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("%s: got %d, want %d", path, resp.StatusCode, want)
				}
			}
			ts.Close()
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := p.Hub.Subscribe(context.Background(), []string{"a"}, nil); !errors.Is(err, events.ErrClosed) {
				t.Errorf("subscribe after Close: got %v, want ErrClosed", err)
			}
		})
	}
}

// TestBuildKeepsBatchedFeed: the metrics wrapper keeps the Redis log's
// batched live feed visible to the hub (events.BatchWatcher), and adds none
// to the memory log, which has none.
func TestBuildKeepsBatchedFeed(t *testing.T) {
	for st, want := range map[string]bool{"memory": false, "redis": true} {
		t.Run(st, func(t *testing.T) {
			var hubLog events.Log
			cfg := bootstrap.Config{Auth: verifier(t), WrapLog: func(l events.Log) events.Log { hubLog = l; return l }}
			if st == "redis" {
				cfg.RedisURL, cfg.RedisPrefix = redistest.URL(t), redistest.Prefix(t)
			}
			p, err := bootstrap.Build(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if _, got := hubLog.(events.BatchWatcher); got != want {
				t.Errorf("the hub's log is a BatchWatcher: %v, want %v", got, want)
			}
		})
	}
}

// TestBuildFailsCleanly: a configuration that cannot be built is an error,
// and leaves nothing running (goleak checks).
func TestBuildFailsCleanly(t *testing.T) {
	cases := map[string]bootstrap.Config{
		"no auth":       {},
		"bad redis url": {Auth: verifier(t), RedisURL: "http://127.0.0.1:1"},
	}
	for name, cfg := range cases {
		if p, err := bootstrap.Build(context.Background(), cfg); err == nil || p != nil {
			t.Errorf("%s: got %v, %v; want an error", name, p, err)
		}
	}
}

// TestBuildDeliversLive: a process built over Redis gets a published event
// live through its hub: its wrapped log still listens to the channels its
// subscribers read (Redis sends a process only those).
func TestBuildDeliversLive(t *testing.T) {
	ctx := context.Background()
	p, err := bootstrap.Build(ctx, bootstrap.Config{Auth: verifier(t), RedisURL: redistest.URL(t), RedisPrefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := p.Hub.Subscribe(ctx, []string{"live"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, err := p.Hub.Publish(ctx, events.Draft{Channel: "live", Type: "t"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Ready():
		if got := s.Take(nil); len(got) != 1 || got[0].Pos != evs[0].Pos {
			t.Errorf("got %v live, want one event at %v", got, evs[0].Pos)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the published event did not arrive live within 5 s")
	}
}
