package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/relaydev/relay/auth"
)

// benchOpts are the knobs of `relay bench`.
type benchOpts struct {
	stores         []string
	transports     []string
	redisURL       string
	url, secret    string
	bare           bool
	subscribers    int
	rate           int
	duration       time.Duration
	publishers     int
	pubSubscribers int
	pubDuration    time.Duration
	pubBatch       int
	catchup        int
	connections    int
	idleCPU        time.Duration
	out            io.Writer
}

// parseBenchFlags reads the bench's flags; every figure it measures has one.
func parseBenchFlags(args []string, getenv func(string) string, stderr io.Writer) (*benchOpts, error) {
	fs := flag.NewFlagSet("relay bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &benchOpts{}
	stores := fs.String("stores", "memory,redis", "stores to measure, each in its own relay process")
	transports := fs.String("transport", "both", "sse, ws or both: the transport every scenario's subscribers use")
	fs.StringVar(&o.redisURL, "redis-url", envOr(getenv, "REDIS_URL", "redis://127.0.0.1:6379/0"), "Redis for the redis store (env REDIS_URL)")
	fs.StringVar(&o.url, "url", "", "measure an already running relay instead (needs --jwt-secret; skips memory, CPU and the bare broadcaster)")
	fs.StringVar(&o.secret, "jwt-secret", getenv("RELAY_JWT_SECRET"), "the running relay's secret, with --url")
	fs.BoolVar(&o.bare, "bare", true, "also measure the bare broadcaster (`relay bench bare`: no auth, no log, no JSON) and print relay's ratio to it")
	fs.IntVar(&o.subscribers, "subscribers", 1000, "fan-out: subscribers on one channel")
	fs.IntVar(&o.rate, "rate", 200, "fan-out: events per second published to them")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "fan-out: how long to publish")
	fs.IntVar(&o.publishers, "publishers", 8, "many publishers: concurrent publishers, as fast as they can, to one channel")
	fs.IntVar(&o.pubSubscribers, "publish-subscribers", 10, "many publishers: subscribers that read that channel (and never reconnect)")
	fs.DurationVar(&o.pubDuration, "publish-duration", 3*time.Second, "many publishers: how long they publish")
	fs.IntVar(&o.pubBatch, "publish-batch", 1, "many publishers: events per publish (a JSON array), to drive one channel harder than one request per event can; above 1 needs --bare=false")
	fs.IntVar(&o.catchup, "catchup", 1000, "catch-up: missed events a resuming client reads (0: skip)")
	fs.IntVar(&o.connections, "connections", 0, "scale: idle streams on one channel, spread over loopback source addresses (0: skip; heavy)")
	fs.DurationVar(&o.idleCPU, "idle-cpu", 30*time.Second, "scale: how long the server's idle CPU is measured (a multiple of relay's heartbeat, 15 s, counts every stream's heartbeats equally often)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("bench: unexpected argument %q (flags only; `relay bench bare` runs the bare broadcaster alone)", fs.Arg(0))
	}
	o.stores, o.transports = splitList(*stores), splitList(*transports)
	if slices.Equal(o.transports, []string{"both"}) {
		o.transports = []string{transportSSE, transportWS}
	}
	for _, tr := range o.transports {
		if tr != transportSSE && tr != transportWS {
			return nil, fmt.Errorf("bench: unknown transport %q: use sse, ws or both", tr)
		}
	}
	for _, st := range o.stores {
		if st != "memory" && st != "redis" {
			return nil, fmt.Errorf("bench: unknown store %q: use memory, redis or both (memory,redis)", st)
		}
	}
	switch {
	case len(o.transports) == 0 || (len(o.stores) == 0 && o.url == ""):
		return nil, errors.New("bench: --transport and --stores need at least one value each")
	case o.url != "" && o.secret == "":
		return nil, errors.New("bench: --url needs --jwt-secret (or RELAY_JWT_SECRET), the secret that relay verifies with")
	case o.subscribers < 1 || o.rate < 1 || o.duration <= 0:
		return nil, errors.New("bench: --subscribers, --rate and --duration must be positive")
	case o.publishers < 1 || o.pubSubscribers < 1 || o.pubDuration <= 0:
		return nil, errors.New("bench: --publishers, --publish-subscribers and --publish-duration must be positive")
	case o.pubBatch < 1 || o.pubBatch > 1000:
		return nil, errors.New("bench: --publish-batch is 1 to 1000 (relay's largest batch)")
	case o.pubBatch > 1 && o.bare:
		return nil, errors.New("bench: --publish-batch above 1 needs --bare=false (the bare broadcaster sends a body as one message)")
	case o.catchup < 0 || o.catchup > 1000:
		return nil, errors.New("bench: --catchup is 0 to 1000 (one publish batch)")
	case o.connections < 0 || o.idleCPU <= 0:
		return nil, errors.New("bench: --connections must be 0 or more and --idle-cpu positive")
	}
	return o, nil
}

// benchCmd measures relay the way the README reports it: it starts relay
// (one child process per store), and first the bare broadcaster, and drives
// each alone over real HTTP from this process, so bench and server share
// the machine as they would on one host.
func benchCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "bare" {
		return bareCmd(ctx, args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "cluster" {
		return clusterCmd(ctx, args[1:], stdout, stderr)
	}
	o, err := parseBenchFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	o.out = stdout
	limit, err := raiseFileLimit()
	if err != nil {
		return err
	}
	if need := uint64(o.connections + o.subscribers + 64); o.connections > 0 && need > limit { // limit 0: not Unix
		return fmt.Errorf("bench: --connections %d needs about %d open files in the bench and in the server; this machine allows %d (ulimit -Hn)",
			o.connections, need, limit)
	}
	if o.url != "" {
		t := &benchTarget{url: strings.TrimSuffix(o.url, "/"), secret: o.secret, name: o.url}
		for _, tr := range o.transports {
			if _, err := o.run(ctx, t, tr, figures{}); err != nil {
				return err
			}
		}
		return nil
	}
	// One fresh process per transport and store (see idleMemory: a process
	// keeps the pages an earlier scenario freed).
	for _, tr := range o.transports {
		var ceiling figures
		if o.bare {
			t, err := startBareTarget(ctx)
			if err != nil {
				return err
			}
			ceiling, err = o.run(ctx, t, tr, figures{})
			t.stop()
			if err != nil {
				return err
			}
		}
		for _, st := range o.stores {
			t, err := startBenchTarget(ctx, st, o.redisURL)
			if err != nil {
				return err
			}
			_, err = o.run(ctx, t, tr, ceiling)
			t.stop()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// figures are what a ratio to the bare broadcaster is printed for.
type figures struct {
	perConn, scalePerConn  int64
	rate, accepted, pubCPU float64
	scaleToAll             time.Duration // one event to every idle stream
}

// ratio is " (0.97x bare)", or "" with no ceiling figure.
func ratio(v, ceiling float64) string {
	if ceiling <= 0 || v <= 0 {
		return ""
	}
	return fmt.Sprintf(" (%.2fx bare)", v/ceiling)
}

// run measures one target on transport tr and prints its figures, with
// their ratios to c (the bare broadcaster's, or none). Idle memory comes
// first, while the process has served nothing else.
func (o *benchOpts) run(ctx context.Context, t *benchTarget, tr string, c figures) (figures, error) {
	var f figures
	fmt.Fprintf(o.out, "\nrelay bench: %s, %s (%s)\n", t.name, transportName(tr), t.url)

	idle, err := o.idleMemory(ctx, t, tr, o.subscribers)
	if err != nil {
		return f, err
	}
	f.perConn = idle.rss
	if idle.rss > 0 {
		fmt.Fprintf(o.out, "  memory per idle connection (%d streams):   %.1f KiB%s%s\n", o.subscribers,
			float64(idle.rss)/1024, ratio(float64(idle.rss), float64(c.perConn)), idle.goNote())
	}

	d, err := o.deliveries(ctx, t, tr)
	if err != nil {
		return f, err
	}
	f.rate = d.rate
	note := fmt.Sprintf("offered %.0f/s; %d lost", d.offered, d.lost)
	if r := ratio(d.rate, c.rate); r != "" {
		note = strings.Trim(r, " ()") + "; " + note
	}
	fmt.Fprintf(o.out, "  deliveries/s to %d subscribers:           %.0f (%s)\n", o.subscribers, d.rate, note)
	fmt.Fprintf(o.out, "  publish-to-receive latency p50, p99:        %s, %s\n", ms(d.p50), ms(d.p99))

	p, err := o.manyPublishers(ctx, t, tr)
	if err != nil {
		return f, err
	}
	f.accepted, f.pubCPU = p.accepted, p.spent.server
	cpu := ""
	if p.spent.server > 0 {
		cpu = fmt.Sprintf("; server CPU %.0f µs per event%s", p.spent.server, ratio(p.spent.server, c.pubCPU))
	}
	fmt.Fprintf(o.out, "  %d publishers, one channel, %d subscribers: %.0f accepted/s%s, %.1f%% delivered (%d of %d subscribers dropped)%s\n",
		o.publishers, o.pubSubscribers, p.accepted, ratio(p.accepted, c.accepted), 100*p.delivered, p.dropped, o.pubSubscribers, cpu)
	if cost := p.spent.String(); cost != "" {
		fmt.Fprintf(o.out, "    CPU per event: %s\n", cost)
	}

	if o.catchup > 0 && !t.bare {
		med, worst, err := o.catchupTime(ctx, t, tr)
		if err != nil {
			return f, err
		}
		fmt.Fprintf(o.out, "  catch-up over %d missed events (median, max of %d): %s, %s\n", o.catchup, catchupRuns, ms(med), ms(worst))
	}
	if o.connections > 0 {
		s, err := o.scale(ctx, t, tr)
		if err != nil {
			return f, err
		}
		f.scalePerConn, f.scaleToAll = s.perConn.rss, s.toAll
		o.printScale(s, c)
	}
	return f, nil
}

// goNote is ": Go heap +x, stacks +y KiB" when relay's /metrics told them.
func (r idleResult) goNote() string {
	if r.heap == 0 && r.stack == 0 {
		return ""
	}
	return fmt.Sprintf(" (Go heap in use %+.1f, stacks %+.1f KiB)", float64(r.heap)/1024, float64(r.stack)/1024)
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

// catchupRuns is how many resumes the catch-up figure is the median of.
const catchupRuns = 20

// catchupTime publishes o.catchup events, then times catchupRuns resumes
// from before the first until the last arrives, connection set-up included.
func (o *benchOpts) catchupTime(ctx context.Context, t *benchTarget, tr string) (median, worst time.Duration, err error) {
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	pub := t.token(auth.Identity{UserID: "bench", Publish: []string{"*"}})
	var batch bytes.Buffer
	batch.WriteByte('[')
	for i := range o.catchup {
		if i > 0 {
			batch.WriteByte(',')
		}
		fmt.Fprintf(&batch, `{"channel":"project_2_tickets","type":"bench","data":{"n":%d,"pad":"%s"}}`, i, strings.Repeat("x", 100))
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
	url := fmt.Sprintf("%s%s?last_event_id=%s-%d&token=%s", t.url, streamPath(tr, "2"), epoch, first-1, benchSubToken(t))
	want := []byte(`"id":"` + ids.IDs[len(ids.IDs)-1] + `"`)
	n := newBenchNet(1, streamsPerAddr)
	defer n.close()
	var times []time.Duration
	for range catchupRuns {
		start := time.Now()
		if err := readUntil(ctx, n, tr, url, want); err != nil {
			return 0, 0, err
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[len(times)/2], times[len(times)-1], nil
}

// readUntil opens a stream and reads until an event whose data holds want.
func readUntil(ctx context.Context, n *benchNet, tr, url string, want []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := n.open(ctx, 0, tr, url)
	if err != nil {
		return err
	}
	defer s.close()
	for {
		data, _, err := s.next()
		if err != nil {
			return fmt.Errorf("bench: stream ended before %s: %w", want, err)
		}
		if bytes.Contains(data, want) {
			return nil
		}
	}
}

// benchSubToken reads every channel the bench uses (projects 1 to 4).
func benchSubToken(t *benchTarget) string {
	return t.token(auth.Identity{UserID: "bench", Projects: []string{"1", "2", "3", "4"}})
}
