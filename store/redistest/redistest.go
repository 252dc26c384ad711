// Package redistest gives tests a Redis: the one named by RELAY_TEST_REDIS_URL,
// else the one answering on 127.0.0.1:6379, else a throwaway redis-server it
// starts once per test binary. A missing Redis is started, never skipped.
package redistest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvURL names the environment variable that points tests at a Redis.
const EnvURL = "RELAY_TEST_REDIS_URL"

// defaultAddr is where a developer's or CI's Redis usually listens.
const defaultAddr = "127.0.0.1:6379"

var (
	findOnce sync.Once
	foundURL string
	findErr  error
)

// URL returns the URL of a Redis for tests, starting one if none answers. The
// started redis-server (no persistence) dies with the test binary.
func URL(t testing.TB) string {
	t.Helper()
	findOnce.Do(func() { foundURL, findErr = find() })
	if findErr != nil {
		t.Fatal(findErr)
	}
	return foundURL
}

func find() (string, error) {
	if u := os.Getenv(EnvURL); u != "" {
		return u, nil
	}
	if answers(defaultAddr) {
		return "redis://" + defaultAddr + "/0", nil
	}
	return start()
}

// answers reports whether a Redis that needs no password answers PING at addr.
func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

// errPortTaken: the port found free was another redis-server's by the
// time the one launched on it tried to bind it.
var errPortTaken = errors.New("port taken")

// serverPID returns the process id of the Redis that answers at addr (from
// INFO server), and whether one answered.
func serverPID(addr string) (int, bool) {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return 0, false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("INFO server\r\n")); err != nil {
		return 0, false
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	n, aerr := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(head, "$")))
	if err != nil || aerr != nil || !strings.HasPrefix(head, "$") {
		return 0, false
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			return pid, err == nil
		}
	}
	return 0, false
}

// start runs redis-server on a free port as a child of this process, for
// every test of the binary.
func start() (string, error) {
	var lastErr error
	for range 3 { // a free port can be taken between finding and binding it
		port, err := freePort()
		if err != nil {
			return "", fmt.Errorf("redistest: find a free port: %w", err)
		}
		if _, lastErr = launch(port, "", NoPersistence); lastErr == nil {
			return urlOf(port), nil
		}
	}
	return "", lastErr
}

func urlOf(port int) string { return "redis://127.0.0.1:" + strconv.Itoa(port) + "/0" }

// Persistence is what a test's own redis-server keeps across Stop and Start.
type Persistence int

const (
	// NoPersistence: Start after Stop is an empty Redis, as after a crash of
	// a Redis that keeps nothing on disk.
	NoPersistence Persistence = iota
	// AOF: appendonly with appendfsync always; Start after Stop loads every
	// write that was answered.
	AOF
	// RDB: snapshots only when Save is called; Start after Stop goes back to
	// the last Save (Redis's default persistence, or a lagging replica
	// promoted).
	RDB
)

// launch starts redis-server on port, keeping its files in dir with
// persistence p, and waits until it answers.
func launch(port int, dir string, p Persistence) (*exec.Cmd, error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("no Redis answers at %s and redis-server is not on PATH: run the README's test command (task test, which installs redis-server), or set %s=redis://host:port/0", defaultAddr, EnvURL)
	}
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no"}
	if dir != "" {
		args = append(args, "--dir", dir)
	}
	switch p {
	case AOF:
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	default:
		args = append(args, "--appendonly", "no")
	}
	if p == NoPersistence && dir != "" { // a Save's snapshot must not come back
		if err := os.Remove(filepath.Join(dir, "dump.rdb")); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("redistest: %w", err)
		}
	}
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redistest: start %s: %w", path, err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		// The server that answers must be this one: when another took the
		// port meanwhile (another test's, in this process or another), this
		// one fails to bind and exits, and a test would pause, stop and
		// write to a Redis not its own without knowing it.
		switch pid, ok := serverPID(addr); {
		case !ok:
			continue
		case pid == cmd.Process.Pid:
			return cmd, nil
		default:
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("redistest: port %d is another redis-server's (pid %d): %w", port, pid, errPortTaken)
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, fmt.Errorf("redistest: %s --port %d did not answer PING within 5s", path, port)
}

// Server is a redis-server of one test's own, for tests of Redis going away
// and coming back: empty, from its append-only file, or from an older
// snapshot (see Persistence). Never the shared Redis.
type Server struct {
	URL  string
	Addr string // host:port
	port int
	dir  string
	p    Persistence
	cmd  *exec.Cmd // nil while stopped
}

// NewServer starts a redis-server for t alone that keeps nothing: Start after
// Stop is an empty Redis. It is stopped when t ends. It needs redis-server on
// PATH, whatever RELAY_TEST_REDIS_URL says.
func NewServer(t testing.TB) *Server { return NewServerWith(t, NoPersistence) }

// NewServerWith is NewServer keeping data as p says, in a directory of t's.
func NewServerWith(t testing.TB, p Persistence) *Server {
	t.Helper()
	dir := t.TempDir()
	for range 3 { // a free port can be taken between finding and binding it
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		cmd, err := launch(port, dir, p)
		if errors.Is(err, errPortTaken) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{URL: urlOf(port), Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port, dir: dir, p: p, cmd: cmd}
		t.Cleanup(func() { s.Stop(t) })
		return s
	}
	t.Fatalf("redistest: three free ports in a row were taken before redis-server bound them")
	return nil
}

// Stop kills the server at once with SIGKILL, as a crash would (a paused
// server too). It is idempotent.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Start starts the server again on the same port and directory: empty, or
// with what its persistence kept.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if s.cmd != nil {
		return
	}
	cmd, err := launch(s.port, s.dir, s.p)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
}

// Pause stops the server with SIGSTOP: connections stay open and nothing is
// answered, as in a stall, until Resume.
func (s *Server) Pause(t testing.TB) { t.Helper(); s.signal(t, syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume(t testing.TB) { t.Helper(); s.signal(t, syscall.SIGCONT) }

func (s *Server) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if s.cmd == nil {
		t.Fatalf("redistest: signal %v: server on %s is stopped", sig, s.Addr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("redistest: signal %v: %v", sig, err)
	}
}

// Save takes a snapshot now (SAVE); with RDB persistence, Start after Stop
// goes back to it.
func (s *Server) Save(t testing.TB) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	if err := c.Save(context.Background()).Err(); err != nil {
		t.Fatalf("redistest: SAVE on %s: %v", s.Addr, err)
	}
}

// PID is the server process's id, for tests that signal it themselves.
func (s *Server) PID() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Prefix returns a key prefix no other test uses, "relaytest:<random>:", and
// deletes every key under it when t ends.
func Prefix(t testing.TB) string {
	t.Helper()
	u := URL(t)
	p := "relaytest:" + random() + ":"
	t.Cleanup(func() {
		if err := deleteKeys(u, p); err != nil {
			t.Errorf("redistest: delete keys %s*: %v", p, err)
		}
	})
	return p
}

func deleteKeys(u, prefix string) error {
	opt, err := redis.ParseURL(u)
	if err != nil {
		return err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := c.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

// NewClient returns a client of the test Redis whose connections, Pub/Sub
// ones included, all carry a new unique name (CLIENT SETNAME), so KillClients
// can drop them without touching other tests' connections. It is closed when
// t ends. The name is the client's Options().ClientName.
func NewClient(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatalf("redistest: %s: %v", EnvURL, err)
	}
	opt.ClientName = "relaytest-" + random()
	opt.MaxRetries = -1 // as relay's own clients: store.NewRedis refuses one that retries
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// KillClients closes, on the server side, the connections named name whose
// type is typ ("pubsub", "normal", or "" for any), as a network failure would,
// and returns how many it closed.
func KillClients(t testing.TB, name, typ string) int {
	t.Helper()
	opt, err := redis.ParseURL(URL(t))
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx := context.Background()
	args := []any{"client", "list"}
	if typ != "" {
		args = append(args, "type", typ)
	}
	list, err := c.Do(ctx, args...).Text()
	if err != nil {
		t.Fatalf("redistest: CLIENT LIST: %v", err)
	}
	n := 0
	for line := range strings.Lines(list) {
		fields := map[string]string{}
		for f := range strings.FieldsSeq(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		if fields["name"] != name {
			continue
		}
		if err := c.Do(ctx, "client", "kill", "id", fields["id"]).Err(); err != nil {
			t.Fatalf("redistest: CLIENT KILL ID %s: %v", fields["id"], err)
		}
		n++
	}
	return n
}

func random() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
