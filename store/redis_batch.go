package store

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/relaydev/relay/events"
)

// maxPipelineScripts bounds one pipeline: at most this many publish scripts
// go out in one round trip. It is the HTTP batch limit (transport.MaxBatch),
// so one full publish request is one round trip, and it bounds how long
// Redis works through one pipeline (a few milliseconds) while other clients'
// commands wait between its scripts.
const maxPipelineScripts = 1000

// maxPipelineBytes bounds the events' bytes in one pipeline (a pipeline takes
// at least one event, whatever its size): a small publish queued behind a
// batch of 64 KiB events waits for one megabyte to be written and run, not
// for 64.
const maxPipelineBytes = 1 << 20

// maxQueuedDrafts bounds the events queued and not yet sent: ten pipelines.
// A call that would pass it waits (until its context ends) for the writer to
// take from the queue; a call alone in the queue is taken whatever its size.
// The drafts live in the callers' memory anyway, so the bound is about time:
// it keeps what was accepted ahead of Redis to well under a second of work
// (Redis runs tens of thousands of publish scripts per second), so a queued
// call is sent soon or its caller's deadline removes it, and a Redis that
// stalled and resumes is sent at most this much at once.
const maxQueuedDrafts = 10 * maxPipelineScripts

// redisWriter sends every Append of a Redis log, from one goroutine, by
// group commit: while one pipeline is in flight, the calls made meanwhile
// queue, and the next pipeline takes all of them (up to the bounds above).
// A lone call goes out at once: the writer waits for nothing but work.
//
// Order: calls are sent in the order they were queued, each call's drafts
// contiguous and in order, and a pipeline is sent only after the previous
// one answered (one connection at a time), so each channel's events are
// stored in queue order. A call larger than a pipeline is carried into the
// next one, ahead of the queue.
//
// At most once: go-redis is not allowed to re-send (NewRedis refuses a
// client that would), and the writer re-sends only what Redis refused
// unrun (NOSCRIPT), as Append always did. A pipeline that fails (Redis gone,
// stalled past the read timeout) fails the calls in it with the error of
// each one's first unanswered script: events.ErrUnavailable, outcome
// unknown; the events before it in the call are returned as stored.
type redisWriter struct {
	r *Redis
	// The publish script's arguments that are the same in every call, made
	// once: boxing a number or a string into an interface allocates.
	maxEvents, maxAge, publish, window any

	mu     sync.Mutex
	queue  []*appendCall // not yet taken, in order
	queued int           // drafts of the calls in queue
	room   chan struct{} // closed (and replaced) when the writer takes from the queue
	closed bool
	taken  int // calls ever taken from the queue (for tests)

	wake chan struct{} // capacity 1: there is work
	stop chan struct{} // closed by close
	done chan struct{} // closed when run ends
}

// appendCall is one Append waiting for the writer.
type appendCall struct {
	ctx    context.Context
	drafts []events.Draft
	state  callState // under redisWriter.mu

	// Written by whoever finishes the call (the writer, or close for a call
	// still queued), then done is closed; the caller reads them after.
	out  []*events.Event
	err  error
	done chan struct{}
}

type callState int

const (
	callQueued    callState = iota
	callWithdrawn           // its caller left before it was sent: skipped
	callTaken               // the writer (or close) owns it
)

func (w *redisWriter) start(r *Redis) {
	w.r = r
	w.maxEvents, w.maxAge, w.publish, w.window = strconv.Itoa(r.ret.MaxEvents), strconv.FormatInt(r.maxAge, 10), r.publishCommand(), strconv.FormatInt(r.window, 10)
	w.room = make(chan struct{})
	w.wake = make(chan struct{}, 1)
	w.stop = make(chan struct{})
	w.done = make(chan struct{})
	go w.run()
}

// append queues drafts and waits for their outcome. When ctx ends before the
// call is sent, it is removed and nothing of it is stored; after, Append
// returns at once, the outcome unknown, and the writer drops the answer.
func (w *redisWriter) append(ctx context.Context, drafts []events.Draft) ([]*events.Event, error) {
	c := &appendCall{ctx: ctx, drafts: drafts, done: make(chan struct{})}
	if err := w.enqueue(c); err != nil {
		return nil, err
	}
	select {
	case <-c.done:
		return c.out, c.err
	case <-ctx.Done():
	}
	w.mu.Lock()
	sent := c.state == callTaken
	if !sent {
		c.state = callWithdrawn
		w.queued -= len(c.drafts)
	}
	w.mu.Unlock()
	if sent {
		select {
		case <-c.done: // answered meanwhile: the outcome is known
			return c.out, c.err
		default:
		}
		return nil, w.r.fail("append (sent, outcome unknown)", ctx.Err())
	}
	return nil, w.r.fail("append (not sent)", ctx.Err())
}

// enqueue adds c to the queue, waiting for room while it would pass
// maxQueuedDrafts.
func (w *redisWriter) enqueue(c *appendCall) error {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return fmt.Errorf("store: append: %w", events.ErrClosed)
		}
		if w.queued == 0 || w.queued+len(c.drafts) <= maxQueuedDrafts {
			w.queue = append(w.queue, c)
			w.queued += len(c.drafts)
			w.mu.Unlock()
			select {
			case w.wake <- struct{}{}:
			default: // already woken
			}
			return nil
		}
		room := w.room
		w.mu.Unlock()
		select {
		case <-room:
		case <-c.ctx.Done():
			return w.r.fail("append (not sent: queue full)", c.ctx.Err())
		}
	}
}

// chunk is drafts[from:from+n] of a call, in a pipeline.
type chunk struct {
	c       *appendCall
	from, n int
}

// group is the drafts of one channel that one publish script appends, in
// order: entries are (call, draft index).
type group struct {
	channel string
	entries []entry
}

type entry struct {
	c *appendCall
	i int
}

func (w *redisWriter) run() {
	defer close(w.done)
	var carry *appendCall // a call larger than a pipeline, partly sent
	more := false         // calls left queued by the last take
	for {
		if carry == nil && !more {
			select {
			case <-w.wake:
			case <-w.stop:
				return
			}
		}
		var p []chunk
		p, more = w.take(carry)
		carry = nil
		if len(p) > 0 { // none: woken for calls since withdrawn, or closed
			carry = w.send(p)
		}
	}
}

// take makes the next pipeline: carry's next drafts first, then queued calls
// in order, within maxPipelineScripts and maxPipelineBytes. The last call
// taken may not fit whole: it is sent in part and carried. Calls whose
// context has ended are finished unsent. more reports calls left queued.
func (w *redisWriter) take(carry *appendCall) (p []chunk, more bool) {
	scripts, size := 0, 0
	fits := func(d events.Draft) bool {
		return scripts < maxPipelineScripts && (scripts == 0 || size+draftSize(d) <= maxPipelineBytes)
	}
	add := func(c *appendCall) bool { // adds at least one draft; reports whether c fit whole
		from := len(c.out)
		n := 0
		for _, d := range c.drafts[from:] {
			if !fits(d) {
				break
			}
			n, scripts, size = n+1, scripts+1, size+draftSize(d)
		}
		p = append(p, chunk{c, from, n})
		return from+n == len(c.drafts)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if carry != nil {
		switch {
		case w.closed:
			w.finish(carry, fmt.Errorf("store: append (%d of %d events stored): %w", len(carry.out), len(carry.drafts), events.ErrClosed))
		case carry.ctx.Err() != nil: // its caller left: send no more of it
			w.finish(carry, w.r.fail(fmt.Sprintf("append (%d of %d events stored)", len(carry.out), len(carry.drafts)), carry.ctx.Err()))
		default:
			if !add(carry) {
				return p, len(w.queue) > 0
			}
		}
	}
	taken := 0
	for _, c := range w.queue {
		if c.state == callWithdrawn {
			taken++
			continue
		}
		if !fits(c.drafts[0]) {
			break
		}
		taken++
		w.taken++
		c.state = callTaken
		w.queued -= len(c.drafts)
		if err := c.ctx.Err(); err != nil {
			w.finish(c, w.r.fail("append (not sent)", err))
			continue
		}
		if !add(c) {
			break
		}
	}
	if taken > 0 {
		clear(w.queue[:taken])
		if w.queue = w.queue[taken:]; len(w.queue) == 0 {
			w.queue = w.queue[:0:0]
		}
		close(w.room)
		w.room = make(chan struct{})
	}
	return p, len(w.queue) > 0
}

// send runs pipeline p and records each call's events. It finishes every
// call of p, but the last one when there is more of it to send: that one it
// returns, to be carried into the next pipeline.
func (w *redisWriter) send(p []chunk) (carry *appendCall) {
	ctx, cancel := pipelineContext(p)
	defer cancel()
	for rest, reloaded := groupByChannel(p), false; len(rest) > 0; reloaded = true {
		cmds := w.pipeline(ctx, rest)
		// The script cache was flushed (SCRIPT FLUSH, failover): Redis ran
		// nothing from the first NOSCRIPT on. Load the script and send that
		// suffix again, once; not when a later script ran, which would break
		// the order.
		var again []group
		if i := firstNoScript(cmds); i >= 0 && !reloaded && allNoScript(cmds[i:]) {
			rest, cmds, again = rest[:i], cmds[:i], rest[i:]
		}
		for i, g := range rest {
			evs, err := appended(g, cmds[i])
			for j, e := range g.entries {
				switch c := e.c; {
				case c.err != nil: // an earlier script of the call failed
				case err != nil:
					c.err = w.r.fail("append", err)
				default:
					c.out = append(c.out, evs[j])
				}
			}
		}
		if len(again) > 0 {
			if err := scriptPublish.Load(ctx, w.r.client).Err(); err != nil {
				for _, g := range again {
					for _, e := range g.entries {
						if e.c.err == nil {
							e.c.err = w.r.fail("append: reload script", err)
						}
					}
				}
				break
			}
		}
		rest = again
	}
	for _, ch := range p {
		if c := ch.c; c.err == nil && len(c.out) < len(c.drafts) {
			carry = c // only the last chunk can be a part
			continue
		}
		w.finish(ch.c, ch.c.err)
	}
	return carry
}

// groupByChannel makes p's publish scripts: one per channel for the calls
// whose drafts share one channel, each channel's drafts in queue order. A
// call over several channels gets one script per run of one channel, in its
// order, with nothing moved across it: Redis runs a connection's commands in
// order, so when the connection dies mid-pipeline, what is stored of each
// call is a prefix of it, as Append promises, and each call on one channel
// is stored whole or not at all (a script is atomic).
func groupByChannel(p []chunk) []group {
	var gs []group
	seg := map[string]int{} // channel → its group since the last multi-channel call
	for _, ch := range p {
		ds := ch.c.drafts[ch.from : ch.from+ch.n]
		if oneChannel(ds) {
			k, ok := seg[ds[0].Channel]
			if !ok {
				k = len(gs)
				gs = append(gs, group{channel: ds[0].Channel})
				seg[ds[0].Channel] = k
			}
			for i := range ds {
				gs[k].entries = append(gs[k].entries, entry{ch.c, ch.from + i})
			}
			continue
		}
		clear(seg)
		for i, d := range ds {
			if i == 0 || d.Channel != ds[i-1].Channel {
				gs = append(gs, group{channel: d.Channel})
			}
			g := &gs[len(gs)-1]
			g.entries = append(g.entries, entry{ch.c, ch.from + i})
		}
	}
	return gs
}

func oneChannel(ds []events.Draft) bool {
	for _, d := range ds[1:] {
		if d.Channel != ds[0].Channel {
			return false
		}
	}
	return true
}

// pipelineContext bounds a pipeline by the latest deadline of its calls,
// when each has one: past it, no caller waits for the answer. (go-redis
// bounds reading a reply by the client's ReadTimeout, not by the context;
// the deadline bounds waiting for a connection and dialing.)
func pipelineContext(p []chunk) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, ch := range p {
		d, ok := ch.c.ctx.Deadline()
		if !ok {
			return context.Background(), func() {}
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}

// draftSize is what a draft adds to a pipeline, near enough.
func draftSize(d events.Draft) int {
	return len(d.Channel) + len(d.Type) + len(d.Fields) + len(d.IdempotencyKey)
}

// finish ends c with err (nil: every event stored, in c.out).
func (w *redisWriter) finish(c *appendCall, err error) {
	c.err = err
	close(c.done)
}

// close ends the calls still queued with ErrClosed, lets a pipeline in
// flight answer its calls (within the client's read timeout), and waits for
// the writer to end. Append fails with ErrClosed from then on.
func (w *redisWriter) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	for _, c := range w.queue {
		if c.state == callQueued {
			c.state = callTaken
			w.finish(c, fmt.Errorf("store: append (not sent): %w", events.ErrClosed))
		}
	}
	w.queue, w.queued = nil, 0
	close(w.room)
	w.mu.Unlock()
	close(w.stop)
	<-w.done
}
