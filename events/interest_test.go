package events_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store"
)

// listenLog is a memory log that records Listen and release calls per
// channel, and fails Listen of the channels in fail.
type listenLog struct {
	*store.Memory
	mu       sync.Mutex
	listens  map[string]int
	releases map[string]int
	resyncs  map[string]func()
	fail     map[string]error
}

func newListenLog() *listenLog {
	return &listenLog{Memory: store.NewMemory(events.Retention{}), listens: map[string]int{}, releases: map[string]int{},
		resyncs: map[string]func(){}, fail: map[string]error{}}
}

func (l *listenLog) Listen(_ context.Context, ch string, resync func()) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.fail[ch]; err != nil {
		return nil, err
	}
	l.listens[ch]++
	l.resyncs[ch] = resync
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.releases[ch]++
			l.mu.Unlock()
		})
	}, nil
}

// counts returns channel ch's listens and releases so far.
func (l *listenLog) counts(ch string) (listens, releases int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.listens[ch], l.releases[ch]
}

// listeningHub is a started hub over a listenLog, both closed at the end
// of the test.
func listeningHub(t *testing.T) (*events.Hub, *listenLog) {
	t.Helper()
	log := newListenLog()
	t.Cleanup(func() { log.Close() })
	hub := events.NewHub(log, events.HubOptions{})
	if err := hub.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	return hub, log
}

func wantCounts(t *testing.T, l *listenLog, ch string, listens, releases int) {
	t.Helper()
	if gl, gr := l.counts(ch); gl != listens || gr != releases {
		t.Errorf("channel %s: %d listens and %d releases, want %d and %d", ch, gl, gr, listens, releases)
	}
}

// TestHubListensWhileSubscribed: the hub listens to a channel once for all
// its local subscribers, keeps listening ListenLinger after the last leaves
// (a subscriber back within it costs nothing), then releases it; Close
// releases the rest.
func TestHubListensWhileSubscribed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		hub, log := listeningHub(t)
		subscribe := func(chs ...string) *events.Subscription {
			t.Helper()
			s, err := hub.Subscribe(ctx, chs, nil)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		s1 := subscribe("a", "b")
		s2 := subscribe("a")
		wantCounts(t, log, "a", 1, 0)
		wantCounts(t, log, "b", 1, 0)

		s1.Close()
		time.Sleep(events.ListenLinger - time.Millisecond)
		synctest.Wait()
		wantCounts(t, log, "b", 1, 0) // still lingering
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		wantCounts(t, log, "b", 1, 1)
		wantCounts(t, log, "a", 1, 0) // s2 reads it

		s2.Close()
		time.Sleep(events.ListenLinger / 2)
		s3 := subscribe("a") // back within the linger
		time.Sleep(2 * events.ListenLinger)
		synctest.Wait()
		wantCounts(t, log, "a", 1, 0)

		s4 := subscribe("b") // released before: listened again
		wantCounts(t, log, "b", 2, 1)
		hub.Close()
		wantCounts(t, log, "a", 1, 1)
		wantCounts(t, log, "b", 2, 2)
		s3.Close()
		s4.Close()
		if _, err := hub.Subscribe(ctx, []string{"c"}, nil); !errors.Is(err, events.ErrClosed) {
			t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
		}
		wantCounts(t, log, "c", 0, 0)
	})
}

// TestHubListenFails: when the log cannot listen, Subscribe fails with its
// error and registers nothing; the channels it had listened to are released
// (after the linger) and the next subscriber tries again.
func TestHubListenFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		hub, log := listeningHub(t)
		refused := errors.New("redis refused")
		log.fail["x"] = refused
		if _, err := hub.Subscribe(ctx, []string{"ok", "x"}, nil); !errors.Is(err, refused) {
			t.Fatalf("Subscribe = %v, want the log's error", err)
		}
		if n := hub.Subscribers(); n != 0 {
			t.Errorf("%d subscriptions after a failed Subscribe, want 0", n)
		}
		time.Sleep(events.ListenLinger + time.Millisecond)
		synctest.Wait()
		wantCounts(t, log, "ok", 1, 1)
		log.mu.Lock()
		delete(log.fail, "x")
		log.mu.Unlock()
		s, err := hub.Subscribe(ctx, []string{"x"}, nil)
		if err != nil {
			t.Fatalf("Subscribe once the log listens again: %v", err)
		}
		s.Close()
		wantCounts(t, log, "x", 1, 0)
	})
}

// TestHubResyncsOneChannel: the log's resync of one channel reaches the
// subscriptions of that channel only.
func TestHubResyncsOneChannel(t *testing.T) {
	ctx := context.Background()
	hub, log := listeningHub(t)
	a, err := hub.Subscribe(ctx, []string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := hub.Subscribe(ctx, []string{"b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	log.mu.Lock()
	resync := log.resyncs["a"]
	log.mu.Unlock()
	resync()
	qa, qb := a.Take(nil), b.Take(nil)
	if len(qa) != 1 || len(qb) != 0 {
		t.Fatalf("after a resync of a: %d and %d items queued for a and b, want 1 and 0", len(qa), len(qb))
	}
	var sink memSink
	if err := a.Deliver(ctx, qa[0], &sink); err != nil || len(sink.evs) != 0 {
		t.Errorf("delivering the resync of an empty channel: %v, %d events; want nothing", err, len(sink.evs))
	}
}

type memSink struct{ evs []*events.Event }

func (s *memSink) Event(ev *events.Event) error { s.evs = append(s.evs, ev); return nil }
func (s *memSink) Reset(string) error           { return nil }
