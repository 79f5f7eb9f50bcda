package redistest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClientName is the name (CLIENT SETNAME) of every connection this package
// opens, so that connection-counting tests can tell the harness's
// connections from the ones under test.
const ClientName = "redistest"

// NumSlots is the number of hash slots in a Redis Cluster.
const NumSlots = 16384

const (
	defaultMasters     = 3
	defaultNodeTimeout = 2 * time.Second
	createTimeout      = 60 * time.Second // redis-cli --cluster create
	convergeTimeout    = 30 * time.Second // WaitOK, WaitClusterOK and slot moves
	stopTimeout        = 5 * time.Second  // SIGTERM to SIGKILL at cleanup
	opTimeout          = 10 * time.Second // one administrative command
)

// Options configures Start.
type Options struct {
	// Masters is the number of masters; zero means 3. redis-cli refuses to
	// create a cluster with fewer than 3 masters, so fewer is a test failure.
	Masters int

	// Replicas is the number of replicas per master; zero means none.
	Replicas int

	// NodeTimeout is cluster-node-timeout: how long a node must be
	// unreachable before it is flagged as failing and, if it is a master
	// with a replica, failed over. Zero means 2s, short enough for failover
	// tests to finish in seconds; the Redis default is 15s.
	NodeTimeout time.Duration

	// Args are extra redis-server arguments for every node, appended after
	// the package's own, so they override them (the last occurrence of a
	// setting wins), e.g. "--requirepass", "x".
	//
	// "--requirepass P" is recognised: every client this package creates
	// (and redis-cli) authenticates with P, WaitClusterOK uses it for these
	// nodes, and unless Args also sets "--masterauth", replicas are given
	// "--masterauth P" so that replication works.
	Args []string
}

// Cluster is a running Redis Cluster started by Start. Its methods that take
// no testing.TB (Masters, Replicas) report failures to the TB given to Start,
// so they must be called from the goroutine running that test (or one of its
// subtests while the parent is blocked in t.Run).
type Cluster struct {
	// Nodes holds every node, masters first (ordered by the lowest slot each
	// owned when the cluster was created), then replicas in the order of
	// their masters. Roles can change later (failover, MoveSlot of every
	// slot); Masters and Replicas report the current ones.
	Nodes []*Node

	tb       testing.TB
	password string
}

// Start starts a cluster of opts.Masters masters with opts.Replicas replicas
// each and returns once WaitOK would return: every node reports
// cluster_state:ok, all nodes agree on the master of each of the 16384
// slots, no node flags another as failing, and every replica's link to its
// master is up. It fails the test if that does not happen within 30s, or if
// redis-server or redis-cli is not on PATH.
//
// Start registers a tb.Cleanup that closes the clients of every Node, then
// stops every redis-server it started (SIGTERM, SIGKILL after 5s, Wait),
// and, if the test failed, logs the tail of each node's log.
func Start(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Fatalf("redistest: %s is not on PATH (%v); run `make test`, which installs it", bin, err)
		}
	}
	masters := opts.Masters
	if masters == 0 {
		masters = defaultMasters
	}
	if masters < 3 {
		tb.Fatalf("redistest: Options.Masters = %d; redis-cli --cluster create needs at least 3", masters)
	}
	if opts.Replicas < 0 {
		tb.Fatalf("redistest: Options.Replicas = %d; must not be negative", opts.Replicas)
	}
	nodeTimeout := opts.NodeTimeout
	if nodeTimeout == 0 {
		nodeTimeout = defaultNodeTimeout
	}
	password, hasMasterauth := authFromArgs(opts.Args)

	args := []string{
		"--bind", "127.0.0.1",
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10),
		"--save", "", "--appendonly", "no",
		// Replicas sync straight from the master's memory without the
		// default 5s wait for other replicas to join the transfer.
		"--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
		// A master waits up to shutdown-timeout for lagging replicas on
		// SIGTERM; nothing is persisted, so there is nothing to wait for.
		"--shutdown-timeout", "0",
		// DEBUG SLEEP and friends, from loopback only, to simulate slow nodes.
		"--enable-debug-command", "local",
	}
	if password != "" && !hasMasterauth {
		args = append(args, "--masterauth", password)
	}
	args = append(args, opts.Args...)

	c := &Cluster{tb: tb, password: password}
	total := masters * (1 + opts.Replicas)
	for range total {
		c.Nodes = append(c.Nodes, &Node{c: c, Dir: tb.TempDir(), extraArgs: args})
	}
	// Registered after every TempDir, so it runs (LIFO) before they are
	// removed: the processes must be gone first, and the logs still there.
	tb.Cleanup(c.cleanup)

	begin := time.Now()
	for _, n := range c.Nodes {
		if err := n.launch(tb, true); err != nil {
			tb.Fatalf("redistest: %v", err)
		}
	}
	for _, n := range c.Nodes {
		n.startWithRetries(tb)
	}
	ready := time.Since(begin)

	createBegin := time.Now()
	c.create(tb, opts.Replicas)
	created := time.Since(createBegin)

	convergeBegin := time.Now()
	c.WaitOK(tb)
	converged := time.Since(convergeBegin)

	c.identify(tb, masters)
	registerPassword(c.Addrs(), password)
	tb.Logf("redistest: cluster of %d masters and %d replicas ready in %v (processes %v, redis-cli --cluster create %v, convergence %v)",
		masters, total-masters, time.Since(begin).Round(time.Millisecond),
		ready.Round(time.Millisecond), created.Round(time.Millisecond), converged.Round(time.Millisecond))
	return c
}

// authFromArgs returns the value of the last "--requirepass" in args and
// whether args set "--masterauth".
func authFromArgs(args []string) (password string, hasMasterauth bool) {
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--requirepass":
			if i+1 < len(args) {
				password = args[i+1]
				i++
			}
		case "--masterauth":
			hasMasterauth = true
		}
	}
	return password, hasMasterauth
}

var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// create runs redis-cli --cluster create over every node.
func (c *Cluster) create(tb testing.TB, replicas int) {
	tb.Helper()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	if replicas > 0 {
		args = append(args, "--cluster-replicas", strconv.Itoa(replicas))
	}
	args = append(args, "--cluster-yes")

	ctx, cancel := context.WithTimeout(context.Background(), createTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "redis-cli", args...)
	cmd.WaitDelay = time.Second
	if c.password != "" {
		// Through the environment rather than -a: no warning on stderr and
		// no password on the process list.
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+c.password)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := startProcess(cmd); err != nil {
		tb.Fatalf("redistest: start redis-cli: %v", err)
	}
	tb.Logf("redistest: started redis-cli pid %d: redis-cli %s", cmd.Process.Pid, strings.Join(args, " "))
	if err := cmd.Wait(); err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, ansiEscape.ReplaceAllString(out.String(), ""))
	}
}

// identify records each node's ID and orders Nodes: masters by lowest slot,
// then replicas by master.
func (c *Cluster) identify(tb testing.TB, masters int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	text, err := c.Nodes[0].client.ClusterNodes(ctx).Result()
	if err != nil {
		tb.Fatalf("redistest: CLUSTER NODES on %s: %v", c.Nodes[0].Addr, err)
	}
	entries := parseClusterNodes(text)
	byAddr := make(map[string]clusterNodesEntry, len(entries))
	for _, e := range entries {
		byAddr[e.addr] = e
	}
	firstSlot := make(map[string]int) // master ID -> lowest slot
	for _, n := range c.Nodes {
		e, ok := byAddr[n.Addr]
		if !ok {
			tb.Fatalf("redistest: %s is missing from CLUSTER NODES of %s:\n%s", n.Addr, c.Nodes[0].Addr, text)
		}
		n.ID = e.id
		if e.master() && e.firstSlot >= 0 {
			firstSlot[e.id] = e.firstSlot
		}
	}
	if len(firstSlot) != masters {
		tb.Fatalf("redistest: want %d masters owning slots, CLUSTER NODES of %s shows %d:\n%s", masters, c.Nodes[0].Addr, len(firstSlot), text)
	}
	rank := func(n *Node) (int, int) { // (slot of the master, 0 for the master itself or 1+port for a replica)
		e := byAddr[n.Addr]
		if s, ok := firstSlot[e.id]; ok {
			return s, 0
		}
		return firstSlot[e.masterID], 1 + n.Port
	}
	slices.SortStableFunc(c.Nodes, func(a, b *Node) int {
		as, ar := rank(a)
		bs, br := rank(b)
		if ar == 0 && br != 0 {
			return -1
		}
		if ar != 0 && br == 0 {
			return 1
		}
		if as != bs {
			return as - bs
		}
		return ar - br
	})
}

func (c *Cluster) cleanup() {
	unregisterPassword(c.Addrs())
	for _, n := range c.Nodes {
		if n.client != nil {
			n.client.Close()
		}
	}

	// SIGTERM everything first so the nodes shut down in parallel.
	type stopping struct {
		n *Node
		p *process
	}
	var stops []stopping
	for _, n := range c.Nodes {
		n.mu.Lock()
		p := n.p
		killed := p != nil && p.killed
		n.mu.Unlock()
		switch {
		case p == nil:
		case p.exited():
			if !killed {
				c.tb.Logf("redistest: redis-server pid %d on %s exited on its own before cleanup: %v", p.cmd.Process.Pid, n.Addr, p.err)
			}
		default:
			if err := p.cmd.Process.Signal(sigterm); err != nil {
				c.tb.Logf("redistest: SIGTERM pid %d: %v", p.cmd.Process.Pid, err)
			}
			stops = append(stops, stopping{n, p})
		}
	}
	deadline := time.NewTimer(stopTimeout)
	defer deadline.Stop()
	expired := false
	for _, s := range stops {
		if !expired {
			select {
			case <-s.p.done:
				continue
			case <-deadline.C:
				expired = true // the bound is shared: kill the rest at once
			}
		}
		if !s.p.exited() {
			c.tb.Logf("redistest: redis-server pid %d on %s still running %v after SIGTERM; sending SIGKILL", s.p.cmd.Process.Pid, s.n.Addr, stopTimeout)
			s.p.cmd.Process.Kill()
			<-s.p.done
		}
	}

	if c.tb.Failed() {
		for _, n := range c.Nodes {
			c.tb.Logf("redistest: last %d lines of %s (%s):\n%s", logTailLines, n.LogPath(), n.Addr, tail(n.LogPath(), logTailLines))
		}
	}
}

// Password returns the password the nodes require ("" for none), taken from
// "--requirepass" in Options.Args. Clients of the code under test need it.
func (c *Cluster) Password() string { return c.password }

// Addrs returns every node's address ("127.0.0.1:port"), in the order of
// Nodes: masters at creation first. It includes nodes that are killed.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

func (c *Cluster) runningAddrs() []string {
	var addrs []string
	for _, n := range c.Nodes {
		if n.Running() {
			addrs = append(addrs, n.Addr)
		}
	}
	return addrs
}

func (c *Cluster) node(addr string) *Node {
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// Client returns a go-redis cluster client seeded with every node's address
// and closed when tb's test ends. It is meant for seeding and checking data
// in tests, not as the client under test.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:      c.Addrs(),
		Password:   c.password,
		ClientName: ClientName,
	})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// Masters returns the nodes that own slots now, ordered by the lowest slot
// each owns, as reported by CLUSTER SLOTS of the first running node in Nodes
// that answers. After a master is killed it is still listed until the cluster
// fails it over; call WaitOK first for a settled answer. It fails the test
// given to Start if no running node answers.
func (c *Cluster) Masters() []*Node {
	c.tb.Helper()
	owners := c.slotMap(c.tb)
	var masters []*Node
	for _, n := range owners {
		if n != nil && !slices.Contains(masters, n) {
			masters = append(masters, n)
		}
	}
	return masters
}

// Replicas returns the running nodes that are not in Masters, in the order of
// Nodes.
func (c *Cluster) Replicas() []*Node {
	c.tb.Helper()
	masters := c.Masters()
	var replicas []*Node
	for _, n := range c.Nodes {
		if n.Running() && !slices.Contains(masters, n) {
			replicas = append(replicas, n)
		}
	}
	return replicas
}

// askAny runs ask on the running nodes in order until one succeeds, and
// fails the test, naming what, if none does.
func (c *Cluster) askAny(tb testing.TB, what string, ask func(ctx context.Context, n *Node) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var errs []string
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		err := ask(ctx, n)
		if err == nil {
			return
		}
		errs = append(errs, fmt.Sprintf("%s: %v", n.Addr, err))
	}
	tb.Fatalf("redistest: no running node answered %s: %s", what, strings.Join(errs, "; "))
}

// slotMap returns the owner of every slot (nil if unassigned) as seen by the
// first running node that answers CLUSTER SLOTS.
func (c *Cluster) slotMap(tb testing.TB) *[NumSlots]*Node {
	tb.Helper()
	var owners [NumSlots]*Node
	c.askAny(tb, "CLUSTER SLOTS", func(ctx context.Context, n *Node) error {
		slots, err := n.client.ClusterSlots(ctx).Result()
		if err != nil {
			return err
		}
		for _, s := range slots {
			if len(s.Nodes) == 0 {
				continue
			}
			owner := c.node(s.Nodes[0].Addr)
			if owner == nil {
				tb.Fatalf("redistest: %s reports slots %d-%d on %s, which is not a node of this cluster", n.Addr, s.Start, s.End, s.Nodes[0].Addr)
			}
			for i := s.Start; i <= s.End && i < NumSlots; i++ {
				owners[i] = owner
			}
		}
		return nil
	})
	return &owners
}

// KeySlot returns the hash slot of key, from CLUSTER KEYSLOT.
func (c *Cluster) KeySlot(tb testing.TB, key string) int {
	tb.Helper()
	var slot int64
	c.askAny(tb, "CLUSTER KEYSLOT", func(ctx context.Context, n *Node) (err error) {
		slot, err = n.client.ClusterKeySlot(ctx, key).Result()
		return err
	})
	return int(slot)
}

// SlotOwner returns the master that owns key's slot (CLUSTER KEYSLOT, then
// the slot map of the first running node that answers).
func (c *Cluster) SlotOwner(tb testing.TB, key string) *Node {
	tb.Helper()
	slot := c.KeySlot(tb, key)
	owner := c.slotMap(tb)[slot]
	if owner == nil {
		tb.Fatalf("redistest: slot %d of key %q has no owner", slot, key)
	}
	return owner
}

// WaitOK waits, for at most 30s, until the running nodes form a healthy
// cluster (see WaitClusterOK) and fails the test otherwise. Killed nodes are
// left out, so after killing a master WaitOK returns only once the cluster
// has failed it over.
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	addrs := c.runningAddrs()
	if len(addrs) == 0 {
		tb.Fatalf("redistest: WaitOK: no node is running")
	}
	waitOK(tb, addrs, c.password)
}

// registry maps the address of every node of a running Cluster to its
// password, so that WaitClusterOK can be given bare addresses.
var registry struct {
	sync.Mutex
	password map[string]string
}

func registerPassword(addrs []string, password string) {
	registry.Lock()
	defer registry.Unlock()
	if registry.password == nil {
		registry.password = make(map[string]string)
	}
	for _, a := range addrs {
		registry.password[a] = password
	}
}

func unregisterPassword(addrs []string) {
	registry.Lock()
	defer registry.Unlock()
	for _, a := range addrs {
		delete(registry.password, a)
	}
}

// WaitClusterOK waits, for at most 30s, until the nodes at addrs form a
// healthy cluster, and fails the test otherwise. Healthy means, all at once:
//   - every node in addrs answers and reports cluster_state:ok;
//   - every node's CLUSTER SLOTS assigns all 16384 slots, all nodes name the
//     same master for each slot, and each of those masters answers PING;
//   - every node knows every other node in addrs, flags none of them as
//     failing (fail or fail?), in handshake or disconnected, and sees each
//     one's role (master, or replica of which master) as that node sees
//     itself;
//   - every replica in addrs has master_link_status:up.
//
// addrs should be the live nodes: a killed node in addrs never answers.
// Nodes of a Cluster started by Start are authenticated with its password;
// any other address is assumed to need none.
func WaitClusterOK(tb testing.TB, addrs ...string) {
	tb.Helper()
	if len(addrs) == 0 {
		tb.Fatalf("redistest: WaitClusterOK: no addresses")
	}
	registry.Lock()
	password := registry.password[addrs[0]]
	registry.Unlock()
	waitOK(tb, addrs, password)
}

func waitOK(tb testing.TB, addrs []string, password string) {
	tb.Helper()
	k := &checker{password: password, clients: make(map[string]*redis.Client)}
	defer k.close()
	deadline := time.Now().Add(convergeTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		problem := k.check(ctx, addrs)
		cancel()
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: cluster %v not healthy after %v: %s", addrs, convergeTimeout, problem)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// checker holds one short-timeout, non-retrying client per address while
// waiting, so that polling neither piles up connections nor stalls on a dead
// node.
type checker struct {
	password string
	clients  map[string]*redis.Client
}

func (k *checker) client(addr string) *redis.Client {
	rdb, ok := k.clients[addr]
	if !ok {
		rdb = redis.NewClient(&redis.Options{
			Addr:            addr,
			Password:        k.password,
			ClientName:      ClientName,
			PoolSize:        1,
			MaxRetries:      -1,
			DialTimeout:     500 * time.Millisecond,
			ReadTimeout:     2 * time.Second,
			WriteTimeout:    2 * time.Second,
			DisableIdentity: true,
		})
		k.clients[addr] = rdb
	}
	return rdb
}

func (k *checker) close() {
	for _, rdb := range k.clients {
		rdb.Close()
	}
}

// check returns "" if the cluster is healthy, or else the first problem found.
func (k *checker) check(ctx context.Context, addrs []string) string {
	live := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		live[a] = true
	}
	var ref [NumSlots]string
	refAddr := ""
	views := make(map[string][]clusterNodesEntry) // addr -> its CLUSTER NODES
	for _, addr := range addrs {
		rdb := k.client(addr)
		info, err := rdb.ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER INFO: %v", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Sprintf("%s: cluster_state is not ok", addr)
		}

		slots, err := rdb.ClusterSlots(ctx).Result()
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER SLOTS: %v", addr, err)
		}
		var owners [NumSlots]string
		for _, s := range slots {
			if len(s.Nodes) == 0 {
				continue
			}
			for i := s.Start; i <= s.End && i < NumSlots; i++ {
				owners[i] = s.Nodes[0].Addr
			}
		}
		for slot, o := range owners {
			if o == "" {
				return fmt.Sprintf("%s: slot %d is unassigned", addr, slot)
			}
		}
		if refAddr == "" {
			ref, refAddr = owners, addr
		} else if owners != ref {
			for slot := range owners {
				if owners[slot] != ref[slot] {
					return fmt.Sprintf("%s says slot %d is on %s, %s says %s", refAddr, slot, ref[slot], addr, owners[slot])
				}
			}
		}

		text, err := rdb.ClusterNodes(ctx).Result()
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER NODES: %v", addr, err)
		}
		known := make(map[string]bool)
		entries := parseClusterNodes(text)
		views[addr] = entries
		for _, e := range entries {
			if !live[e.addr] {
				continue
			}
			known[e.addr] = true
			for _, bad := range []string{"fail", "handshake", "noaddr"} {
				if strings.Contains(e.flags, bad) {
					return fmt.Sprintf("%s flags %s as %s", addr, e.addr, e.flags)
				}
			}
			if !strings.Contains(e.flags, "myself") && e.link != "connected" {
				return fmt.Sprintf("%s: cluster bus link to %s is %s", addr, e.addr, e.link)
			}
		}
		for _, a := range addrs {
			if !known[a] {
				return fmt.Sprintf("%s does not know %s", addr, a)
			}
		}

		repl, err := rdb.Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Sprintf("%s: INFO replication: %v", addr, err)
		}
		if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return fmt.Sprintf("%s: replica's link to its master is not up", addr)
		}
	}
	// Every node must see every node's role as that node sees itself: a
	// replica that has started replicating may still look like an empty
	// master to nodes that have not heard about it yet.
	self := make(map[string]string) // addr -> "master" or "slave of <id>"
	for addr, entries := range views {
		for _, e := range entries {
			if e.addr == addr && strings.Contains(e.flags, "myself") {
				self[addr] = e.role()
			}
		}
	}
	for addr, entries := range views {
		for _, e := range entries {
			if want, ok := self[e.addr]; ok && e.role() != want {
				return fmt.Sprintf("%s sees %s as %s, it is %s", addr, e.addr, e.role(), want)
			}
		}
	}

	checked := make(map[string]bool)
	for _, m := range ref {
		if live[m] || checked[m] {
			continue
		}
		checked[m] = true
		if err := k.client(m).Ping(ctx).Err(); err != nil {
			return fmt.Sprintf("slot owner %s does not answer PING: %v", m, err)
		}
	}
	return ""
}

// clusterNodesEntry is one line of CLUSTER NODES.
type clusterNodesEntry struct {
	id        string
	addr      string // "ip:port", without "@cport" and ",hostname"
	flags     string
	masterID  string // "-" for a master
	link      string // "connected" or "disconnected"
	firstSlot int    // lowest slot owned, -1 for none
}

func (e clusterNodesEntry) master() bool {
	return slices.Contains(strings.Split(e.flags, ","), "master")
}

// role is "master", or "slave of <master ID>".
func (e clusterNodesEntry) role() string {
	if e.master() {
		return "master"
	}
	return "slave of " + e.masterID
}

// parseClusterNodes parses CLUSTER NODES output:
//
//	<id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot> <slot> ...
//
// Lines that do not have at least the eight fixed fields are skipped.
func parseClusterNodes(text string) []clusterNodesEntry {
	var entries []clusterNodesEntry
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",")
		e := clusterNodesEntry{id: f[0], addr: addr, flags: f[2], masterID: f[3], link: f[7], firstSlot: -1}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") { // a slot being imported or migrated
				continue
			}
			lo, _, _ := strings.Cut(s, "-")
			if n, err := strconv.Atoi(lo); err == nil && (e.firstSlot < 0 || n < e.firstSlot) {
				e.firstSlot = n
			}
		}
		entries = append(entries, e)
	}
	return entries
}
