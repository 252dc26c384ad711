package bootstrap

import (
	"context"
	"errors"
	"time"

	"github.com/relaydev/relay/events"
)

// storeObserver is told of every event log call (transport.Metrics).
type storeObserver interface {
	ObserveStore(op string, took time.Duration, failed bool)
}

// fullLog is what both stores' logs are: a log that broadcasts and answers
// pings.
type fullLog interface {
	events.Log
	events.Broadcaster
	events.Pinger
}

// observedLog times every call of the log it wraps, and counts its failures
// (an ErrCursorGone is the log's answer, not a failure). It adds one
// time.Now pair per store call, none per delivered event: Watch passes the
// log's own callbacks through.
type observedLog struct {
	fullLog
	obs storeObserver
}

// observe wraps l, when it is a fullLog (memory and Redis both are); another
// log is returned as it is, rather than lose its optional methods.
func observe(l events.Log, obs storeObserver) events.Log {
	s, ok := l.(fullLog)
	if !ok {
		return l
	}
	o := &observedLog{fullLog: s, obs: obs}
	if bw, ok := l.(events.BatchWatcher); ok {
		return &observedBatchLog{observedLog: o, bw: bw}
	}
	return o
}

// observedBatchLog is observedLog over a log with a batched live feed
// (store.Redis), which it keeps visible to the hub.
type observedBatchLog struct {
	*observedLog
	bw events.BatchWatcher
}

func (o *observedBatchLog) WatchBatches(ctx context.Context, deliver func([]*events.Event), resync func()) (func(), error) {
	return o.bw.WatchBatches(ctx, deliver, resync)
}

func (o *observedLog) done(op string, start time.Time, err error) {
	o.obs.ObserveStore(op, time.Since(start), err != nil && !errors.Is(err, events.ErrCursorGone))
}

func (o *observedLog) Append(ctx context.Context, drafts []events.Draft) ([]*events.Event, error) {
	start := time.Now()
	evs, err := o.fullLog.Append(ctx, drafts)
	o.done("append", start, err)
	return evs, err
}

func (o *observedLog) Read(ctx context.Context, channel string, after events.Position, limit int) ([]*events.Event, error) {
	start := time.Now()
	evs, err := o.fullLog.Read(ctx, channel, after, limit)
	o.done("read", start, err)
	return evs, err
}

func (o *observedLog) Head(ctx context.Context, channel string) (events.Position, error) {
	start := time.Now()
	p, err := o.fullLog.Head(ctx, channel)
	o.done("head", start, err)
	return p, err
}

func (o *observedLog) Broadcast(ctx context.Context, ev *events.Event) error {
	start := time.Now()
	err := o.fullLog.Broadcast(ctx, ev)
	o.done("broadcast", start, err)
	return err
}

func (o *observedLog) Ping(ctx context.Context) error {
	start := time.Now()
	err := o.fullLog.Ping(ctx)
	o.done("ping", start, err)
	return err
}
