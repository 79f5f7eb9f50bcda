package redistest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestClusterDataAndMoveSlot(t *testing.T) {
	c := Start(t, Options{})
	ctx := context.Background()

	if got := len(c.Addrs()); got != 3 {
		t.Fatalf("len(Addrs()) = %d, want 3", got)
	}
	masters := c.Masters()
	if len(masters) != 3 {
		t.Fatalf("len(Masters()) = %d, want 3", len(masters))
	}
	for i, m := range masters {
		if m != c.Nodes[i] {
			t.Errorf("Masters()[%d] = %s, want Nodes[%d] = %s (masters first, by slot)", i, m.Addr, i, c.Nodes[i].Addr)
		}
		if m.ID == "" {
			t.Errorf("master %s has no ID", m.Addr)
		}
	}
	owned := make(map[*Node]int)
	for _, n := range c.slotMap(t) {
		if n == nil {
			t.Fatal("a slot has no owner")
		}
		owned[n]++
	}
	for _, m := range masters {
		if owned[m] == 0 {
			t.Errorf("master %s owns no slots", m.Addr)
		}
	}

	// Keys written through the cluster client are on the node that owns
	// their slot, and only there.
	rdb := c.Client(t)
	seen := make(map[*Node]bool)
	for i := range 50 {
		key := fmt.Sprintf("entity:%d", i)
		if err := rdb.HSet(ctx, key, "f", i).Err(); err != nil {
			t.Fatalf("HSET %s: %v", key, err)
		}
		owner := c.SlotOwner(t, key)
		seen[owner] = true
		got, err := owner.Client().HGet(ctx, key, "f").Int()
		if err != nil || got != i {
			t.Fatalf("HGET %s on owner %s = %d, %v; want %d", key, owner.Addr, got, err, i)
		}
		for _, m := range masters {
			if m != owner {
				if _, err := m.Client().HGet(ctx, key, "f").Result(); !isMoved(err) {
					t.Errorf("HGET %s on non-owner %s: err = %v, want MOVED", key, m.Addr, err)
				}
			}
		}
	}
	if len(seen) != 3 {
		t.Errorf("50 keys landed on %d masters, want 3", len(seen))
	}

	// Move a slot holding 5 keys in two steps and watch ASK, then MOVED.
	keys := []string{"{moved}a", "{moved}b", "{moved}c", "{moved}d", "{moved}e"}
	for _, k := range keys {
		if err := rdb.HSet(ctx, k, "v", k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	slot := c.KeySlot(t, keys[0])
	from := c.SlotOwner(t, keys[0])
	to := masters[0]
	if to == from {
		to = masters[1]
	}

	m := c.BeginMove(t, slot, to)
	if m.From != from || m.To != to {
		t.Fatalf("BeginMove: From, To = %s, %s; want %s, %s", m.From.Addr, m.To.Addr, from.Addr, to.Addr)
	}
	if n := m.MigrateKeys(t, 2); n != 2 {
		t.Fatalf("MigrateKeys(2) = %d", n)
	}
	asked := 0
	for _, k := range keys {
		_, err := from.Client().HGet(ctx, k, "v").Result()
		switch {
		case err == nil: // not moved yet
		case isAsk(err):
			asked++
		default:
			t.Errorf("HGET %s on source during the move: %v", k, err)
		}
		// The cluster client follows ASK transparently.
		if got, err := rdb.HGet(ctx, k, "v").Result(); err != nil || got != k {
			t.Errorf("cluster HGET %s during the move = %q, %v", k, got, err)
		}
	}
	if asked != 2 {
		t.Errorf("source answered ASK for %d keys, want 2", asked)
	}
	m.Finish(t)

	if owner := c.SlotOwner(t, keys[0]); owner != to {
		t.Errorf("after the move SlotOwner = %s, want %s", owner.Addr, to.Addr)
	}
	for _, k := range keys {
		if got, err := to.Client().HGet(ctx, k, "v").Result(); err != nil || got != k {
			t.Errorf("HGET %s on new owner = %q, %v", k, got, err)
		}
		if _, err := from.Client().HGet(ctx, k, "v").Result(); !isMoved(err) {
			t.Errorf("HGET %s on old owner: err = %v, want MOVED", k, err)
		}
		if got, err := rdb.HGet(ctx, k, "v").Result(); err != nil || got != k {
			t.Errorf("cluster HGET %s after the move = %q, %v", k, got, err)
		}
	}
	if n, err := from.Client().ClusterCountKeysInSlot(ctx, slot).Result(); err != nil || n != 0 {
		t.Errorf("old owner still has %d keys in slot %d (%v)", n, slot, err)
	}

	// And back in one call.
	c.MoveSlot(t, slot, from)
	if owner := c.SlotOwner(t, keys[0]); owner != from {
		t.Errorf("after MoveSlot back SlotOwner = %s, want %s", owner.Addr, from.Addr)
	}
	for _, k := range keys {
		if got, err := rdb.HGet(ctx, k, "v").Result(); err != nil || got != k {
			t.Errorf("cluster HGET %s after moving back = %q, %v", k, got, err)
		}
	}
	c.MoveSlot(t, slot, from) // a no-op
}

// TestKillRestartReplica also runs with a password, to cover redis-cli,
// masterauth and the package's own clients authenticating.
func TestKillRestartReplica(t *testing.T) {
	c := Start(t, Options{Masters: 3, Replicas: 1, Args: []string{"--requirepass", "s3cret"}})
	ctx := context.Background()

	if len(c.Nodes) != 6 || len(c.Masters()) != 3 {
		t.Fatalf("%d nodes, %d masters; want 6, 3", len(c.Nodes), len(c.Masters()))
	}
	replicas := c.Replicas()
	if len(replicas) != 3 {
		t.Fatalf("len(Replicas()) = %d, want 3", len(replicas))
	}
	for i, r := range replicas {
		if r != c.Nodes[3+i] {
			t.Errorf("Replicas()[%d] = %s, want Nodes[%d] (replicas after masters)", i, r.Addr, 3+i)
		}
		if m := r.Master(t); m != c.Nodes[i] {
			t.Errorf("replica %s follows %s, want Nodes[%d] %s", r.Addr, addrOf(m), i, c.Nodes[i].Addr)
		}
	}
	noAuth := redis.NewClient(&redis.Options{Addr: c.Nodes[0].Addr, MaxRetries: -1})
	defer noAuth.Close()
	if err := noAuth.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without password: %v, want NOAUTH", err)
	}

	r := replicas[0]
	master := r.Master(t)
	r.Kill(t)
	if r.Running() {
		t.Fatal("Running() after Kill")
	}
	r.Restart(t)
	if !r.Running() {
		t.Fatal("not Running() after Restart")
	}
	c.WaitOK(t)
	WaitClusterOK(t, c.Addrs()...)

	// The restarted replica is back in its place and replicating.
	if m := r.Master(t); m != master {
		t.Fatalf("restarted replica follows %s, want %s", addrOf(m), master.Addr)
	}
	key := keyOwnedBy(t, c, master)
	if err := c.Client(t).Set(ctx, key, "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := master.Client().Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 on %s = %d, %v; want 1 replica acknowledging", master.Addr, n, err)
	}
}

func TestStartWithoutRedisFails(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	ft := &fatalTB{TB: t}
	var wg sync.WaitGroup
	wg.Go(func() { Start(ft, Options{}) })
	wg.Wait()
	if !strings.Contains(ft.msg, "make test") {
		t.Errorf("Start without redis-server on PATH: Fatal message %q does not mention `make test`", ft.msg)
	}
}

// fatalTB records Fatalf and ends the goroutine like testing.T does, without
// failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func keyOwnedBy(t *testing.T, c *Cluster, n *Node) string {
	t.Helper()
	for i := range 1000 {
		key := fmt.Sprintf("k%d", i)
		if c.SlotOwner(t, key) == n {
			return key
		}
	}
	t.Fatalf("no key of 1000 is on %s", n.Addr)
	return ""
}

func addrOf(n *Node) string {
	if n == nil {
		return "<nil>"
	}
	return n.Addr
}

func isMoved(err error) bool { _, ok := redis.IsMovedError(err); return ok }
func isAsk(err error) bool   { _, ok := redis.IsAskError(err); return ok }

func TestParseClusterNodes(t *testing.T) {
	text := "07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,host-a slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected\n" +
		"67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922 [5000->-e7d1]\n" +
		"e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 12 0-5460\n"
	got := parseClusterNodes(text)
	want := []clusterNodesEntry{
		{"07c37dfeb235213a872192d90877d0cd55635b91", "127.0.0.1:30004", "slave", "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca", "connected", -1},
		{"67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1", "127.0.0.1:30002", "master", "-", "connected", 5461},
		{"e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca", "127.0.0.1:30001", "myself,master", "-", "connected", 0},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseClusterNodes =\n%v\nwant\n%v", got, want)
	}
	if got[0].master() || !got[2].master() {
		t.Errorf("master(): %v, %v", got[0].master(), got[2].master())
	}
}
