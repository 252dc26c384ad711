package redistest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Timings of NewCluster's nodes.
const (
	// clusterNodeTimeout is how long a node may be unreachable before the
	// others mark it failed: short, so that a killed node shows in a second.
	clusterNodeTimeout = 1000 * time.Millisecond
	// clusterReady bounds the wait for every node to agree on the slots and
	// report cluster_state:ok.
	clusterReady = 20 * time.Second
)

// Cluster is a Redis Cluster of masters only (no replicas), each a
// redis-server --cluster-enabled yes on free ports of 127.0.0.1, all of one
// test's own. The 16384 slots are split evenly among them.
type Cluster struct {
	// URL reaches the cluster in the form relay's REDIS_URL takes:
	// redis://127.0.0.1:P1?addr=127.0.0.1:P2&….
	URL   string
	Nodes []*ClusterNode
}

// ClusterNode is one master of a Cluster.
type ClusterNode struct {
	Addr       string // host:port
	First, End int    // the slots it serves at the start: [First, End)
	port, bus  int
	dir        string
	cmd        *exec.Cmd // nil while stopped
	out        *strings.Builder
}

// NewCluster starts masters redis-server processes in cluster mode for t
// alone, assigns each a range of slots, introduces them (CLUSTER MEET), and
// waits until every node reports cluster_state:ok and knows every slot's
// node. Data is not persisted (a node restarted with Start is empty); each
// node's cluster configuration file lives in t.TempDir(), so a restarted
// node rejoins with its identity and slots. Everything is stopped when t
// ends. It needs redis-server 7 or later on PATH, whatever
// RELAY_TEST_REDIS_URL says, and never touches the shared Redis.
func NewCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 1 {
		t.Fatalf("redistest: NewCluster(%d): want at least one master", masters)
	}
	dir := t.TempDir()
	ports := freePorts(t, 2*masters)
	c := &Cluster{}
	per := 16384 / masters
	for i := range masters {
		n := &ClusterNode{Addr: addrOf(ports[2*i]), port: ports[2*i], bus: ports[2*i+1], dir: dir,
			First: i * per, End: (i + 1) * per}
		if i == masters-1 {
			n.End = 16384
		}
		c.Nodes = append(c.Nodes, n)
		n.start(t)
		t.Cleanup(func() { n.stop(t) })
	}
	ctx := context.Background()
	for i, n := range c.Nodes {
		cl := n.client()
		err := cl.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", n.First, n.End-1).Err()
		if err == nil && i > 0 {
			err = cl.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", c.Nodes[0].port, c.Nodes[0].bus).Err()
		}
		_ = cl.Close()
		if err != nil {
			t.Fatalf("redistest: join cluster node %s: %v", n.Addr, err)
		}
	}
	c.WaitOK(t)
	q := make([]string, 0, masters-1)
	for _, n := range c.Nodes[1:] {
		q = append(q, "addr="+n.Addr)
	}
	c.URL = "redis://" + c.Nodes[0].Addr
	if len(q) > 0 {
		c.URL += "?" + strings.Join(q, "&")
	} else {
		c.URL += "?cluster=true"
	}
	return c
}

// Stop kills node i with SIGKILL, as a crash would. It is idempotent.
func (c *Cluster) Stop(t testing.TB, i int) { t.Helper(); c.Nodes[i].stop(t) }

// Start starts node i again, empty, on its port with its cluster
// configuration, and waits until the cluster is whole again (WaitOK).
func (c *Cluster) Start(t testing.TB, i int) {
	t.Helper()
	c.Nodes[i].start(t)
	c.WaitOK(t)
}

// WaitOK waits until every running node reports cluster_state:ok and sees
// every node as a master serving its slots.
func (c *Cluster) WaitOK(t testing.TB) {
	t.Helper()
	var why string
	for deadline := time.Now().Add(clusterReady); ; time.Sleep(20 * time.Millisecond) {
		if why = c.notOK(); why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: cluster not ready after %v: %s", clusterReady, why)
		}
	}
}

func (c *Cluster) notOK() string {
	ctx := context.Background()
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue
		}
		cl := n.client()
		info, err := cl.ClusterInfo(ctx).Result()
		var slots []redis.ClusterSlot
		if err == nil {
			slots, err = cl.ClusterSlots(ctx).Result()
		}
		_ = cl.Close()
		if err != nil {
			return fmt.Sprintf("%s: %v", n.Addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return n.Addr + " does not report cluster_state:ok"
		}
		if len(slots) != len(c.Nodes) {
			return fmt.Sprintf("%s knows %d slot ranges, want %d", n.Addr, len(slots), len(c.Nodes))
		}
		for _, s := range slots {
			want := c.NodeOf(s.Start)
			if len(s.Nodes) == 0 || s.Nodes[0].Addr != want.Addr || s.End != want.End-1 {
				return fmt.Sprintf("%s says slots %d-%d are on %v, want %s", n.Addr, s.Start, s.End, s.Nodes, want.Addr)
			}
		}
	}
	return ""
}

// NodeOf returns the node that serves slot (as NewCluster assigned it).
func (c *Cluster) NodeOf(slot int) *ClusterNode {
	for _, n := range c.Nodes {
		if slot >= n.First && slot < n.End {
			return n
		}
	}
	return nil
}

// Client returns a client of node i alone (not a cluster client), closed
// when t ends: for PUBSUB SHARDNUMSUB and the like.
func (c *Cluster) Client(t testing.TB, i int) *redis.Client {
	t.Helper()
	cl := c.Nodes[i].client()
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func (n *ClusterNode) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
}

func (n *ClusterNode) start(t testing.TB) {
	t.Helper()
	if n.cmd != nil {
		return
	}
	path, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redistest: redis-server is not on PATH: run the README's test command (task test, which installs it)")
	}
	args := []string{"--port", strconv.Itoa(n.port), "--bind", "127.0.0.1", "--daemonize", "no",
		"--save", "", "--appendonly", "no", "--dir", n.dir,
		"--dbfilename", fmt.Sprintf("dump-%d.rdb", n.port),
		"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(n.bus), "--cluster-announce-ip", "127.0.0.1",
		// The other nodes keep serving their slots while one is down, so a
		// test sees a node fail alone.
		"--cluster-require-full-coverage", "no",
		"--cluster-config-file", filepath.Join(n.dir, fmt.Sprintf("nodes-%d.conf", n.port)),
		"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout.Milliseconds()))}
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = dieWithParent()
	n.out = &strings.Builder{}
	cmd.Stdout, cmd.Stderr = n.out, n.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("redistest: start %s: %v", path, err)
	}
	n.cmd = cmd
	for deadline := time.Now().Add(5 * time.Second); !answers(n.Addr); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			n.stop(t)
			t.Fatalf("redistest: redis-server %s did not answer PING within 5s", strings.Join(args, " "))
		}
	}
}

func (n *ClusterNode) stop(t testing.TB) {
	t.Helper()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
	if t.Failed() {
		t.Logf("redistest: output of cluster node %s:\n%s", n.Addr, n.out.String())
	}
}

// MoveSlot migrates slot, with its keys, from the node serving it to node
// to, as a resharding does (SETSLOT IMPORTING and MIGRATING, MIGRATE of
// each key, then SETSLOT NODE on every node), and waits until every node
// names node to as the slot's owner. Afterwards NodeOf, WaitOK and Start no
// longer describe the cluster: use it last in a test.
func (c *Cluster) MoveSlot(t testing.TB, slot, to int) {
	t.Helper()
	ctx := context.Background()
	from := -1
	for i, n := range c.Nodes {
		if n == c.NodeOf(slot) {
			from = i
		}
	}
	if from < 0 || from == to {
		t.Fatalf("redistest: MoveSlot(%d, %d): slot is on node %d", slot, to, from)
	}
	src, dst := c.Client(t, from), c.Client(t, to)
	srcID, err1 := src.Do(ctx, "CLUSTER", "MYID").Text()
	dstID, err2 := dst.Do(ctx, "CLUSTER", "MYID").Text()
	if err := errors.Join(err1, err2,
		dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err(),
		src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err()); err != nil {
		t.Fatalf("redistest: MoveSlot: %v", err)
	}
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, slot, 100).Result()
		if err != nil {
			t.Fatalf("redistest: MoveSlot: CLUSTER GETKEYSINSLOT: %v", err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", "127.0.0.1", c.Nodes[to].port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := src.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("redistest: MoveSlot: MIGRATE: %v", err)
		}
	}
	for _, i := range append([]int{to, from}, c.others(from, to)...) {
		if err := c.Client(t, i).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err(); err != nil {
			t.Fatalf("redistest: MoveSlot: SETSLOT NODE on %s: %v", c.Nodes[i].Addr, err)
		}
	}
	for deadline := time.Now().Add(clusterReady); ; time.Sleep(20 * time.Millisecond) {
		moved := true
		for i := range c.Nodes {
			slots, err := c.Client(t, i).ClusterSlots(ctx).Result()
			owner := ""
			for _, s := range slots {
				if err == nil && slot >= int(s.Start) && slot <= int(s.End) && len(s.Nodes) > 0 {
					owner = s.Nodes[0].Addr
				}
			}
			moved = moved && owner == c.Nodes[to].Addr
		}
		if moved {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: MoveSlot: not every node names %s as slot %d's owner after %v", c.Nodes[to].Addr, slot, clusterReady)
		}
	}
}

// others are the node indexes other than a and b.
func (c *Cluster) others(a, b int) []int {
	var out []int
	for i := range c.Nodes {
		if i != a && i != b {
			out = append(out, i)
		}
	}
	return out
}
