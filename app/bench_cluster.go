package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relaydev/relay/auth"
)

// clusterOpts are the knobs of `relay bench cluster`.
type clusterOpts struct {
	relays, masters, channels, perChannel int
	redisURL                              string
	wait                                  time.Duration
}

// clusterPublishBatch is how many events one publish call carries.
const clusterPublishBatch = 250

// clusterCmd measures interest-based Pub/Sub: relays relay processes on a
// Redis Cluster of masters masters (started here unless --redis-url names
// one), one SSE stream per channel with channel i's stream on relay i mod
// relays, events published to every channel through the relays in turn.
// It reports, per relay, the events Redis sent it
// (relay_store_events_received_total) against all published, and the
// events each relay's streams did not get.
func clusterCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relay bench cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := clusterOpts{}
	fs.IntVar(&o.relays, "relays", 3, "relay processes, each serving an equal share of the channels")
	fs.IntVar(&o.masters, "masters", 3, "Redis Cluster masters started on loopback (needs redis-server 7 on PATH)")
	fs.IntVar(&o.channels, "channels", 3000, "channels, one SSE stream each")
	fs.IntVar(&o.perChannel, "events", 10, "events published to each channel")
	fs.StringVar(&o.redisURL, "redis-url", "", "a running Redis Cluster to use instead (redis://host:port?addr=host:port…)")
	fs.DurationVar(&o.wait, "wait", 60*time.Second, "how long streams may take to receive everything after the last publish")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.relays < 1 || o.masters < 1 || o.channels < 1 || o.perChannel < 1 {
		return errors.New("bench cluster: --relays, --masters, --channels and --events must be positive")
	}
	if _, err := raiseFileLimit(); err != nil {
		return err
	}
	url := o.redisURL
	var c *benchCluster
	if url == "" {
		var err error
		if c, err = startBenchCluster(ctx, o.masters); err != nil {
			return err
		}
		defer c.stop()
		url = c.url
	}
	prefix := "relaybench:" + randomSecret()[:8] + ":"
	secret := randomSecret()
	var relays []*benchTarget
	defer func() {
		for _, t := range relays {
			t.stop()
		}
	}()
	for i := range o.relays {
		t := &benchTarget{name: fmt.Sprintf("relay %d", i+1), secret: secret}
		env := append(os.Environ(), "RELAY_ADDR=127.0.0.1:0", "RELAY_JWT_SECRET="+secret,
			"RELAY_LOG_LEVEL=warn", "RELAY_HISTORY_MAX_AGE=15m", "REDIS_URL="+url, "RELAY_REDIS_PREFIX="+prefix,
			"RELAY_MAX_CONNS_PER_USER=1000000", "RELAY_MAX_CONNS_PER_IP=1000000",
			"RELAY_CONNECT_RATE=1000000", "RELAY_CONNECT_BURST=1000000")
		if err := t.start(ctx, []string{"serve"}, env); err != nil {
			return err
		}
		relays = append(relays, t)
	}
	if err := o.measure(ctx, relays, stdout); err != nil {
		return err
	}
	if c != nil {
		c.printPubSubClients(ctx, stdout)
	}
	return nil
}

// clusterChannel is channel i's project id: project_<id>_tickets.
func clusterChannel(i int) string { return strconv.Itoa(100_000 + i) }

func (o clusterOpts) measure(ctx context.Context, relays []*benchTarget, out io.Writer) error {
	bn := newBenchNet(o.channels, streamsPerAddr)
	defer bn.close()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	got := make([]atomic.Int64, o.channels) // events each channel's stream received
	var all sync.WaitGroup                  // a channel's stream has every event
	all.Add(o.channels)
	url := func(i int) string {
		t, id := relays[i%len(relays)], clusterChannel(i)
		return t.url + streamPath(transportSSE, id) + "?token=" + t.token(auth.Identity{UserID: "bench", Projects: []string{id}})
	}
	err := openEach(ctx, bn, &wg, o.channels, transportSSE, url, func(i int, s benchStream) {
		for n := 0; ; {
			if _, _, err := s.next(); err != nil {
				if n < o.perChannel {
					all.Done()
				}
				return
			}
			n++
			got[i].Store(int64(n))
			if n == o.perChannel {
				all.Done()
			}
		}
	})
	if err != nil {
		return fmt.Errorf("bench cluster: %w", err)
	}
	before, err := receivedCounts(ctx, relays)
	if err != nil {
		return err
	}
	start := time.Now()
	published, err := o.publish(ctx, relays)
	if err != nil {
		return err
	}
	took := time.Since(start)
	done := make(chan struct{})
	go func() { all.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(o.wait):
	}
	delivered := time.Since(start)
	after, err := receivedCounts(ctx, relays)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nrelay bench cluster: %d relays, %d channels (%d per relay, one SSE stream each), %d events each\n",
		len(relays), o.channels, o.channels/len(relays), o.perChannel)
	fmt.Fprintf(out, "  published: %d events in %.1f s (%.0f/s); all streams done after %.1f s\n",
		published, took.Seconds(), float64(published)/took.Seconds(), delivered.Seconds())
	totalLost, totalExtra := 0, 0
	for r, t := range relays {
		lost, extra, served := 0, 0, 0
		for i := r; i < o.channels; i += len(relays) {
			served++
			g := int(got[i].Load())
			lost += max(0, o.perChannel-g)
			extra += max(0, g-o.perChannel)
		}
		totalLost, totalExtra = totalLost+lost, totalExtra+extra
		n := after[r] - before[r]
		fmt.Fprintf(out, "  %s: received from Redis %d events (%.1f%% of published; its %d channels hold %.1f%%); its streams: %d lost, %d extra\n",
			t.name, n, 100*float64(n)/float64(published), served, 100*float64(served)/float64(o.channels), lost, extra)
	}
	fmt.Fprintf(out, "  in all: %d lost, %d extra of %d\n", totalLost, totalExtra, o.channels*o.perChannel)
	return nil
}

// publish sends perChannel events to every channel, in rounds over the
// channels, clusterPublishBatch per call, through the relays in turn.
func (o clusterOpts) publish(ctx context.Context, relays []*benchTarget) (int, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	defer client.CloseIdleConnections()
	tok := relays[0].token(auth.Identity{UserID: "bench", Publish: []string{"*"}})
	var batch bytes.Buffer
	published, calls, n := 0, 0, 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		batch.WriteByte(']')
		answer, err := post(ctx, client, relays[calls%len(relays)], tok, batch.Bytes())
		if err != nil {
			return err
		}
		var ids struct{ IDs []string }
		if err := json.Unmarshal(answer, &ids); err != nil || len(ids.IDs) != n {
			return fmt.Errorf("bench cluster: publish answer %.100s: %v", answer, err)
		}
		published += n
		calls++
		batch.Reset()
		n = 0
		return nil
	}
	for round := range o.perChannel {
		for i := range o.channels {
			if n == 0 {
				batch.WriteByte('[')
			} else {
				batch.WriteByte(',')
			}
			fmt.Fprintf(&batch, `{"channel":"project_%s_tickets","type":"bench","data":{"n":%d}}`, clusterChannel(i), round)
			if n++; n == clusterPublishBatch {
				if err := flush(); err != nil {
					return published, err
				}
			}
		}
	}
	return published, flush()
}

// receivedCounts scrapes each relay's relay_store_events_received_total.
func receivedCounts(ctx context.Context, relays []*benchTarget) ([]int64, error) {
	out := make([]int64, len(relays))
	for i, t := range relays {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url+"/metrics", nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("bench cluster: scrape %s: %w", t.name, err)
		}
		found := false
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "relay_store_events_received_total "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					break
				}
				out[i], found = int64(f), true
			}
		}
		resp.Body.Close()
		if !found {
			return nil, fmt.Errorf("bench cluster: %s/metrics has no relay_store_events_received_total", t.url)
		}
	}
	return out, nil
}

// benchCluster is a Redis Cluster of masters only that the bench started
// on loopback, with its files in a temporary directory.
type benchCluster struct {
	url   string
	dir   string
	addrs []string
	cmds  []*exec.Cmd
}

// printPubSubClients prints how many Pub/Sub connections each node holds
// (CLIENT LIST TYPE pubsub): the relays' subscriptions, one connection per
// hash slot in use per relay.
func (c *benchCluster) printPubSubClients(ctx context.Context, out io.Writer) {
	var counts []string
	for _, a := range c.addrs {
		cl := redis.NewClient(&redis.Options{Addr: a})
		list, err := cl.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
		_ = cl.Close()
		if err != nil {
			counts = append(counts, a+": "+err.Error())
			continue
		}
		counts = append(counts, fmt.Sprintf("%s: %d", a, strings.Count(list, "\n")))
	}
	fmt.Fprintf(out, "  Pub/Sub connections per node (all relays): %s\n", strings.Join(counts, ", "))
}

// startBenchCluster starts masters redis-server processes in cluster mode,
// splits the slots among them, introduces them, and waits for
// cluster_state:ok on each.
func startBenchCluster(ctx context.Context, masters int) (*benchCluster, error) {
	c, addrs, ports, err := prepareBenchCluster(ctx, masters)
	if err != nil {
		return nil, err
	}
	return c, c.join(ctx, addrs, ports)
}

// prepareBenchCluster finds the ports and makes the commands of
// startBenchCluster's servers.
func prepareBenchCluster(ctx context.Context, masters int) (*benchCluster, []string, []int, error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, nil, nil, errors.New("bench cluster: redis-server (7 or later) is not on PATH; or pass --redis-url of a running cluster")
	}
	dir, err := os.MkdirTemp("", "relay-bench-cluster-")
	if err != nil {
		return nil, nil, nil, err
	}
	c := &benchCluster{dir: dir}
	var addrs []string
	var ports []int
	for range 2 * masters {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.stop()
			return nil, nil, nil, err
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		defer l.Close() // held until every port is found: distinct ports
	}
	for i := range masters {
		port, bus := ports[2*i], ports[2*i+1]
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		cmd := exec.CommandContext(ctx, path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--daemonize", "no",
			"--save", "", "--appendonly", "no", "--dir", dir, "--dbfilename", fmt.Sprintf("dump-%d.rdb", port),
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)), "--maxclients", "20000")
		c.cmds = append(c.cmds, cmd)
	}
	return c, addrs, ports, nil
}

func (c *benchCluster) join(ctx context.Context, addrs []string, ports []int) error {
	for _, cmd := range c.cmds {
		if err := cmd.Start(); err != nil {
			c.stop()
			return fmt.Errorf("bench cluster: start redis-server: %w", err)
		}
	}
	per := 16384 / len(addrs)
	for i, a := range addrs {
		cl := redis.NewClient(&redis.Options{Addr: a})
		var err error
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if err = cl.Ping(ctx).Err(); err == nil || time.Now().After(deadline) {
				break
			}
		}
		end := (i+1)*per - 1
		if i == len(addrs)-1 {
			end = 16383
		}
		if err == nil {
			err = cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", i*per, end).Err()
		}
		if err == nil && i > 0 {
			err = cl.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", ports[0], ports[1]).Err()
		}
		_ = cl.Close()
		if err != nil {
			c.stop()
			return fmt.Errorf("bench cluster: join %s: %w", a, err)
		}
	}
	for _, a := range addrs {
		cl := redis.NewClient(&redis.Options{Addr: a})
		ok := false
		for deadline := time.Now().Add(20 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			info, _ := cl.ClusterInfo(ctx).Result()
			slots, _ := cl.ClusterSlots(ctx).Result()
			ok = strings.Contains(info, "cluster_state:ok") && len(slots) == len(addrs)
		}
		_ = cl.Close()
		if !ok {
			c.stop()
			return fmt.Errorf("bench cluster: %s did not report cluster_state:ok with %d masters within 20 s", a, len(addrs))
		}
	}
	c.addrs = addrs
	c.url = "redis://" + addrs[0] + "?cluster=true"
	for _, a := range addrs[1:] {
		c.url += "&addr=" + a
	}
	return nil
}

func (c *benchCluster) stop() {
	for _, cmd := range c.cmds {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	_ = os.RemoveAll(c.dir)
}
