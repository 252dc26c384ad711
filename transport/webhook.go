package transport

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Webhook configures the client-action webhook (RELAY_WEBHOOK_URL and
// RELAY_WEBHOOK_SECRET): relay POSTs the actions the app must record
// itself, such as mark_read, signed with the secret.
type Webhook struct {
	URL    string // "" turns webhooks off
	Secret string
	// Timeout bounds one delivery attempt (default 5 s).
	Timeout time.Duration
	// Backoff is the pause before the first retry, doubled after each
	// (default 1 s); retries stop once an action is webhookMaxAge old.
	Backoff time.Duration
}

// HeaderSignature carries "sha256=<hex HMAC-SHA256 of the body>".
const HeaderSignature = "X-Relay-Signature"

const (
	// webhookQueue bounds the actions waiting for delivery: a stuck app
	// costs at most this many bodies of memory, and a full queue drops the
	// newest action (logged) rather than slow any client.
	webhookQueue = 1024
	// webhookMaxAge is how long an action is retried: well within the
	// receiver's 300 s tolerance of ts (relay_django's default), so no
	// retry arrives stale.
	webhookMaxAge = 4 * time.Minute
)

// webhook delivers client actions in order, one at a time, from its own
// goroutine; the Server owns it and stops it at Shutdown.
//
// At Shutdown (stop) it stops waiting between retries: an action that
// failed is given up. It goes on delivering until the streams have ended
// (close), since they can still send actions during the shutdown spread,
// then posts what is queued once each, until Shutdown's deadline.
type webhook struct {
	cfg    Webhook
	client *http.Client
	log    *slog.Logger
	queue  chan webhookAction
	stop   chan struct{} // closed by Shutdown
	finish chan struct{} // closed by close: drain the queue and return
	once   sync.Once
	done   chan struct{} // closed when run returns
	ctx    context.Context
	cancel context.CancelFunc // ends an attempt in flight: Shutdown's deadline
}

type webhookAction struct {
	body []byte
	at   time.Time
}

// markReadAction is the mark_read webhook's body.
type markReadAction struct {
	Type   string   `json:"type"`
	UserID string   `json:"user_id"`
	IDs    []string `json:"ids"`
	All    bool     `json:"all"`
	TS     string   `json:"ts"`
}

// newWebhook starts the webhook's goroutine, or returns nil when off.
func newWebhook(cfg Webhook, stop chan struct{}, log *slog.Logger) *webhook {
	if cfg.URL == "" {
		return nil
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	w := &webhook{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, log: log,
		queue: make(chan webhookAction, webhookQueue), stop: stop, finish: make(chan struct{}), done: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.run()
	return w
}

// markRead queues a mark_read of user's ids (or all); it never blocks.
func (w *webhook) markRead(user string, ids []string, all bool) {
	if w == nil {
		return
	}
	if ids == nil {
		ids = []string{}
	}
	now := time.Now().UTC()
	body, _ := json.Marshal(markReadAction{Type: "mark_read", UserID: user, IDs: ids, All: all, TS: now.Format(time.RFC3339)})
	select {
	case w.queue <- webhookAction{body: body, at: now}:
	default:
		w.log.Warn("webhook queue full: a mark_read is dropped; is RELAY_WEBHOOK_URL answering?", "user", user, "queue", webhookQueue)
	}
}

// close delivers what is queued, one attempt each, until ctx ends, then
// ends the attempt in flight and waits for the goroutine. Call it once the
// streams have ended, after closing stop; it is idempotent.
func (w *webhook) close(ctx context.Context) {
	if w == nil {
		return
	}
	w.once.Do(func() { close(w.finish) })
	select {
	case <-w.done:
	case <-ctx.Done():
	}
	w.cancel()
	<-w.done
}

func (w *webhook) run() {
	defer close(w.done)
	for {
		select {
		case <-w.finish:
			w.drain()
			return
		case a := <-w.queue:
			w.deliver(a)
		}
	}
}

// drain posts each queued action once (stop is closed: deliver does not
// retry), and logs how many did not reach the app.
func (w *webhook) drain() {
	lost := 0
	for {
		select {
		case a := <-w.queue:
			if !w.deliver(a) {
				lost++
			}
		default:
			if lost > 0 {
				w.log.Warn("shut down with webhook actions undelivered: the app did not take them in time", "actions", lost)
			}
			return
		}
	}
}

// deliver posts a until the app takes it (2xx), refuses it for good (4xx
// other than 408 and 429), it is too old, or Shutdown; it reports whether
// the app took it.
func (w *webhook) deliver(a webhookAction) bool {
	backoff := w.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err := w.post(a.body)
		if err == nil {
			return true
		}
		if pe, ok := err.(permanentError); ok {
			w.log.Warn("webhook refused by the app; not retried", "err", pe)
			return false
		}
		if time.Since(a.at)+backoff > webhookMaxAge {
			w.log.Warn("webhook given up after retries", "attempts", attempt, "err", err)
			return false
		}
		select {
		case <-w.stop:
			w.log.Warn("webhook failed while shutting down; not retried", "attempt", attempt, "err", err)
			return false
		default:
		}
		w.log.Info("webhook failed; retrying", "attempt", attempt, "in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-w.stop:
			t.Stop()
			w.log.Warn("webhook failed while shutting down; not retried", "attempt", attempt, "err", err)
			return false
		case <-t.C:
		}
		backoff *= 2
	}
}

type permanentError struct{ error }

func (w *webhook) post(body []byte) error {
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return permanentError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderSignature, Sign(w.cfg.Secret, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return permanentError{fmt.Errorf("status %d", resp.StatusCode)}
	}
	return fmt.Errorf("status %d", resp.StatusCode)
}

// Sign is the X-Relay-Signature of body: "sha256=" and the hex HMAC-SHA256
// of body keyed with secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
