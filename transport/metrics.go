package transport

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relaydev/relay/events"
)

// Metrics are relay's Prometheus series, on a registry of relay's own (never
// the global default). Labels are few and fixed: a transport, a reason, a
// cause, a store operation; never a channel or a user.
//
// The per-event path touches no label lookup, lock or allocation: every
// series a stream writes to is bound once here, and a session adds its
// events to the counters once per flushed batch.
type Metrics struct {
	reg *prometheus.Registry

	connections map[string]prometheus.Gauge // by transport
	subs        prometheus.Gauge
	delivered   prometheus.Counter
	replayed    prometheus.Counter
	resets      [2]prometheus.Counter // by events.ResetCause
	disconnects map[string]prometheus.Counter

	published      prometheus.Counter
	publishLatency prometheus.Histogram

	storeErrors  map[string]prometheus.Counter  // by op
	storeLatency map[string]prometheus.Observer // by op
	reconnects   prometheus.Counter
	received     prometheus.Counter
}

// Transports, the values of the transport label and log attribute.
const (
	transportSSE   = "sse"    // SSE on a hijacked HTTP/1.1 connection
	transportSSEH2 = "sse_h2" // SSE through the ResponseWriter (HTTP/2)
	transportWS    = "websocket"
)

// Store operations timed by ObserveStore, the values of the op label.
var storeOps = []string{"append", "read", "head", "broadcast", "ping"}

// NewMetrics returns relay's series, registered on a new registry with the
// Go runtime and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{reg: reg, connections: map[string]prometheus.Gauge{}, disconnects: map[string]prometheus.Counter{},
		storeErrors: map[string]prometheus.Counter{}, storeLatency: map[string]prometheus.Observer{}}

	conns := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "relay_connections",
		Help: "Open streams, by transport (sse, sse_h2, websocket)."}, []string{"transport"})
	for _, t := range []string{transportSSE, transportSSEH2, transportWS} {
		m.connections[t] = conns.WithLabelValues(t)
	}
	m.subs = prometheus.NewGauge(prometheus.GaugeOpts{Name: "relay_subscriptions",
		Help: "Channel subscriptions of the open streams (a stream of 3 channels counts 3)."})
	m.delivered = prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_events_delivered_total",
		Help: "Events written to streams live (including gap fills), summed over streams."})
	m.replayed = prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_events_replayed_total",
		Help: "Events written to streams from history after a client's cursor, at connect."})
	resets := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_resets_total",
		Help: "Reset messages sent: a channel's history after a cursor was gone, by cause (trimmed, new_epoch)."}, []string{"cause"})
	m.resets[events.ResetTrimmed] = resets.WithLabelValues("trimmed")
	m.resets[events.ResetNewEpoch] = resets.WithLabelValues("new_epoch")
	disc := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_disconnects_total",
		Help: "Streams ended, by reason."}, []string{"reason"})
	for _, r := range reasons {
		m.disconnects[r] = disc.WithLabelValues(r)
	}
	m.published = prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_events_published_total",
		Help: "Events stored by publishes (API and presence), not counting idempotent repeats."})
	m.publishLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "relay_publish_duration_seconds",
		Help: "Time to store one publish call's events in the log.", Buckets: latencyBuckets})
	storeErrors := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relay_store_errors_total",
		Help: "Event log calls that failed, by op (ErrCursorGone is an answer, not an error)."}, []string{"op"})
	storeLatency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "relay_store_duration_seconds",
		Help: "Event log call latency, by op.", Buckets: latencyBuckets}, []string{"op"})
	for _, op := range storeOps { // every op's series exists from the start, at 0
		m.storeErrors[op] = storeErrors.WithLabelValues(op)
		m.storeLatency[op] = storeLatency.WithLabelValues(op)
	}
	m.reconnects = prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_redis_pubsub_reconnects_total",
		Help: "Times the Redis Pub/Sub connection subscribed again after it was lost (subscribers then re-read the log)."})
	m.received = prometheus.NewCounter(prometheus.CounterOpts{Name: "relay_store_events_received_total",
		Help: "Events this process was sent by Redis Pub/Sub: those of the channels its clients read (stored and ephemeral)."})
	for _, c := range []prometheus.Collector{conns, m.subs, m.delivered, m.replayed, resets, disc, m.published,
		m.publishLatency, storeErrors, storeLatency, m.reconnects, m.received} {
		f(c)
	}
	return m
}

// latencyBuckets span a memory store's tens of microseconds to a Redis that
// takes seconds (StoreTimeout is 3 s by default).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry the series are on, for a caller's own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Published implements events.Observer: one Publish call.
func (m *Metrics) Published(stored int, took time.Duration, err error) {
	if err == nil {
		m.published.Add(float64(stored))
	}
	m.publishLatency.Observe(took.Seconds())
}

// ObserveStore records one event log call: op is one of append, read, head,
// broadcast, ping; a failure is an error other than events.ErrCursorGone.
// Another op is not recorded.
func (m *Metrics) ObserveStore(op string, took time.Duration, failed bool) {
	h, ok := m.storeLatency[op]
	if !ok {
		return
	}
	h.Observe(took.Seconds())
	if failed {
		m.storeErrors[op].Inc()
	}
}

// PubSubReconnected counts a Redis Pub/Sub reconnect (store.RedisOptions.OnReconnect).
func (m *Metrics) PubSubReconnected() { m.reconnects.Inc() }

// StoreReceived counts one event received from Redis Pub/Sub
// (store.RedisOptions.OnReceive).
func (m *Metrics) StoreReceived() { m.received.Inc() }

// presenceOnline registers the gauge of users online through this process,
// read from online at each scrape. It fails when the gauge is there already
// (one Metrics given to two servers).
func (m *Metrics) presenceOnline(online func() int) error {
	err := m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_presence_users_online",
		Help: "Users online through this process, once per project they are in, grace periods included."},
		func() float64 { return float64(online()) }))
	if err != nil {
		return fmt.Errorf("transport: metrics: %w (give each server its own Metrics)", err)
	}
	return nil
}
