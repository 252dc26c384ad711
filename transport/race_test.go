package transport_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/relaydev/relay/events"
)

// TestResumeRace publishes a steady run of events to one channel while
// clients of both transports connect midway, some with a cursor (header or
// query) and some without: each must receive a gap-free, duplicate-free,
// in-order run of seqs up to the last event published, the history and the
// live events joined exactly.
// Over both stores.
func TestResumeRace(t *testing.T) {
	const (
		ch    = "project_1_tickets"
		total = 2000
	)
	eachStore(t, func(t *testing.T, st string) {
		r := startRelay(t, withStore(st))
		pub := publisher(t)
		url := r.url + "/events/projects/1/tickets?token=" + alice(t)

		// The publisher records every id and announces milestones.
		var mu sync.Mutex
		ids := make([]string, 0, total)
		reached := map[int]chan struct{}{}
		for _, n := range []int{100, 400, 1000, 1500} {
			reached[n] = make(chan struct{})
		}
		idAt := func(seq int) string { mu.Lock(); defer mu.Unlock(); return ids[seq-1] }
		pubErr := make(chan error, 1)
		go func() {
			defer close(pubErr)
			for i := 1; i <= total; i++ {
				body, _ := json.Marshal(map[string]any{"channel": ch, "type": "tick", "data": i})
				status, out, err := r.publishErr(pub, string(body))
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("publish %d: got status %d %v", i, status, out)
				}
				if err != nil {
					pubErr <- err
					return
				}
				mu.Lock()
				ids = append(ids, out["id"].(string))
				mu.Unlock()
				if c, ok := reached[i]; ok {
					close(c)
				}
			}
		}()

		type plan struct {
			name  string
			at    int    // connect once this many events are published
			after int    // resume after this seq; 0: the "0" sentinel; -1: no cursor
			via   string // "header" or "query"
		}
		var plans []plan
		for _, kind := range kinds {
			plans = append(plans,
				plan{kind + "/cursor-early", 100, 50, "query"},
				plan{kind + "/live-early", 100, -1, ""},
				plan{kind + "/zero", 400, 0, "query"},
				plan{kind + "/cursor-mid", 1000, 900, "header"},
				plan{kind + "/cursor-far-back", 1000, 10, "header"},
				plan{kind + "/live-mid", 1000, -1, ""},
				plan{kind + "/live-late", 1500, -1, ""},
			)
		}

		var wg sync.WaitGroup
		results := make([]error, len(plans))
		for i, p := range plans {
			kind, _, _ := strings.Cut(p.name, "/")
			wg.Go(func() {
				<-reached[p.at]
				results[i] = follow(t, kind, url, p.after, p.via, idAt, total)
			})
		}
		wg.Wait()
		if err := <-pubErr; err != nil {
			t.Fatal(err)
		}
		for i, err := range results {
			if err != nil {
				t.Errorf("%s: %v", plans[i].name, err)
			}
		}
	})
}

// follow connects one client and reads until seq last, checking the run of
// seqs. A slow_consumer end (allowed by the contract) is followed by a
// reconnect from the client's cursor, as a browser would.
func follow(t *testing.T, kind, url string, after int, via string, idAt func(int) string, last uint64) error {
	cursor := ""
	switch {
	case after == 0:
		cursor = "0"
	case after > 0:
		cursor = idAt(after)
	}
	var want uint64 // the next seq due; 0 until known
	if after >= 0 {
		want = uint64(after) + 1
	}
	epoch := ""
connect:
	for {
		target, header := url, http.Header(nil)
		if via == "header" {
			header = cursorHeader(cursor)
		} else if cursor != "" {
			target = q(url, "last_event_id", cursor)
		}
		c, resp, err := connect(t, kind, target, header)
		if err != nil {
			return err
		}
		if c == nil {
			return fmt.Errorf("got status %d, want a stream", resp.StatusCode)
		}
		for {
			m, err := c.recv(wait)
			if err != nil {
				return fmt.Errorf("at seq %d: %w", want, err)
			}
			switch m.Kind {
			case "message":
			case "cursor", "connection_established":
				if want == 0 { // live only: the stream goes on after its cursor
					_, head, err := splitID(c.resumeCursor())
					if err != nil {
						return err
					}
					want = head + 1
				}
				continue
			case "slow_consumer":
				t.Logf("%s: slow_consumer at seq %d; resuming", kind, want)
				c.close()
				cursor, via = c.resumeCursor(), "query"
				continue connect
			default:
				return fmt.Errorf("at seq %d: got %q %v, want events", want, m.Kind, m.Env)
			}
			id := m.envID()
			e, seq, err := splitID(id)
			if err != nil {
				return err
			}
			if epoch == "" {
				epoch = e
			}
			if e != epoch || seq != want {
				return fmt.Errorf("got event %s, want seq %d of epoch %s", id, want, epoch)
			}
			if kind == sseKind && m.ID != id {
				return fmt.Errorf("id line %q, want %q", m.ID, id)
			}
			want++
			if seq == last {
				c.close()
				return nil
			}
		}
	}
}

// splitID splits an envelope id into its epoch and seq.
func splitID(id string) (string, uint64, error) {
	p, err := events.ParsePosition(id)
	if err != nil || p.IsBeginning() {
		return "", 0, fmt.Errorf("id %q is not <epoch>-<seq>: %v", id, err)
	}
	return p.Epoch, p.Seq, nil
}
