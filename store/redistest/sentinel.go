package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name the Sentinels of NewSentinel monitor.
const MasterName = "mymaster"

// Timings of NewSentinel's Sentinels: small, so that SENTINEL FAILOVER
// completes in about a second, and a dead master is noticed in one.
const (
	downAfter       = 1000 * time.Millisecond
	failoverTimeout = 2000 * time.Millisecond
	// sentinelReady bounds the wait for the Sentinels to see the replica (and
	// each other): a Sentinel learns of a replica from the master's INFO,
	// which it asks for every 10 s, first at once.
	sentinelReady = 20 * time.Second
)

// Sentinel is a master, one replica (--replicaof) and one or more
// redis-server --sentinel processes monitoring them as MasterName, all on free
// ports of 127.0.0.1 and all of one test's own.
type Sentinel struct {
	// URL reaches the master through the Sentinels, in the form relay's
	// REDIS_URL takes: redis://127.0.0.1:S1/0?master_name=mymaster&addr=127.0.0.1:S2….
	URL string
	// Master and Replica are the addresses ("127.0.0.1:port") of the master
	// and the replica at the start; Failover swaps their roles.
	Master, Replica string
	// Sentinels are the Sentinels' addresses.
	Sentinels []string
}

// NewSentinel starts a master, a replica and n Sentinels (1 or 3) for t alone,
// waits until every Sentinel sees the replica in sync (and, with 3, the other
// Sentinels), and stops them all when t ends. Configuration files live in
// t.TempDir(). It needs redis-server on PATH, whatever RELAY_TEST_REDIS_URL
// says, and never touches the shared Redis.
func NewSentinel(t testing.TB, n int) *Sentinel {
	t.Helper()
	if n != 1 && n != 3 {
		t.Fatalf("redistest: NewSentinel(%d): want 1 or 3 Sentinels", n)
	}
	dir := t.TempDir()
	ports := freePorts(t, 2+n)
	s := &Sentinel{Master: addrOf(ports[0]), Replica: addrOf(ports[1])}
	startNode(t, dir, "master", ports[0])
	startNode(t, dir, "replica", ports[1], "--replicaof", "127.0.0.1", strconv.Itoa(ports[0]))
	quorum := n/2 + 1
	for i, port := range ports[2:] {
		conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"+
			"sentinel monitor %s 127.0.0.1 %d %d\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s %d\n"+
			"sentinel parallel-syncs %s 1\n",
			port, dir, MasterName, ports[0], quorum,
			MasterName, downAfter.Milliseconds(), MasterName, failoverTimeout.Milliseconds(), MasterName)
		path := filepath.Join(dir, fmt.Sprintf("sentinel%d.conf", i))
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		// A Sentinel rewrites its configuration file as it learns: it must be
		// a writable file of its own.
		startProc(t, port, path, "--sentinel")
		s.Sentinels = append(s.Sentinels, addrOf(port))
	}
	q := []string{"master_name=" + MasterName}
	for _, a := range s.Sentinels[1:] {
		q = append(q, "addr="+a)
	}
	s.URL = "redis://" + s.Sentinels[0] + "/0?" + strings.Join(q, "&")
	s.waitReady(t)
	return s
}

// startNode starts a data node with a (writable, initially empty) config
// file, so that Sentinel's CONFIG REWRITE after a role change succeeds.
func startNode(t testing.TB, dir, name string, port int, args ...string) {
	t.Helper()
	path := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	startProc(t, port, append([]string{path, "--save", "", "--appendonly", "no", "--dir", dir,
		"--dbfilename", name + ".rdb", "--repl-diskless-sync-delay", "0"}, args...)...)
}

// startProc runs redis-server conf --port port --bind 127.0.0.1 args…, waits
// until it answers PING and kills it when t ends.
func startProc(t testing.TB, port int, args ...string) {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redistest: redis-server is not on PATH: run the README's test command (task test, which installs it)")
	}
	args = append(args[:1:1], append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--daemonize", "no"}, args[1:]...)...)
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = dieWithParent()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: start %s: %v", path, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("redistest: output of redis-server %s:\n%s", strings.Join(args, " "), out.String())
		}
	})
	addr := addrOf(port)
	for deadline := time.Now().Add(5 * time.Second); !answers(addr); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("redistest: redis-server %s did not answer PING within 5s", strings.Join(args, " "))
		}
	}
}

// waitReady polls every Sentinel until it sees the replica, in sync, and the
// other Sentinels: only then can SENTINEL FAILOVER pick the replica.
func (s *Sentinel) waitReady(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	for _, addr := range s.Sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: addr})
		var why string
		for deadline := time.Now().Add(sentinelReady); ; time.Sleep(20 * time.Millisecond) {
			if why = s.notReady(ctx, c); why == "" {
				break
			}
			if time.Now().After(deadline) {
				_ = c.Close()
				t.Fatalf("redistest: Sentinel %s not ready after %v: %s", addr, sentinelReady, why)
			}
		}
		_ = c.Close()
	}
}

// notReady says what Sentinel c does not see yet, or "" when it is ready.
func (s *Sentinel) notReady(ctx context.Context, c *redis.SentinelClient) string {
	replicas, err := c.Replicas(ctx, MasterName).Result()
	if err != nil {
		return err.Error()
	}
	ok := false
	for _, r := range replicas {
		if net.JoinHostPort(r["ip"], r["port"]) == s.Replica && r["flags"] == "slave" && r["master-link-status"] == "ok" {
			ok = true
		}
	}
	if !ok {
		return fmt.Sprintf("replica %s not seen in sync: %v", s.Replica, replicas)
	}
	others, err := c.Sentinels(ctx, MasterName).Result()
	if err != nil {
		return err.Error()
	}
	if len(others) != len(s.Sentinels)-1 {
		return fmt.Sprintf("sees %d other Sentinels, want %d", len(others), len(s.Sentinels)-1)
	}
	return ""
}

// Failover sends SENTINEL FAILOVER to the first Sentinel and returns when it
// accepted it (the promotion itself follows in about a second: see
// WaitForMaster). Master and Replica are swapped.
func (s *Sentinel) Failover(t testing.TB) {
	t.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0]})
	defer c.Close()
	if err := c.Failover(context.Background(), MasterName).Err(); err != nil {
		t.Fatalf("redistest: SENTINEL FAILOVER %s: %v", MasterName, err)
	}
	s.Master, s.Replica = s.Replica, s.Master
}

// MasterAddr returns the master's address according to the i-th Sentinel.
func (s *Sentinel) MasterAddr(t testing.TB, i int) string {
	t.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[i]})
	defer c.Close()
	a, err := c.GetMasterAddrByName(context.Background(), MasterName).Result()
	if err != nil {
		t.Fatalf("redistest: SENTINEL GET-MASTER-ADDR-BY-NAME on %s: %v", s.Sentinels[i], err)
	}
	return net.JoinHostPort(a[0], a[1])
}

// WaitForMaster polls until every Sentinel names s.Master as the master (after
// Failover: the promoted replica), and fails t after timeout.
func (s *Sentinel) WaitForMaster(t testing.TB, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(5 * time.Millisecond) {
		done := true
		for i := range s.Sentinels {
			if s.MasterAddr(t, i) != s.Master {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: after %v the Sentinels do not all name %s master", timeout, s.Master)
		}
	}
}

// Client returns a plain client of the data node at addr (the master or the
// replica), closed when t ends.
func (s *Sentinel) Client(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func addrOf(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePorts returns n distinct free ports, holding each until all are found.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("redistest: find a free port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
