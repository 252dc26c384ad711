// Package store holds relay's event logs: Memory, the embedded default, and
// Redis, on Redis Streams, shared by every relay process using the same Redis.
// Both implement events.Log and pass the conformance suite in storetest.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relaydev/relay/events"
)

var (
	_ events.Log         = (*Memory)(nil)
	_ events.Broadcaster = (*Memory)(nil)
)

// Memory is an events.Log held in this process's memory: nothing survives a
// restart (every channel then starts a new epoch, so clients are told their
// cursors are gone), and processes do not share it.
//
// Reading creates nothing: Head of a channel with no log is an empty
// position of this Memory value's generation (events.EmptyPosition), and
// only Append makes a channel exist.
type Memory struct {
	ret    events.Retention
	window time.Duration // how long an idempotency key is remembered
	now    func() time.Time
	gen    string // this log's generation, for empty positions: random per Memory

	mu    sync.RWMutex
	chans map[string]*memChannel

	watchers atomic.Pointer[[]*memWatcher] // copy on write: no lock per event

	stopJanitor context.CancelFunc
	janitorDone chan struct{}
	closeOnce   sync.Once
}

type memChannel struct {
	mu      sync.Mutex
	epoch   string
	created time.Time       // when the epoch started
	seq     uint64          // the newest event's sequence number
	events  []*events.Event // the events kept, oldest first, consecutive seqs
	touched time.Time
	seen    memKeys // idempotency keys of the last window
}

type memWatcher struct{ deliver func(*events.Event) }

// MemoryOptions configure a memory log. Zero values take the defaults.
type MemoryOptions struct {
	// Retention bounds each channel's history.
	Retention events.Retention
	// IdempotencyWindow is how long a channel remembers an idempotency key
	// (default events.IdempotencyWindow).
	IdempotencyWindow time.Duration
}

// NewMemory returns a memory log with the given retention (zero fields take
// the defaults). Close stops its janitor.
func NewMemory(ret events.Retention) *Memory {
	return NewMemoryWith(MemoryOptions{Retention: ret})
}

// NewMemoryWith returns a memory log configured by opt. Close stops its
// janitor.
func NewMemoryWith(opt MemoryOptions) *Memory {
	if opt.IdempotencyWindow <= 0 {
		opt.IdempotencyWindow = events.IdempotencyWindow
	}
	ctx, cancel := context.WithCancel(context.Background())
	var gen [6]byte
	_, _ = rand.Read(gen[:]) // crypto/rand.Read never fails (Go 1.24+)
	m := &Memory{
		ret:         opt.Retention.WithDefaults(),
		window:      opt.IdempotencyWindow,
		now:         time.Now,
		gen:         hex.EncodeToString(gen[:]),
		chans:       make(map[string]*memChannel),
		stopJanitor: cancel,
		janitorDone: make(chan struct{}),
	}
	m.watchers.Store(&[]*memWatcher{})
	go m.janitor(ctx)
	return m
}

// channel returns the named channel, creating it (with a new epoch) if create.
func (m *Memory) channel(name string, create bool) *memChannel {
	m.mu.RLock()
	c := m.chans[name]
	m.mu.RUnlock()
	if c != nil || !create {
		return c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c = m.chans[name]; c == nil {
		now := m.now()
		c = &memChannel{epoch: events.NewEpoch(), created: now, touched: now}
		m.chans[name] = c
	}
	return c
}

// Append stores drafts in order; a draft whose idempotency key its channel
// saw within the window is answered from memory instead (see events.Log).
// Watchers are called while the channel is locked, so they see each
// channel's events in append order.
func (m *Memory) Append(ctx context.Context, drafts []events.Draft) ([]*events.Event, error) {
	if err := checkKeys(drafts); err != nil {
		return nil, err
	}
	out := make([]*events.Event, 0, len(drafts))
	for _, d := range drafts {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		for {
			c := m.channel(d.Channel, true)
			c.mu.Lock()
			if c.epoch == "" { // forgotten by the janitor meanwhile
				c.mu.Unlock()
				continue
			}
			now := m.now()
			c.seen.prune(now)
			if first, ok := c.seen.get(d.IdempotencyKey); ok {
				c.mu.Unlock()
				ev := events.NewEvent(d, first.pos, first.time)
				ev.Repeat = true
				out = append(out, ev)
				break
			}
			c.seq++
			ev := events.NewEvent(d, events.Position{Epoch: c.epoch, Seq: c.seq}, now)
			c.events = append(c.events, ev)
			c.touched = now
			c.seen.add(d.IdempotencyKey, ev.Pos, now, now.Add(m.window))
			m.trim(c, now)
			for _, w := range *m.watchers.Load() {
				w.deliver(ev)
			}
			c.mu.Unlock()
			out = append(out, ev)
			break
		}
	}
	return out, nil
}

// Broadcast calls the watchers with an ephemeral event without storing it.
// Like Append, it delivers while the channel is locked, so a channel's
// watchers are never called concurrently. It creates nothing: on a channel
// with no log it delivers under the lock that creating one takes instead.
func (m *Memory) Broadcast(ctx context.Context, ev *events.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !ev.Ephemeral {
		return fmt.Errorf("store: broadcast: event is not ephemeral; append it instead: %w", events.ErrInvalid)
	}
	if c := m.channel(ev.Channel, false); c != nil {
		c.mu.Lock()
		live := c.epoch != "" // else forgotten by the janitor meanwhile
		if live {
			m.deliver(ev)
		}
		c.mu.Unlock()
		if live {
			return nil
		}
	}
	m.mu.Lock() // before any channel's lock, as in sweep
	defer m.mu.Unlock()
	if c := m.chans[ev.Channel]; c != nil { // created meanwhile: its lock orders deliveries
		c.mu.Lock()
		defer c.mu.Unlock()
	}
	m.deliver(ev)
	return nil
}

func (m *Memory) deliver(ev *events.Event) {
	for _, w := range *m.watchers.Load() {
		w.deliver(ev)
	}
}

// trim drops events over the count bound or older than the age bound.
// c.mu must be held.
func (m *Memory) trim(c *memChannel, now time.Time) {
	drop := max(len(c.events)-m.ret.MaxEvents, 0)
	cutoff := now.Add(-m.ret.MaxAge)
	for drop < len(c.events) && c.events[drop].Time.Before(cutoff) {
		drop++
	}
	if drop > 0 {
		clear(c.events[:drop]) // let the dropped events be collected
		c.events = c.events[drop:]
	}
}

// Read returns up to limit events of channel after position after; see
// events.Log, and afterEmpty for a read after an empty position.
func (m *Memory) Read(ctx context.Context, channel string, after events.Position, limit int) ([]*events.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := m.channel(channel, false)
	if c == nil {
		return m.readNoLog(after)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch == "" { // forgotten by the janitor meanwhile
		return m.readNoLog(after)
	}
	m.trim(c, m.now())
	first := c.seq - uint64(len(c.events)) + 1 // sequence number of c.events[0]
	switch {
	case after.IsBeginning():
		after = events.Position{Epoch: c.epoch, Seq: first - 1}
	case after.IsEmpty():
		p, err := afterEmpty(after, m.gen, c.epoch, c.created, m.ret.MaxAge)
		if err != nil {
			return nil, err
		}
		after = p
	}
	if after.Epoch != c.epoch || after.Seq > c.seq || after.Seq+1 < first {
		return nil, events.ErrCursorGone
	}
	start := int(after.Seq + 1 - first)
	end := start + min(max(limit, 0), len(c.events)-start) // no overflow for any limit
	return append([]*events.Event(nil), c.events[start:end]...), nil
}

// readNoLog answers a read of a channel that has no log: nothing after
// Beginning or an empty position of this log, ErrCursorGone after any other.
func (m *Memory) readNoLog(after events.Position) ([]*events.Event, error) {
	switch {
	case after.IsBeginning():
		return nil, nil
	case after.IsEmpty():
		_, err := afterEmpty(after, m.gen, "", time.Time{}, m.ret.MaxAge)
		return nil, err
	}
	return nil, events.ErrCursorGone
}

// Head returns the channel's newest position, or an empty position when it
// has no log. It creates nothing and keeps nothing alive.
func (m *Memory) Head(ctx context.Context, channel string) (events.Position, error) {
	if err := ctx.Err(); err != nil {
		return events.Position{}, err
	}
	if c := m.channel(channel, false); c != nil {
		c.mu.Lock()
		p := events.Position{Epoch: c.epoch, Seq: c.seq}
		c.mu.Unlock()
		if p.Epoch != "" { // else forgotten by the janitor meanwhile
			return p, nil
		}
	}
	return events.EmptyPosition(m.gen, m.now())
}

// Watch calls deliver with every appended event; see events.Log. A memory
// log never skips events, so resync is never called.
func (m *Memory) Watch(ctx context.Context, deliver func(*events.Event), resync func()) (func(), error) {
	w := &memWatcher{deliver: deliver}
	m.updateWatchers(func(ws []*memWatcher) []*memWatcher { return append(ws, w) })
	var once sync.Once
	return func() {
		once.Do(func() {
			m.updateWatchers(func(ws []*memWatcher) []*memWatcher {
				out := make([]*memWatcher, 0, len(ws))
				for _, x := range ws {
					if x != w {
						out = append(out, x)
					}
				}
				return out
			})
		})
	}, nil
}

// Listen returns at once: a memory log's Watch delivers every channel.
func (m *Memory) Listen(context.Context, string, func()) (func(), error) { return func() {}, nil }

func (m *Memory) updateWatchers(f func([]*memWatcher) []*memWatcher) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.watchers.Load()
	next := f(append([]*memWatcher(nil), old...))
	m.watchers.Store(&next)
}

// Ping always succeeds: memory is always there.
func (m *Memory) Ping(context.Context) error { return nil }

// janitor forgets channels idle for longer than MaxAge, so memory does not
// grow with every channel ever used, and idempotency keys past their window
// on channels nobody appends to.
func (m *Memory) janitor(ctx context.Context) {
	defer close(m.janitorDone)
	t := time.NewTicker(min(m.ret.MaxAge/4, m.window, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.sweep()
		}
	}
}

func (m *Memory) sweep() {
	now := m.now()
	cutoff := now.Add(-m.ret.MaxAge)
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, c := range m.chans {
		c.mu.Lock()
		c.seen.prune(now)
		if c.touched.Before(cutoff) {
			c.epoch = "" // writers holding c retry with a new channel
			delete(m.chans, name)
		}
		c.mu.Unlock()
	}
}

// Close stops the janitor. It is idempotent; the log stays readable.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		m.stopJanitor()
		<-m.janitorDone
	})
	return nil
}

// checkKeys validates every draft's idempotency key before anything is
// stored, so a bad key in a batch stores nothing.
func checkKeys(drafts []events.Draft) error {
	for i, d := range drafts {
		if d.IdempotencyKey == "" {
			continue
		}
		if err := events.ValidateIdempotencyKey(d.IdempotencyKey); err != nil {
			return fmt.Errorf("store: append: event %d: %w", i, err)
		}
	}
	return nil
}

// memKeys are the idempotency keys one memory channel saw within its window,
// with the first append's position and time. Keys expire in the order they
// were added (each lives exactly one window), so a FIFO of them prunes in
// O(expired): memory is bounded by the keys of one window, and once a
// window passes with no key, both the map and the queue are dropped (a Go
// map never shrinks by itself).
type memKeys struct {
	byKey map[string]memKey
	order []string // keys oldest first; order[i] expires no later than order[i+1]
}

type memKey struct {
	pos     events.Position
	time    time.Time
	expires time.Time
}

// get returns the first append of key, if it is remembered. key "" is never.
func (s *memKeys) get(key string) (memKey, bool) {
	if key == "" {
		return memKey{}, false
	}
	k, ok := s.byKey[key]
	return k, ok
}

// add remembers key ("" is ignored) until expires. The caller has pruned
// and checked key is not remembered.
func (s *memKeys) add(key string, pos events.Position, at, expires time.Time) {
	if key == "" {
		return
	}
	if s.byKey == nil {
		s.byKey = make(map[string]memKey)
	}
	s.byKey[key] = memKey{pos: pos, time: at, expires: expires}
	s.order = append(s.order, key)
}

// prune forgets the keys whose window has passed at now.
func (s *memKeys) prune(now time.Time) {
	n := 0
	for n < len(s.order) && !now.Before(s.byKey[s.order[n]].expires) {
		delete(s.byKey, s.order[n])
		n++
	}
	if n == len(s.order) {
		s.byKey, s.order = nil, nil
		return
	}
	clear(s.order[:n])
	s.order = s.order[n:] // append reallocates from the live part when full
}
