package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relaydev/relay/store/redistest"
)

// The fault suite drives relay from the outside: the relay binary built
// once per test binary (without -race: it is the system under test, not the
// test), real redis-server processes of the suite's own, and clients that
// behave like browsers and backends. See fault_test.go for the scenarios.

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// relayBinary builds ./app into a temporary directory once per test binary
// and returns the binary's path. The directory is removed when the package's
// tests end (buildCleanup, from TestMain), so that every run of -count
// finds it.
func relayBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "relay-fault-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, "relay"), ".")
		// The test binary may run with -race; the binary under test must
		// not inherit flags meant for the test.
		cmd.Env = append(os.Environ(), "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build relay: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "relay")
}

// buildCleanup removes the built binary; TestMain calls it.
func buildCleanup() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// tailBuffer keeps the last bytes a process wrote and signals each line
// that names its address.
type tailBuffer struct {
	mu     sync.Mutex
	b      []byte
	listen chan string
}

const tailMax = 64 << 10

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if len(w.b) > tailMax {
		w.b = append(w.b[:0:0], w.b[len(w.b)-tailMax:]...)
	}
	for line := range strings.Lines(string(p)) {
		if _, rest, ok := strings.Cut(line, "listening on "); ok {
			url, _, _ := strings.Cut(rest, " ")
			select {
			case w.listen <- url:
			default:
			}
		}
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

// relayProc is one relay process that a scenario can kill, stop and start
// again on the same port, so clients find it where it was.
type relayProc struct {
	name string
	bin  string
	env  []string
	port int    // 0 until the first start picked one
	url  string // stable across restarts

	mu      sync.Mutex
	cmd     *exec.Cmd
	out     *tailBuffer
	exited  chan struct{}
	exitErr error
	logs    []string // tails of earlier runs, for a failure report
}

// startRelay starts a relay process with env and stops it when t ends.
func startRelay(t *testing.T, name string, env map[string]string) *relayProc {
	t.Helper()
	p := &relayProc{name: name, bin: relayBinary(t)}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.env = append(p.env, k+"="+env[k])
	}
	p.start(t)
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", p.name, p.output())
		}
	})
	return p
}

// start runs the process (on its old port after the first time) and waits
// until it says where it listens.
func (p *relayProc) start(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		t.Fatalf("%s: start while running", p.name)
	}
	cmd := exec.Command(p.bin)
	cmd.Env = append(append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, p.env...),
		"RELAY_ADDR=127.0.0.1:"+strconv.Itoa(p.port))
	out := &tailBuffer{listen: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	exited := make(chan struct{})
	go func() { // owned by p: ends when the process does, which kill ensures
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(exited)
	}()
	p.cmd, p.out, p.exited = cmd, out, exited
	select {
	case url := <-out.listen:
		if p.url != "" { // url and port are set once: clients read them while p restarts
			if url != p.url {
				t.Fatalf("%s: came back on %s, want %s", p.name, url, p.url)
			}
			break
		}
		p.url = url
		i := strings.LastIndexByte(url, ':')
		p.port, _ = strconv.Atoi(url[i+1:])
	case <-exited:
		t.Fatalf("%s exited before listening:\n%s", p.name, out.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not print its address within 15s:\n%s", p.name, out.String())
	}
}

// kill ends the process with SIGKILL, as a crash or an OOM kill would, and
// waits for it. It is idempotent.
func (p *relayProc) kill(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	p.reaped()
}

// term sends SIGTERM, as a deploy does, and waits up to within for the
// process to exit; it returns the exit error (nil: status 0) and how long
// the shutdown took.
func (p *relayProc) term(t *testing.T, within time.Duration) (time.Duration, error) {
	t.Helper()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		t.Fatalf("%s: term while stopped", p.name)
	}
	began := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", p.name, err)
	}
	select {
	case <-exited:
	case <-time.After(within):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		p.reaped()
		return time.Since(began), fmt.Errorf("%s did not exit within %s of SIGTERM", p.name, within)
	}
	took := time.Since(began)
	p.mu.Lock()
	err := p.exitErr
	p.mu.Unlock()
	p.reaped()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = fmt.Errorf("%s exited with %v after SIGTERM", p.name, ee)
	}
	return took, err
}

func (p *relayProc) reaped() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.logs = append(p.logs, p.out.String())
	p.cmd = nil
}

func (p *relayProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	all := strings.Join(p.logs, "\n--- restarted ---\n")
	if p.cmd != nil {
		all += "\n--- running ---\n" + p.out.String()
	}
	if len(all) > 8<<10 {
		all = "…" + all[len(all)-8<<10:]
	}
	return all
}

// cluster is one scenario's relays and, for the Redis store, its own
// redis-server (never the shared one).
type cluster struct {
	relays      []*relayProc
	redis       *redistest.Server // nil: memory store
	persistence redistest.Persistence
}

// newCluster starts n relays, on a Redis of t's own with persistence p when
// redis is true, else each on its own memory store. extra env overrides
// the suite's defaults.
func newCluster(t *testing.T, n int, redis bool, p redistest.Persistence, extra map[string]string) *cluster {
	t.Helper()
	c := &cluster{persistence: p}
	env := map[string]string{
		"RELAY_JWT_SECRET":       testSecret,
		"RELAY_SHUTDOWN_TIMEOUT": "3s",
		"RELAY_LOG_LEVEL":        "warn",
		"RELAY_DEV":              "false",
	}
	if redis {
		c.redis = redistest.NewServerWith(t, p)
		env["REDIS_URL"] = c.redis.URL
	}
	for k, v := range extra {
		env[k] = v
	}
	for i := range n {
		c.relays = append(c.relays, startRelay(t, fmt.Sprintf("relay-%c", 'A'+i), env))
	}
	return c
}

// urls lists every relay's address, running or not: clients try them all.
func (c *cluster) urls() []string {
	out := make([]string, len(c.relays))
	for i, r := range c.relays {
		out[i] = r.url
	}
	return out
}
