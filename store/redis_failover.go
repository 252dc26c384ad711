package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Following a Sentinel failover.
//
// go-redis's failover client learns of a master switch (Sentinel's
// +switch-master) and closes its pooled connections to the old master, but not
// Pub/Sub connections (go-redis v9.23 sentinel.go, onFailover). Watch's one
// Pub/Sub connection would stay on the demoted master, which keeps accepting
// SUBSCRIBE and hears nothing, until Sentinel reconfigures it as a replica
// and drops its clients: about 10 s later (Sentinel asks each instance for
// INFO every 10 s). So while a Watch runs on a Sentinel client, relay listens
// to the Sentinels itself (masterFollower), and when the master is no longer
// where its Pub/Sub connection went, closes that connection: go-redis dials
// the master the Sentinel names now and subscribes again, and Watch resyncs.
//
// Knowing where the Pub/Sub connection went takes two hooks of the client
// newFailoverClient makes: its Dialer, which go-redis calls with the master
// address as the Sentinel named it (the same form +switch-master uses), marks
// the connection with that address; its DialHook, which only the data
// connections pass (not go-redis's own Sentinel connections), hands the
// marked connection to the pubsubTracker that the watcher put in the dial's
// context.

// sentinelPingEvery is how long the Sentinel listener waits for a message
// before it sends PING; a Sentinel silent for twice as long is given up for
// the next one.
const sentinelPingEvery = time.Second

// recheckDelay is the first pause before the Pub/Sub connection is moved again
// when it landed on the old master (go-redis asked a Sentinel that had not
// learned of the switch yet); it doubles up to maxRetryDelay.
const recheckDelay = 100 * time.Millisecond

// newFailoverClient returns go-redis's Sentinel client for o, made so that
// Watch can follow its master.
func newFailoverClient(o *redis.FailoverOptions) *redis.Client {
	f := &failoverDialer{opt: o, next: o.Dialer}
	o.Dialer = f.dial
	c := redis.NewFailoverClient(o)
	c.AddHook(f)
	return c
}

// failoverDialer is the Dialer and DialHook of a newFailoverClient.
type failoverDialer struct {
	opt  *redis.FailoverOptions
	next func(ctx context.Context, network, addr string) (net.Conn, error) // the caller's Dialer, or nil
}

// dialedConn is a connection dialed for a Watch, with the master address it
// was dialed to.
type dialedConn struct {
	net.Conn
	addr string
}

// NetConn lets go-redis's connection checks reach the socket, as through a
// tls.Conn.
func (c *dialedConn) NetConn() net.Conn { return c.Conn }

func (f *failoverDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	cn, err := f.dialNext(ctx, network, addr)
	if err != nil || ctx.Value(trackerKey{}) == nil {
		return cn, err
	}
	return &dialedConn{Conn: cn, addr: addr}, nil
}

// dialNext dials as go-redis's failover client would without a Dialer.
func (f *failoverDialer) dialNext(ctx context.Context, network, addr string) (net.Conn, error) {
	if f.next != nil {
		return f.next(ctx, network, addr)
	}
	d := &net.Dialer{Timeout: f.opt.DialTimeout}
	if f.opt.TLSConfig == nil {
		return d.DialContext(ctx, network, addr)
	}
	return (&tls.Dialer{NetDialer: d, Config: f.opt.TLSConfig}).DialContext(ctx, network, addr)
}

func (f *failoverDialer) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		cn, err := next(ctx, network, addr)
		if trk, ok := ctx.Value(trackerKey{}).(*pubsubTracker); ok && err == nil {
			if d, ok := cn.(*dialedConn); ok {
				trk.dialed(f.opt, d)
			}
		}
		return cn, err
	}
}

func (f *failoverDialer) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (f *failoverDialer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

type trackerKey struct{}

// pubsubTracker knows where a watcher's Pub/Sub connection went. Its lock is
// taken on a dial and on a master switch, never per message.
type pubsubTracker struct {
	mu   sync.Mutex
	opt  *redis.FailoverOptions // set by the first dial through a newFailoverClient
	conn *dialedConn            // the newest Pub/Sub connection
	left bool                   // conn was closed by leave
	// moved is set when the connection is closed because the master moved,
	// so that the reader says so instead of reporting an outage.
	moved atomic.Bool
}

func withTracker(ctx context.Context, t *pubsubTracker) context.Context {
	return context.WithValue(ctx, trackerKey{}, t)
}

func (t *pubsubTracker) dialed(opt *redis.FailoverOptions, c *dialedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.opt, t.conn, t.left = opt, c, false
}

// failover returns the options of the Sentinel client the connection was
// dialed through, or nil when it was not.
func (t *pubsubTracker) failover() *redis.FailoverOptions {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.opt
}

// on returns the master address the connection was dialed to.
func (t *pubsubTracker) on() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		return ""
	}
	return t.conn.addr
}

// leave closes the connection if it is not on master, and reports whether it
// did. go-redis then dials again, asking a Sentinel for the master.
func (t *pubsubTracker) leave(master string) (from string, closed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil || t.left || t.conn.addr == master {
		return "", false
	}
	t.left = true
	t.moved.Store(true)
	_ = t.conn.Close() // the reader's blocked Receive fails at once
	return t.conn.addr, true
}

// masterFollower listens to the Sentinels for master switches while a watcher
// runs, and moves the watcher's Pub/Sub connection to the new master.
type masterFollower struct {
	opt    *redis.FailoverOptions
	trk    *pubsubTracker
	log    *slog.Logger
	master string // the master as the Sentinel listened to names it
}

// run listens to each configured Sentinel in turn until ctx ends.
func (f *masterFollower) run(ctx context.Context) {
	log := f.log.With("master_name", f.opt.MasterName)
	for i, failures := 0, 0; ; i++ {
		addr := f.opt.SentinelAddrs[i%len(f.opt.SentinelAddrs)]
		err := f.listen(ctx, addr)
		if ctx.Err() != nil {
			return
		}
		failures++
		if failures == 1 || failures%len(f.opt.SentinelAddrs) == 0 {
			log.Warn("redis sentinel not answering; trying the next to learn of failovers (until then Watch follows one only when its connection drops)",
				"sentinel", addr, "err", err)
		}
		if !sleep(ctx, min(50*time.Millisecond<<min(failures-1, 6), maxRetryDelay)) {
			return
		}
	}
}

// listen subscribes to +switch-master on the Sentinel at addr, asks it for
// the master (a switch may have happened while no Sentinel was listened to),
// and follows the master until ctx ends or the Sentinel fails.
func (f *masterFollower) listen(ctx context.Context, addr string) error {
	o := f.opt
	sc := redis.NewSentinelClient(&redis.Options{
		Addr: addr, ClientName: o.ClientName, Dialer: o.Dialer, Username: o.SentinelUsername,
		Password: o.SentinelPassword, TLSConfig: o.TLSConfig, DialTimeout: o.DialTimeout,
		ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
	})
	defer sc.Close()
	ps := sc.Subscribe(ctx, "+switch-master")
	defer ps.Close()
	// A cancelled ctx does not interrupt a blocked read (redis/go-redis#2556).
	defer context.AfterFunc(ctx, func() { _ = ps.Close() })()
	msg, err := ps.ReceiveTimeout(ctx, subscribeTimeout)
	if err != nil {
		return err
	}
	if sub, ok := msg.(*redis.Subscription); !ok || sub.Kind != "subscribe" {
		return fmt.Errorf("got %v before the subscription's confirmation", msg)
	}
	if err := f.ask(ctx, sc); err != nil {
		return err
	}
	heard, pinged := time.Now(), time.Time{}
	delay := recheckDelay
	for {
		wait := sentinelPingEvery
		if f.trk.on() != f.master {
			wait = delay
		}
		msg, err := ps.ReceiveTimeout(ctx, wait)
		var nerr net.Error
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &nerr) && nerr.Timeout():
			if time.Since(heard) > 2*sentinelPingEvery {
				return fmt.Errorf("no answer to PING for %v", time.Since(heard).Round(time.Millisecond))
			}
			if f.trk.on() != f.master {
				// Still on the old master: ask again (the Sentinel go-redis
				// asks may lag this one), then move again, less often.
				if err := f.ask(ctx, sc); err != nil {
					return err
				}
				delay = min(2*delay, maxRetryDelay)
			} else {
				delay = recheckDelay
			}
			if time.Since(heard) >= sentinelPingEvery && time.Since(pinged) >= sentinelPingEvery {
				if err := ps.Ping(ctx); err != nil {
					return err
				}
				pinged = time.Now()
			}
		case err != nil:
			return err
		default:
			heard = time.Now()
			if m, ok := msg.(*redis.Message); ok {
				f.switched(m.Payload)
			}
		}
	}
}

// ask learns the master from Sentinel sc and moves to it.
func (f *masterFollower) ask(ctx context.Context, sc *redis.SentinelClient) error {
	a, err := sc.GetMasterAddrByName(ctx, f.opt.MasterName).Result()
	if err != nil {
		return err
	}
	if len(a) != 2 {
		return fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME %s answered %q, want host and port", f.opt.MasterName, a)
	}
	f.follow(net.JoinHostPort(a[0], a[1]))
	return nil
}

// switched handles a +switch-master message:
// "<master name> <old ip> <old port> <new ip> <new port>".
func (f *masterFollower) switched(payload string) {
	p := strings.Fields(payload)
	if len(p) != 5 {
		f.log.Warn("redis sentinel +switch-master message not understood; ignored", "payload", payload)
		return
	}
	if p[0] == f.opt.MasterName {
		f.follow(net.JoinHostPort(p[3], p[4]))
	}
}

// follow records master and moves the Pub/Sub connection there if needed.
func (f *masterFollower) follow(master string) {
	f.master = master
	if from, moved := f.trk.leave(master); moved {
		f.log.Info("redis master moved (Sentinel); resubscribing on the new master, then subscribers re-read what they missed",
			"master_name", f.opt.MasterName, "from", from, "to", master)
	}
}
