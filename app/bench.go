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
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/relaydev/relay/auth"
)

// benchOpts are the knobs of `relay bench`.
type benchOpts struct {
	stores      []string
	redisURL    string
	url, secret string
	subscribers int
	rate        int
	duration    time.Duration
	publishers  int
	pubDuration time.Duration
	catchup     int
	out         io.Writer
}

// benchCmd measures relay the way the README reports it: it starts relay
// (one child process per store) and drives it over real HTTP from this
// process, so bench and server share the machine as they would on one host.
func benchCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("relay bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := benchOpts{out: stdout}
	stores := fs.String("stores", "memory,redis", "stores to measure, each in its own relay process")
	fs.StringVar(&o.redisURL, "redis-url", envOr(getenv, "REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis for the redis store (env REDIS_URL)")
	fs.StringVar(&o.url, "url", "", "measure an already running relay instead (needs --jwt-secret; skips memory per connection)")
	fs.StringVar(&o.secret, "jwt-secret", getenv("RELAY_JWT_SECRET"), "the running relay's secret, with --url")
	fs.IntVar(&o.subscribers, "subscribers", 1000, "SSE subscribers on one channel")
	fs.IntVar(&o.rate, "rate", 150, "events per second published to them")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to publish to the subscribers")
	fs.IntVar(&o.publishers, "publishers", 8, "concurrent publishers for the publish rate")
	fs.DurationVar(&o.pubDuration, "publish-duration", 5*time.Second, "how long the publishers run")
	fs.IntVar(&o.catchup, "catchup", 1000, "missed events a resuming client catches up on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.url != "" {
		if o.secret == "" {
			return errors.New("bench: --url needs --jwt-secret (or RELAY_JWT_SECRET), the secret that relay verifies with")
		}
		return o.run(ctx, &benchTarget{url: strings.TrimSuffix(o.url, "/"), secret: o.secret, name: o.url})
	}
	for _, st := range splitList(*stores) {
		if st != "memory" && st != "redis" {
			return fmt.Errorf("bench: unknown store %q: use memory, redis or both", st)
		}
		t, err := startBenchTarget(ctx, st, o.redisURL)
		if err != nil {
			return err
		}
		err = o.run(ctx, t)
		t.stop()
		if err != nil {
			return err
		}
	}
	return nil
}

// benchTarget is the relay under measurement.
type benchTarget struct {
	name, url, secret string
	cmd               *exec.Cmd
	waited            chan struct{}
}

// startBenchTarget starts this binary as `relay serve` on a free port.
func startBenchTarget(ctx context.Context, store, redisURL string) (*benchTarget, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: find relay binary: %w", err)
	}
	t := &benchTarget{name: store, secret: randomSecret(), waited: make(chan struct{})}
	t.cmd = exec.CommandContext(ctx, exe, "serve")
	t.cmd.Env = append(os.Environ(), "RELAY_ADDR=127.0.0.1:0", "RELAY_JWT_SECRET="+t.secret,
		"RELAY_LOG_LEVEL=warn", "RELAY_HISTORY_MAX_AGE=15m", "REDIS_URL=",
		// bench opens every stream as one user from one address, as fast as it can.
		"RELAY_MAX_CONNS_PER_USER=1000000", "RELAY_MAX_CONNS_PER_IP=1000000",
		"RELAY_CONNECT_RATE=1000000", "RELAY_CONNECT_BURST=1000000")
	if store == "redis" {
		t.cmd.Env = append(t.cmd.Env, "REDIS_URL="+redisURL, "RELAY_REDIS_PREFIX=relaybench:"+randomSecret()[:8]+":")
	}
	t.cmd.Stderr = os.Stderr
	out, err := t.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := t.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start relay: %w", err)
	}
	go func() { _ = t.cmd.Wait(); close(t.waited) }()
	line, err := bufio.NewReader(out).ReadString('\n')
	_, url, ok := strings.Cut(line, "listening on ")
	if err != nil || !ok {
		t.stop()
		return nil, fmt.Errorf("bench: relay (%s store) did not start: %q %v", store, line, err)
	}
	t.url, _, _ = strings.Cut(strings.TrimSpace(url), " ")
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return t, nil
}

func (t *benchTarget) stop() {
	if t.cmd == nil {
		return
	}
	_ = t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.waited:
	case <-time.After(10 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.waited
	}
}

// rss is the target's resident memory in bytes, or 0 when unknown.
func (t *benchTarget) rss() int64 {
	if t.cmd == nil {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", t.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(rest, &kb)
			return kb << 10
		}
	}
	return 0
}

func (t *benchTarget) token(id auth.Identity) string {
	tok, err := auth.Mint([]byte(t.secret), id, time.Hour)
	if err != nil {
		panic(err) // only on a bad secret, which bench itself made
	}
	return tok
}

// run measures one target and prints its figures.
func (o *benchOpts) run(ctx context.Context, t *benchTarget) error {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.publishers * 2, DisableCompression: true}}
	defer client.CloseIdleConnections()
	fmt.Fprintf(o.out, "\nrelay bench: %s store (%s)\n", t.name, t.url)

	d, err := o.deliveries(ctx, t)
	if err != nil {
		return err
	}
	if d.perConn > 0 {
		fmt.Fprintf(o.out, "  memory per idle SSE connection:             %.1f KiB\n", float64(d.perConn)/1024)
	}
	fmt.Fprintf(o.out, "  deliveries/s to %d SSE subscribers:        %.0f (offered %.0f/s; %d lost)\n", o.subscribers, d.rate, d.offered, d.lost)
	fmt.Fprintf(o.out, "  publish-to-receive latency p50, p99:        %s, %s\n", ms(d.p50), ms(d.p99))
	pubRate, err := o.publishRate(ctx, client, t)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.out, "  publishes/s, %d concurrent publishers:      %.0f\n", o.publishers, pubRate)

	med, worst, err := o.catchupTime(ctx, client, t)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.out, "  catch-up over %d missed events (median, max): %s, %s\n", o.catchup, ms(med), ms(worst))

	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// post publishes body and returns the answer.
func post(ctx context.Context, client *http.Client, t *benchTarget, tok string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("publish: %s: %s", resp.Status, answer)
	}
	return answer, err
}

// publishRate runs o.publishers loops of single-event publishes.
func (o *benchOpts) publishRate(ctx context.Context, client *http.Client, t *benchTarget) (float64, error) {
	tok := t.token(auth.Identity{UserID: "bench", Publish: []string{"*"}})
	ctx, cancel := context.WithTimeout(ctx, o.pubDuration)
	defer cancel()
	var wg sync.WaitGroup
	counts := make([]int, o.publishers)
	errs := make([]error, o.publishers)
	start := time.Now()
	for i := range o.publishers {
		wg.Go(func() {
			body := fmt.Appendf(nil, `{"channel":"bench_publish_%d","type":"bench","data":{"n":1}}`, i)
			for ctx.Err() == nil {
				if _, err := post(ctx, client, t, tok, body); err != nil {
					if ctx.Err() == nil {
						errs[i] = err
					}
					return
				}
				counts[i]++
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := 0
	for _, n := range counts {
		total += n
	}
	return float64(total) / elapsed.Seconds(), errors.Join(errs...)
}

// catchupTime publishes o.catchup events, then times 20 resumes from before
// the first until the last arrives.
func (o *benchOpts) catchupTime(ctx context.Context, client *http.Client, t *benchTarget) (median, worst time.Duration, err error) {
	pub := t.token(auth.Identity{UserID: "bench", Publish: []string{"*"}})
	var batch bytes.Buffer
	batch.WriteByte('[')
	for i := range o.catchup {
		if i > 0 {
			batch.WriteByte(',')
		}
		fmt.Fprintf(&batch, `{"channel":"bench_catchup","type":"bench","data":{"n":%d,"pad":"%s"}}`, i, strings.Repeat("x", 100))
	}
	batch.WriteByte(']')
	answer, err := post(ctx, client, t, pub, batch.Bytes())
	if err != nil {
		return 0, 0, err
	}
	var ids struct{ IDs []string }
	if err := json.Unmarshal(answer, &ids); err != nil || len(ids.IDs) != o.catchup {
		return 0, 0, fmt.Errorf("bench: publish answer %.100s: %v", answer, err)
	}
	epoch, seq, _ := strings.Cut(ids.IDs[0], "-")
	var first int
	fmt.Sscan(seq, &first)
	cursor := fmt.Sprintf("%s-%d", epoch, first-1)
	last := []byte(ids.IDs[len(ids.IDs)-1])
	sub := t.token(auth.Identity{UserID: "bench", Subscribe: []string{"*"}})
	var times []time.Duration
	for range 20 {
		start := time.Now()
		if err := readUntil(ctx, client, t.url+"/events?channel=bench_catchup&last_event_id="+cursor+"&token="+sub, last); err != nil {
			return 0, 0, err
		}
		times = append(times, time.Since(start))
	}
	sortDurations(times)
	return times[len(times)/2], times[len(times)-1], nil
}

// readUntil opens an SSE stream and reads until the id line want.
func readUntil(ctx context.Context, client *http.Client, url string, want []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: stream: %s", resp.Status)
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("bench: stream ended before id %s: %w", want, err)
		}
		if id, ok := bytes.CutPrefix(line, []byte("id: ")); ok && bytes.Equal(bytes.TrimSpace(id), want) {
			return nil
		}
	}
}
