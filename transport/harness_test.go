package transport_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/relaydev/relay/app/bootstrap"
	"github.com/relaydev/relay/auth"
	"github.com/relaydev/relay/events"
	"github.com/relaydev/relay/store/redistest"
	"github.com/relaydev/relay/transport"
)

var secret = []byte("test-secret-0123456789abcdef")

// wait is how long a test waits for one message before failing.
const wait = 5 * time.Second

// The two stores a relay may run over. Tests of what a client receives
// (envelopes, replay, resets, publish answers) run over both, the Redis one
// against a real Redis (redistest: a throwaway redis-server when none
// answers), each relay under a key prefix of its own.
const (
	memoryStore = "memory"
	redisStore  = "redis"
)

var storeKinds = []string{memoryStore, redisStore}

// eachStore runs f as one subtest per store, named by the store.
func eachStore(t *testing.T, f func(t *testing.T, st string)) {
	t.Helper()
	for _, st := range storeKinds {
		t.Run(st, func(t *testing.T) { f(t, st) })
	}
}

// eachStoreAndKind runs f as one subtest per store and transport, named
// "<store>/<transport>".
func eachStoreAndKind(t *testing.T, f func(t *testing.T, st, kind string)) {
	t.Helper()
	eachStore(t, func(t *testing.T, st string) {
		for _, kind := range kinds {
			t.Run(kind, func(t *testing.T) { f(t, st, kind) })
		}
	})
}

// relay is a relay on a real listener, over a memory or Redis log, built as
// app builds it (bootstrap): notifications kept and presence tracked in the
// same store as its log.
type relay struct {
	url     string
	srv     *transport.Server
	hub     *events.Hub
	log     events.Log // the hub's log (wrapped, when withLog wraps it)
	tracker *events.Tracker
	ts      *httptest.Server
	prefix  string // the Redis store's key prefix; "" over memory
}

type option func(*settings)

// settings are what options change before a relay starts.
type settings struct {
	cfg   transport.Config
	ret   events.Retention
	queue events.QueueLimits          // each subscription's live queue; zero fields: the defaults
	store string                      // memoryStore (the default) or redisStore
	wrap  func(events.Log) events.Log // wraps the store's log, if set
	auth  transport.Authenticator     // nil: a Verifier of the test secret
	log   *slog.Logger                // the relay's logger, if set
	// presence tunes the tracker; zero fields take the app's defaults.
	presence events.PresenceConfig
}

// withConfig adjusts the transport configuration.
func withConfig(f func(*transport.Config)) option {
	return func(s *settings) { f(&s.cfg) }
}

// withMaxEvents bounds each channel's history to n events.
func withMaxEvents(n int) option {
	return func(s *settings) { s.ret.MaxEvents = n }
}

// withQueue bounds each subscription's queue of live events.
func withQueue(q events.QueueLimits) option {
	return func(s *settings) { s.queue = q }
}

// withStore runs the relay over the named store (storeKinds); the default is
// memory.
func withStore(kind string) option {
	return func(s *settings) { s.store = kind }
}

// withPresence sets the presence tracker's timers (zero: the default).
func withPresence(cfg events.PresenceConfig) option {
	return func(s *settings) { s.presence = cfg }
}

// Short presence timers for tests: a 300 ms grace period, typing that ends
// 500 ms after its last refresh, holds that last 3 s.
const (
	testGrace   = 300 * time.Millisecond
	testTyping  = 500 * time.Millisecond
	testHoldTTL = 3 * time.Second
)

// withFastPresence is withPresence with the short test timers.
func withFastPresence() option {
	return withPresence(events.PresenceConfig{Grace: testGrace, TypingTimeout: testTyping, HoldTTL: testHoldTTL})
}

// withLog wraps the relay's log, to slow it down or make it fail.
func withLog(wrap func(events.Log) events.Log) option {
	return func(s *settings) { s.wrap = wrap }
}

// withLogger gives the relay a logger (by default: none over memory, the
// test's log at warn level over Redis).
func withLogger(l *slog.Logger) option {
	return func(s *settings) { s.log = l }
}

// logBuffer collects a relay's log lines, for tests that read them.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the lines logged so far that contain every one of parts.
func (b *logBuffer) lines(parts ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for line := range strings.SplitSeq(b.buf.String(), "\n") {
		all := line != ""
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// withAuth authenticates with a instead of the harness's one secret.
func withAuth(a transport.Authenticator) option {
	return func(s *settings) { s.auth = a }
}

func startRelay(t *testing.T, opts ...option) *relay {
	t.Helper()
	r, proc := buildRelay(t, opts...)
	srv := proc.Server
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		ts.CloseClientConnections()
		ts.Close()
		if err := proc.Close(); err != nil { // tracker, hub, store
			t.Errorf("close: %v", err)
		}
	})
	r.url, r.ts = ts.URL, ts
	return r
}

// buildRelay builds a relay's process (bootstrap) without a listener; the
// caller closes it.
func buildRelay(t testing.TB, opts ...option) (*relay, *bootstrap.Process) {
	t.Helper()
	var set settings
	for _, o := range opts {
		o(&set)
	}
	// As app/serve.go does: an unchanged typing state is applied again
	// (refreshing it) after a third of the typing timeout at the latest.
	if set.presence.TypingTimeout > 0 && set.cfg.Limits.TypingRepeat == 0 {
		set.cfg.Limits.TypingRepeat = set.presence.TypingTimeout / 3
	}
	if set.auth == nil {
		v, err := auth.NewVerifier(secret)
		if err != nil {
			t.Fatal(err)
		}
		set.auth = v
	}
	cfg := bootstrap.Config{Retention: set.ret, Queue: set.queue, Presence: set.presence, Transport: set.cfg, Auth: set.auth}
	var prefix string
	switch set.store {
	case "", memoryStore:
	case redisStore:
		// Prefix registers its key cleanup first, so it runs after the
		// relay's cleanup has closed the log.
		prefix = redistest.Prefix(t)
		cfg.RedisURL, cfg.RedisPrefix = redistest.URL(t), prefix
		cfg.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	default:
		t.Fatalf("unknown store %q, want one of %v", set.store, storeKinds)
	}
	var wrapped events.Log
	if set.wrap != nil {
		cfg.WrapLog = func(l events.Log) events.Log { wrapped = set.wrap(l); return wrapped }
	}
	if set.log != nil {
		cfg.Logger = set.log
	}
	proc, err := bootstrap.Build(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if wrapped == nil {
		wrapped = proc.Log
	}
	return &relay{srv: proc.Server, hub: proc.Hub, log: wrapped, tracker: proc.Tracker, prefix: prefix}, proc
}

// wipeRedis deletes every key of the relay's Redis log, as a Redis restarted
// without persistence (or flushed) would have lost them.
func (r *relay) wipeRedis(t *testing.T) {
	t.Helper()
	if r.prefix == "" {
		t.Fatal("wipeRedis: the relay is not over Redis")
	}
	c := redistest.NewClient(t)
	ctx := context.Background()
	var keys []string
	it := c.Scan(ctx, 0, r.prefix+"*", 1000).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatalf("list %s*: %v", r.prefix, err)
	}
	if len(keys) == 0 {
		t.Fatalf("no keys under %s to wipe", r.prefix)
	}
	if err := c.Del(ctx, keys...).Err(); err != nil {
		t.Fatalf("delete %s*: %v", r.prefix, err)
	}
}

// tWriter writes a store's log lines to the test's log; a store logs only
// before its Close returns, which is before the test ends.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// delivered returns a function that waits until the relay's hub has been
// handed n events of channel by the log's live feed (counted from this
// call). Memory delivers during Append; Redis later, over Pub/Sub, to every
// watcher in the order they began watching: when this watcher has an event,
// the hub (which began first) has had it too.
func (r *relay) delivered(t *testing.T, channel string, n int) (await func()) {
	t.Helper()
	done := make(chan struct{})
	count := 0
	stop, err := r.log.Watch(context.Background(), func(ev *events.Event) {
		if ev.Channel != channel || ev.Ephemeral || count >= n {
			return
		}
		if count++; count == n {
			close(done)
		}
	}, func() {})
	if err != nil {
		t.Fatalf("watch %s: %v", channel, err)
	}
	t.Cleanup(stop)
	return func() {
		t.Helper()
		select {
		case <-done:
		case <-time.After(wait):
			t.Fatalf("the hub was not handed %d events of %s within %v", n, channel, wait)
		}
	}
}

// token mints a token for user sub in projects, valid for ttl.
func token(t *testing.T, id auth.Identity, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.Mint(secret, id, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// rawToken signs claims by hand with key, as a backend would.
func rawToken(t *testing.T, key []byte, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// alice is user 1, member of projects 1 and 2.
func alice(t *testing.T) string {
	return token(t, auth.Identity{UserID: "1", Name: "alice", Projects: []string{"1", "2"}}, time.Hour)
}

func publisher(t *testing.T) string {
	return token(t, auth.Identity{UserID: "backend", Publish: []string{"*"}}, time.Hour)
}

// publish posts body to /api/publish and returns the status and decoded answer.
func (r *relay) publish(t *testing.T, tok, body string) (int, map[string]any) {
	t.Helper()
	status, out, err := r.publishErr(tok, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, out
}

// publishErr is publish for goroutines other than the test's.
func (r *relay) publishErr(tok, body string) (int, map[string]any, error) {
	req, _ := http.NewRequest(http.MethodPost, r.url+"/api/publish", strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, nil
}

// mustPublish publishes one event and returns its id.
func (r *relay) mustPublish(t *testing.T, channel, typ string, data any) string {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"channel": channel, "type": typ, "data": data})
	status, out := r.publish(t, publisher(t), string(raw))
	if status != http.StatusOK {
		t.Fatalf("publish: got status %d (%v), want 200", status, out)
	}
	return out["id"].(string)
}

// publishN publishes n events to channel and returns their ids, in order.
func (r *relay) publishN(t *testing.T, channel string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = r.mustPublish(t, channel, "n", i)
	}
	return ids
}

// kept returns the events the log holds for channel, oldest first.
func (r *relay) kept(t *testing.T, channel string) []*events.Event {
	t.Helper()
	evs, err := r.log.Read(context.Background(), channel, events.Beginning, 10_000)
	if err != nil {
		t.Fatalf("read %s: %v", channel, err)
	}
	return evs
}

// frame is one parsed Server-Sent Event (or a comment, with Comment set).
type frame struct {
	Event, ID, Data, Retry string
	HasID                  bool
	Comment                bool
}

// sse is a streaming SSE client.
type sse struct {
	resp   *http.Response
	frames chan frame
	done   chan struct{}
}

// openSSE GETs url with an event-stream Accept and the given headers. It
// returns a nil *sse and the response when the status is not 200.
func openSSE(t *testing.T, url string, header map[string]string) (*sse, *http.Response) {
	t.Helper()
	h := http.Header{}
	for k, v := range header {
		h.Set(k, v)
	}
	s, resp, err := dialSSE(t, url, h)
	if err != nil {
		t.Fatal(err)
	}
	return s, resp
}

// dialSSE is openSSE for goroutines other than the test's.
func dialSSE(t *testing.T, url string, header http.Header) (*sse, *http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		t.Cleanup(func() { resp.Body.Close() })
		return nil, resp, nil
	}
	s := &sse{resp: resp, frames: make(chan frame, 4096), done: make(chan struct{})}
	go s.read()
	t.Cleanup(s.close)
	return s, resp, nil
}

// close ends the stream from the client's side and waits for its reader.
func (s *sse) close() {
	s.resp.Body.Close()
	<-s.done
}

func (s *sse) read() {
	defer close(s.done)
	defer close(s.frames)
	br := bufio.NewReader(s.resp.Body)
	var f frame
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if f.Comment || f.HasID || len(data) > 0 || f.Retry != "" || f.Event != "" {
				f.Data = strings.Join(data, "\n")
				s.frames <- f
			}
			f, data = frame{}, nil
		case strings.HasPrefix(line, ":"):
			f.Comment = true
		default:
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "event":
				f.Event = v
			case "id":
				f.ID, f.HasID = v, true
			case "data":
				data = append(data, v)
			case "retry":
				f.Retry = v
			}
		}
	}
}

// next returns the next frame that is not a comment or a bare retry/id.
func (s *sse) next(t *testing.T) frame {
	t.Helper()
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				t.Fatal("stream ended, want another event")
			}
			if f.Comment || (f.Data == "" && f.Event == "") {
				continue
			}
			return f
		case <-time.After(wait):
			t.Fatalf("no event within %v", wait)
		}
	}
}

// frame returns the next frame of any kind, comments included.
func (s *sse) frame(t *testing.T) frame {
	t.Helper()
	select {
	case f, ok := <-s.frames:
		if !ok {
			t.Fatal("stream ended, want another frame")
		}
		return f
	case <-time.After(wait):
		t.Fatalf("no frame within %v", wait)
	}
	panic("unreachable")
}

// envelope decodes an event frame's data.
func envelope(t *testing.T, data string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("data %q is not JSON: %v", data, err)
	}
	return m
}

// wsURL turns an http URL into a ws one.
func wsURL(url string) string { return "ws" + strings.TrimPrefix(url, "http") }

// wsDial opens a WebSocket to path (http URL) and returns the connection.
func wsDial(t *testing.T, url string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(wsURL(url), header)
	if err == nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, resp, err
}

// wsNext reads the next JSON message, failing after 5 s.
func wsNext(t *testing.T, conn *websocket.Conn) map[string]any {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	_, raw, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return envelope(t, string(raw))
}

// wsCloseCode reads until the connection closes and returns the close code and text.
func wsCloseCode(t *testing.T, conn *websocket.Conn) (int, string) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code, ce.Text
		}
		t.Fatalf("want a close frame, got %v", err)
	}
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, _ := io.ReadAll(r)
	return string(b)
}

// errorJSON decodes an error answer and checks its shape: {"error","message"}.
func errorJSON(t *testing.T, resp *http.Response) string {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var body map[string]any
	raw := readAll(t, resp.Body)
	if err := json.Unmarshal([]byte(raw), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", raw, err)
	}
	return checkErrorBody(t, body)
}

// checkErrorBody checks a decoded error answer and returns its code.
func checkErrorBody(t *testing.T, body map[string]any) string {
	t.Helper()
	code, _ := body["error"].(string)
	msg, _ := body["message"].(string)
	if code == "" || msg == "" || len(body) != 2 {
		t.Errorf("error body: got %v, want {\"error\": code, \"message\": text}", body)
	}
	return code
}

// seqOf returns the sequence number of an envelope id "<epoch>-<seq>".
func seqOf(t testing.TB, id string) uint64 {
	t.Helper()
	p, err := events.ParsePosition(id)
	if err != nil {
		t.Fatalf("envelope id %q: %v", id, err)
	}
	return p.Seq
}

// The two transports every stream test runs over.
const (
	sseKind = "sse"
	wsKind  = "ws"
)

var kinds = []string{sseKind, wsKind}

// msg is one thing a client received, whatever the transport.
type msg struct {
	// Kind is "message" for an event; else the SSE event name or the type of
	// a WebSocket control message ("reset", "connection_established", …).
	// The SSE frame that carries only the cursor after replay is "cursor".
	Kind string
	// ID is the SSE id line, or the WebSocket envelope's id.
	ID  string
	Env map[string]any
	// Retry is an SSE frame's retry hint.
	Retry string
}

// channel is the envelope's channel.
func (m msg) channel() string { s, _ := m.Env["channel"].(string); return s }

// envID is the envelope's own id.
func (m msg) envID() string { s, _ := m.Env["id"].(string); return s }

// client is an SSE or WebSocket subscriber behind one interface. It keeps
// its cursor as a browser client would: the SSE id line, or for WebSocket
// one position per channel, from connection_established and each envelope.
type client struct {
	kind string
	msgs chan msg
	done chan struct{}
	stop func()

	// Set before done is closed.
	code   int // WebSocket close code; 0 when none came
	reason string

	// Used by the test goroutine only.
	cursor   string            // SSE: the last id line
	channels []string          // WS: the connection's channels
	pos      map[string]string // WS: the envelope id per channel
}

// connect opens a stream of the given kind to url. A refusal answered with
// an HTTP status (SSE, or a refused WebSocket handshake) is returned as
// the response with a nil client. Safe to call from any goroutine.
func connect(t *testing.T, kind, url string, header http.Header) (*client, *http.Response, error) {
	c := &client{kind: kind, msgs: make(chan msg, 4096), done: make(chan struct{}), pos: map[string]string{}}
	switch kind {
	case sseKind:
		s, resp, err := dialSSE(t, url, header)
		if err != nil || s == nil {
			return nil, resp, err
		}
		c.stop = s.close
		go c.readSSE(s)
	case wsKind:
		conn, resp, err := websocket.DefaultDialer.Dial(wsURL(url), header)
		if errors.Is(err, websocket.ErrBadHandshake) {
			t.Cleanup(func() { resp.Body.Close() })
			return nil, resp, nil
		}
		if err != nil {
			return nil, resp, err
		}
		c.stop = func() { conn.Close(); <-c.done }
		go c.readWS(conn)
	default:
		return nil, nil, fmt.Errorf("unknown transport %q", kind)
	}
	var once sync.Once
	stop := c.stop
	c.stop = func() { once.Do(stop) }
	t.Cleanup(c.stop)
	return c, nil, nil
}

// mustConnect connects and fails the test on any refusal.
func mustConnect(t *testing.T, kind, url string, header http.Header) *client {
	t.Helper()
	c, resp, err := connect(t, kind, url, header)
	if err != nil {
		t.Fatalf("%s %s: %v", kind, url, err)
	}
	if c == nil {
		t.Fatalf("%s %s: got status %d: %s, want a stream", kind, url, resp.StatusCode, readAll(t, resp.Body))
	}
	return c
}

func (c *client) readSSE(s *sse) {
	defer close(c.done)
	defer close(c.msgs)
	for f := range s.frames {
		m := msg{Kind: f.Event, ID: f.ID, Retry: f.Retry}
		switch {
		case f.Comment:
			continue
		case f.Data == "" && f.Event == "" && f.HasID, f.Event == "connection_established":
			m.Kind = "cursor"
		case f.Data == "" && f.Event == "":
			continue // a retry hint alone
		case m.Kind == "":
			m.Kind = "message"
		}
		if f.Data != "" {
			if err := json.Unmarshal([]byte(f.Data), &m.Env); err != nil {
				m.Kind = "bad-json: " + f.Data
			}
		}
		c.msgs <- m
	}
}

func (c *client) readWS(conn *websocket.Conn) {
	defer close(c.done)
	defer close(c.msgs)
	for {
		_, raw, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.code, c.reason = ce.Code, ce.Text
			}
			return
		}
		var m msg
		if err := json.Unmarshal(raw, &m.Env); err != nil {
			m.Kind = "bad-json: " + string(raw)
		} else if _, ok := m.Env["ts"]; ok {
			m.Kind, m.ID = "message", m.envID()
		} else {
			m.Kind, _ = m.Env["type"].(string)
		}
		c.msgs <- m
	}
}

// recv returns the next message, or an error when the stream ends or
// nothing comes within timeout. It keeps the client's cursor.
func (c *client) recv(timeout time.Duration) (msg, error) {
	select {
	case m, ok := <-c.msgs:
		if !ok {
			return msg{}, fmt.Errorf("%s stream ended (close %d %q), want another message", c.kind, c.code, c.reason)
		}
		c.track(m)
		return m, nil
	case <-time.After(timeout):
		return msg{}, fmt.Errorf("%s: no message within %v", c.kind, timeout)
	}
}

func (c *client) track(m msg) {
	if c.kind == sseKind {
		if m.ID != "" {
			c.cursor = m.ID
		}
		return
	}
	switch m.Kind {
	case "connection_established":
		c.channels = nil
		for _, ch := range m.Env["channels"].([]any) {
			c.channels = append(c.channels, ch.(string))
		}
		cur, _ := m.Env["cursor"].(string)
		if len(c.channels) == 1 {
			c.pos[c.channels[0]] = cur
			break
		}
		for pair := range strings.SplitSeq(cur, ",") {
			ch, id, _ := strings.Cut(pair, "=")
			c.pos[ch] = id
		}
	case "message", "reset":
		c.pos[m.channel()] = m.envID()
	}
}

// resumeCursor is what the client sends to resume: the SSE id line, or for
// WebSocket the cursor built from per-channel envelope ids.
func (c *client) resumeCursor() string {
	if c.kind == sseKind {
		return c.cursor
	}
	if len(c.channels) == 1 {
		return c.pos[c.channels[0]]
	}
	parts := make([]string, 0, len(c.channels))
	for _, ch := range c.channels {
		if id, ok := c.pos[ch]; ok {
			parts = append(parts, ch+"="+id)
		}
	}
	return strings.Join(parts, ",")
}

// liveErr reads until the stream says it is live (SSE: the cursor frame
// after replay; WebSocket: connection_established) and returns what came
// before: the history after the client's cursor.
func (c *client) liveErr() ([]msg, error) {
	var history []msg
	for {
		m, err := c.recv(wait)
		if err != nil {
			return history, err
		}
		if m.Kind == "cursor" || m.Kind == "connection_established" {
			return history, nil
		}
		history = append(history, m)
	}
}

// live is liveErr for the test goroutine.
func (c *client) live(t *testing.T) []msg {
	t.Helper()
	h, err := c.liveErr()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// nextErr returns the next event or control message, skipping the
// live markers.
func (c *client) nextErr() (msg, error) {
	for {
		m, err := c.recv(wait)
		if err != nil || (m.Kind != "cursor" && m.Kind != "connection_established") {
			return m, err
		}
	}
}

// next is nextErr for the test goroutine.
func (c *client) next(t *testing.T) msg {
	t.Helper()
	m, err := c.nextErr()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// event returns the next message and fails unless it is an event.
func (c *client) event(t *testing.T) msg {
	t.Helper()
	m := c.next(t)
	if m.Kind != "message" {
		t.Fatalf("%s: got %q message %v, want an event", c.kind, m.Kind, m.Env)
	}
	return m
}

// ended waits for the stream to end and returns what came before the end.
func (c *client) ended(t *testing.T) []msg {
	t.Helper()
	var rest []msg
	deadline := time.After(wait)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return rest
			}
			c.track(m)
			rest = append(rest, m)
		case <-deadline:
			t.Fatalf("%s stream still open after %v, want it ended", c.kind, wait)
		}
	}
}

// close disconnects the client and waits for its reader.
func (c *client) close() { c.stop() }

// seqs returns the sequence numbers of the events among ms.
func seqs(t *testing.T, ms []msg) []uint64 {
	t.Helper()
	var out []uint64
	for _, m := range ms {
		if m.Kind == "message" {
			out = append(out, seqOf(t, m.envID()))
		}
	}
	return out
}

// seqRange is [from, to].
func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// cursorHeader is a Last-Event-ID header, nil for an empty cursor.
func cursorHeader(cursor string) http.Header {
	if cursor == "" {
		return nil
	}
	return http.Header{"Last-Event-Id": {cursor}}
}

// q joins query parameters onto a path: q("/events", "channel", "a", "token", tok).
func q(path string, kv ...string) string {
	var b strings.Builder
	b.WriteString(path)
	for i := 0; i+1 < len(kv); i += 2 {
		if i == 0 && !strings.Contains(path, "?") {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(kv[i])
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(kv[i+1]))
	}
	return b.String()
}
