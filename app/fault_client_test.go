package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/events"
)

// A subscriber behaves like a browser tab: an EventSource that resends the
// last id: it saw as Last-Event-ID, or relay.js over WebSocket sending
// ?last_event_id=, reconnecting after a random 50–300 ms to any relay of the
// scenario. It records what it receives in its ledger.
type subscriber struct {
	name    string
	ws      bool
	path    string // e.g. /events/projects/1/tickets; the WebSocket form is derived
	token   string
	urls    func() []string
	http    *http.Client
	dialer  *websocket.Dialer
	pauseAt time.Duration // > 0: stop reading this long after the first connect…
	pauseD  time.Duration // …for this long (a slow consumer)
	onEnv   func(map[string]any)

	mu     sync.Mutex
	cursor string
	led    subLedger
	ready  chan struct{} // closed at the first connection_established
	readyO sync.Once
}

// subLedger is what one subscriber saw.
type subLedger struct {
	start       time.Time        // first connection_established: events acknowledged before it are not owed
	byN         map[int][]string // event number → distinct ids delivered for it
	byID        map[string]int   // id → event number
	deliveries  int
	dupSameID   int // the same id delivered twice
	idTwoEvents int // one id delivered for two different event numbers
	reordered   int // seq went back within an epoch
	silent      int // the epoch changed with no reset in between
	curEpoch    string
	lastEpoch   string
	lastSeq     uint64
	resets      []time.Time
	resetAt     []events.Position // the head each reset moved the cursor to
	ends        map[string]int    // how connections ended
	connects    int

	// When the last event arrived: a subscriber still owed events is
	// waited for while it receives them (see settleLedger).
	last time.Time
}

func newSubscriber(name string, ws bool, path, token string, urls func() []string, hc *http.Client, d *websocket.Dialer) *subscriber {
	return &subscriber{
		name: name, ws: ws, path: path, token: token, urls: urls, http: hc, dialer: d,
		ready: make(chan struct{}),
		led:   subLedger{byN: map[int][]string{}, byID: map[string]int{}, ends: map[string]int{}},
	}
}

// run connects and reconnects until ctx ends.
func (s *subscriber) run(ctx context.Context) {
	for ctx.Err() == nil {
		urls := s.urls()
		base := urls[rand.N(len(urls))]
		var end string
		if s.ws {
			end = s.runWS(ctx, base)
		} else {
			end = s.runSSE(ctx, base)
		}
		s.mu.Lock()
		s.led.ends[end]++
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50*time.Millisecond + rand.N(250*time.Millisecond)):
		}
	}
}

// pause stops reading during the subscriber's slow window.
func (s *subscriber) pause(ctx context.Context) {
	if s.pauseD == 0 {
		return
	}
	s.mu.Lock()
	start := s.led.start
	s.mu.Unlock()
	if start.IsZero() {
		return
	}
	from := start.Add(s.pauseAt)
	until := from.Add(s.pauseD)
	if now := time.Now(); now.Before(from) || !now.Before(until) {
		return
	}
	select { // the stall under test, not a wait for a condition
	case <-ctx.Done():
	case <-time.After(time.Until(until)):
	}
}

func (s *subscriber) runSSE(ctx context.Context, base string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+s.path+"?token="+s.token, nil)
	if err != nil {
		return "bad request: " + err.Error()
	}
	req.Header.Set("Accept", "text/event-stream")
	s.mu.Lock()
	if s.cursor != "" {
		req.Header.Set("Last-Event-ID", s.cursor)
	}
	s.mu.Unlock()
	resp, err := s.http.Do(req)
	if err != nil {
		return "connect error"
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d", resp.StatusCode)
	}
	s.mu.Lock()
	s.led.connects++
	s.mu.Unlock()
	br := bufio.NewReader(resp.Body)
	var id, event, data string
	hasID := false
	for {
		s.pause(ctx)
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return "EOF"
			}
			return "read error"
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ended := s.sseFrame(event, id, hasID, data); ended != "" {
				return ended
			}
			id, event, data, hasID = "", "", "", false
		case strings.HasPrefix(line, "id: "):
			id, hasID = strings.TrimPrefix(line, "id: "), true
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		}
	}
}

// sseFrame handles one SSE frame; it returns why the stream ends, if it does.
func (s *subscriber) sseFrame(event, id string, hasID bool, data string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hasID { // what an EventSource keeps as lastEventId
		s.cursor = id
	}
	switch event {
	case "":
		if data != "" {
			s.envelope(data)
		}
	case "connection_established":
		s.established(id)
	case "reset":
		s.reset(id)
	case "shutdown", "slow_consumer", "token_expired", "error":
		return event
	}
	return ""
}

func (s *subscriber) runWS(ctx context.Context, base string) string {
	u := "ws" + strings.TrimPrefix(base, "http") + strings.Replace(s.path, "/events/", "/ws/", 1) + "/?token=" + s.token
	s.mu.Lock()
	if s.cursor != "" {
		u += "&last_event_id=" + url.QueryEscape(s.cursor)
	}
	s.mu.Unlock()
	conn, resp, err := s.dialer.DialContext(ctx, u, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return "connect error"
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s.mu.Lock()
	s.led.connects++
	s.mu.Unlock()
	for {
		s.pause(ctx)
		_, msg, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return fmt.Sprintf("close %d", ce.Code)
			}
			return "EOF"
		}
		var m struct {
			Type   string `json:"type"`
			ID     string `json:"id"`
			Cursor string `json:"cursor"`
		}
		if json.Unmarshal(msg, &m) != nil {
			continue
		}
		s.mu.Lock()
		switch {
		case m.Type == "connection_established":
			s.cursor = m.Cursor
			s.established(m.Cursor)
		case m.Type == "reset":
			s.cursor = m.ID
			s.reset(m.ID)
		case m.ID != "":
			s.cursor = m.ID
			s.envelope(string(msg))
		}
		s.mu.Unlock()
	}
}

// established notes a connection_established cursor (s.mu held).
func (s *subscriber) established(cursor string) {
	if s.led.start.IsZero() {
		s.led.start = time.Now()
		s.readyO.Do(func() { close(s.ready) })
	}
	p, err := events.ParsePosition(cursor)
	if err != nil {
		return
	}
	if p.IsEmpty() { // a channel with no log yet: no epoch to hold on to
		if s.led.curEpoch != "" {
			s.led.silent++ // a real epoch given up without a reset
		}
		return
	}
	s.epochSeen(p.Epoch)
}

// epochSeen counts an epoch change that no reset announced (s.mu held).
func (s *subscriber) epochSeen(epoch string) {
	if s.led.curEpoch != "" && epoch != s.led.curEpoch {
		s.led.silent++
	}
	s.led.curEpoch = epoch
}

// reset notes an explicit reset to position id (s.mu held).
func (s *subscriber) reset(id string) {
	p, err := events.ParsePosition(id)
	if err != nil {
		p = events.Beginning // covers nothing
	}
	s.led.resets = append(s.led.resets, time.Now())
	s.led.resetAt = append(s.led.resetAt, p)
	s.led.curEpoch = p.Epoch
	if p.IsEmpty() { // the channel has no log yet: its first epoch is no change
		s.led.curEpoch = ""
	}
}

// envelope records one delivered event (s.mu held).
func (s *subscriber) envelope(data string) {
	var m map[string]any
	if json.Unmarshal([]byte(data), &m) != nil {
		return
	}
	if s.onEnv != nil {
		s.onEnv(m)
	}
	id, _ := m["id"].(string)
	nf, ok := m["n"].(float64)
	if !ok {
		return
	}
	n := int(nf)
	p, err := events.ParsePosition(id)
	if err != nil {
		return
	}
	l := &s.led
	l.deliveries++
	l.last = time.Now()
	if prev, seen := l.byID[id]; seen {
		if prev == n {
			l.dupSameID++
		} else {
			l.idTwoEvents++
		}
		return
	}
	l.byID[id] = n
	l.byN[n] = append(l.byN[n], id)
	s.epochSeen(p.Epoch)
	if p.Epoch == l.lastEpoch && p.Seq < l.lastSeq {
		l.reordered++
	}
	l.lastEpoch, l.lastSeq = p.Epoch, p.Seq
}

// lastEvent is when s last received an event (zero: never).
func (s *subscriber) lastEvent() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.led.last
}

// coveredUntil is the time before which acknowledged events are not owed
// to s: its first connection, or the last reset it received.
func (s *subscriber) coveredUntil() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.led.start
	if n := len(s.led.resets); n > 0 && s.led.resets[n-1].After(t) {
		t = s.led.resets[n-1]
	}
	return t
}

// covered reports whether s is not owed a: it was acknowledged before s's
// first connection or its last reset (since), or a reset moved s's cursor
// past it (the event was in the log when the reset was sent, though its
// answer reached the publisher a moment later). s.mu held.
func (s *subscriber) covered(a ack, since time.Time) bool {
	if since.IsZero() || !a.at.After(since) {
		return true
	}
	p, err := events.ParsePosition(a.id)
	if err != nil {
		return false
	}
	for i, r := range s.led.resetAt {
		// Only an answer still in flight when the reset came: a reused id
		// (Redis gone back) acknowledged later must not hide behind it.
		inFlight := a.at.Sub(s.led.resets[i]) < time.Second
		if r.Epoch == p.Epoch && p.Seq <= r.Seq && inFlight {
			return true
		}
	}
	return false
}

// ack is one publish relay answered.
type ack struct {
	id string
	at time.Time
}

// publisher is a backend: it POSTs /api/publish at a steady rate, each event
// carrying a unique number n, and retries a failed request (5xx, a
// connection error, a timeout) on another relay, with an Idempotency-Key
// when useKey is set.
type publisher struct {
	channel string
	token   string
	urls    func() []string
	primary int // the relay tried first
	useKey  bool
	rate    int
	workers int
	timeout time.Duration // per attempt
	pad     string        // makes events bigger (slow-consumer scenarios)
	http    *http.Client
	run     string // key prefix unique to the run

	mu         sync.Mutex
	acks       map[int]ack
	idOwner    map[string]int
	ackedTwice int
	retried    map[int]bool
	unacked    int            // gave up
	rejected   int            // 4xx: the suite's own mistake
	failures   map[string]int // failed attempts by kind
}

func newPublisher(channel, token string, urls func() []string, hc *http.Client) *publisher {
	return &publisher{
		channel: channel, token: token, urls: urls, http: hc, rate: 200, workers: 4, timeout: 3 * time.Second,
		run:  fmt.Sprintf("%x", rand.Uint64()),
		acks: map[int]ack{}, idOwner: map[string]int{}, retried: map[int]bool{}, failures: map[string]int{},
	}
}

// publishFor publishes at p.rate for d, then waits for in-flight events
// (each retried for up to 30 s, or until hard ends).
func (p *publisher) publishFor(hard context.Context, d time.Duration) {
	work := make(chan int, p.workers)
	var wg sync.WaitGroup
	for range p.workers {
		wg.Go(func() {
			for n := range work {
				p.publishOne(hard, n)
			}
		})
	}
	tick := time.NewTicker(time.Second / time.Duration(p.rate))
	defer tick.Stop()
	stop := time.After(d)
	n := 0
loop:
	for {
		select {
		case <-hard.Done():
			break loop
		case <-stop:
			break loop
		case <-tick.C:
			select {
			case work <- n + 1: // when every worker is stuck the rate drops
				n++
			default:
			}
		}
	}
	close(work)
	wg.Wait()
}

func (p *publisher) publishOne(ctx context.Context, n int) {
	body, _ := json.Marshal(map[string]any{"channel": p.channel, "type": "fault", "n": n, "pad": p.pad})
	urls := p.urls()
	giveUp := time.Now().Add(30 * time.Second)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			p.mu.Lock()
			p.retried[n] = true
			p.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(50*time.Millisecond + rand.N(250*time.Millisecond)):
			}
		}
		if ctx.Err() != nil || time.Now().After(giveUp) {
			p.mu.Lock()
			p.unacked++
			p.mu.Unlock()
			return
		}
		base := urls[(p.primary+attempt)%len(urls)] // a retry goes to another relay
		id, kind := p.attempt(ctx, base, n, body)
		if id != "" {
			p.acked(n, id)
			return
		}
		p.mu.Lock()
		p.failures[kind]++
		p.mu.Unlock()
		if strings.HasPrefix(kind, "status 4") {
			p.mu.Lock()
			p.rejected++
			p.mu.Unlock()
			return
		}
	}
}

// attempt is one POST; it returns the id, or what went wrong.
func (p *publisher) attempt(ctx context.Context, base string, n int, body []byte) (id, failure string) {
	actx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, base+"/api/publish", strings.NewReader(string(body)))
	if err != nil {
		return "", "bad request"
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	if p.useKey {
		req.Header.Set("Idempotency-Key", fmt.Sprintf("fault-%s-%d", p.run, n))
	}
	resp, err := p.http.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "", "timeout"
		}
		return "", "connection error"
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return "", fmt.Sprintf("status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ID == "" {
		return "", "bad answer"
	}
	return out.ID, ""
}

func (p *publisher) acked(n int, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if owner, ok := p.idOwner[id]; ok && owner != n {
		p.ackedTwice++
	}
	p.idOwner[id] = n
	p.acks[n] = ack{id: id, at: time.Now()}
}

// counts are a scenario's results over all its subscribers.
type counts struct {
	subs, acked, unacked, deliveries                int
	lost, dup, retryDup, reordered, silent          int
	ackedTwice, idTwoEvents, subsReset, subsNoStart int
	ends                                            map[string]int
}

func (c counts) String() string {
	return fmt.Sprintf("subscribers=%d acked=%d unacked=%d deliveries=%d lost=%d duplicated=%d retry-duplicates=%d reordered=%d silent-epochs=%d ids-acked-twice=%d ids-delivered-for-two-events=%d subscribers-reset=%d ends=%v",
		c.subs, c.acked, c.unacked, c.deliveries, c.lost, c.dup, c.retryDup, c.reordered, c.silent,
		c.ackedTwice, c.idTwoEvents, c.subsReset, c.ends)
}

// owed is how many events acknowledged after s's coverage s still misses.
func (p *publisher) owed(s *subscriber) int {
	since := s.coveredUntil()
	p.mu.Lock()
	acks := make(map[int]ack, len(p.acks))
	for n, a := range p.acks {
		acks[n] = a
	}
	p.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	missing := 0
	for n, a := range acks {
		if len(s.led.byN[n]) == 0 && !s.covered(a, since) {
			missing++
		}
	}
	return missing
}

// lostSamples describes up to max events s is owed, for a failure report.
func (p *publisher) lostSamples(s *subscriber, origin time.Time, max int) []string {
	since := s.coveredUntil()
	p.mu.Lock()
	defer p.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n := 1; n <= len(p.acks)+p.unacked+p.rejected && len(out) < max; n++ {
		a, ok := p.acks[n]
		if !ok || len(s.led.byN[n]) > 0 || s.covered(a, since) {
			continue
		}
		var resets []string
		for _, r := range s.led.resets {
			resets = append(resets, r.Sub(origin).Round(time.Millisecond).String())
		}
		out = append(out, fmt.Sprintf("%s: n=%d id=%s acked at +%s; resets at %v; cursor now %s", s.name, n, a.id,
			a.at.Sub(origin).Round(time.Millisecond), resets, s.cursor))
	}
	return out
}

// tally counts what subs saw against what p had acknowledged.
func tally(p *publisher, subs []*subscriber) counts {
	c := counts{subs: len(subs), ends: map[string]int{}}
	for _, s := range subs {
		c.lost += p.owed(s)
		s.mu.Lock()
		l := &s.led
		if l.start.IsZero() {
			c.subsNoStart++
		}
		c.deliveries += l.deliveries
		c.dup += l.dupSameID
		c.idTwoEvents += l.idTwoEvents
		c.reordered += l.reordered
		c.silent += l.silent
		if len(l.resets) > 0 {
			c.subsReset++
		}
		for k, v := range l.ends {
			c.ends[k] += v
		}
		for n, ids := range l.byN {
			if extra := len(ids) - 1; extra > 0 {
				p.mu.Lock()
				retried := p.retried[n]
				p.mu.Unlock()
				if retried && !p.useKey {
					c.retryDup += extra // the backend's own retry without a key
				} else {
					c.dup += extra
				}
			}
		}
		s.mu.Unlock()
	}
	p.mu.Lock()
	c.acked, c.unacked, c.ackedTwice = len(p.acks), p.unacked, p.ackedTwice
	p.mu.Unlock()
	return c
}

// smallReceiveBuffer dials with a 128 KiB receive buffer, so a client that
// stops reading fills relay's buffers within seconds instead of megabytes.
// Not smaller: below loopback's MSS (64 KiB) a stalled receiver's window
// may not reopen after it reads again, until the sender's zero-window
// probes (backing off to tens of seconds) find it: with 512-byte events, a
// subscriber whose stall ended got nothing more for the rest of a run while
// relay's socket held 2.6 MB unsent (ss: persist timer at 24 s), in 1 of 3
// runs with 16 KiB; 0 of 4 with 128 KiB.
func smallReceiveBuffer() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 128<<10)
		})
		return errors.Join(err, serr)
	}}
}
