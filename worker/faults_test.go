package worker_test

// Fault tests: each scenario runs a worker against real redis-server
// processes and a real NATS server while load flows, breaks something, and
// accounts for every request it sent: a reply with values (checked against
// the data), an error reply (by code), or no reply before the caller's own
// deadline. Callers wait comfortably longer than the Request-Timeout they
// send, so a caller-side timeout is a request the worker lost, and every
// scenario asserts there are none. Each scenario logs one row of a summary
// table: `go test -v -run TestFault ./worker | grep 'FAULTS |'` prints it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/internal/redisconns"
	"github.com/featurestore/featureworker/internal/redistest"
	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// TestFaultMasterFailover kills a master of a cluster with replicas while
// requests flow to every master. Requests for the other masters never
// notice; requests for the dead one get a 503/504 by their deadline until
// its replica is promoted, and values after; the worker redials the dead
// node with backoff and never opens more than its budget anywhere.
func TestFaultMasterFailover(t *testing.T) {
	const (
		budget     = 2
		reqTimeout = 500 * time.Millisecond
		prefix     = "fo:"
		subject    = "faults.failover"
	)
	// With the default cluster-require-full-coverage yes, every master
	// refuses every key (CLUSTERDOWN) from the moment the dead master is
	// flagged FAIL until its replica is promoted: Redis, not the worker,
	// would then fail the requests for the healthy masters. A feature store
	// that prefers partial availability turns it off, and that is the
	// setting under which "one dead node costs only its own keys" holds.
	c := redistest.Start(t, redistest.Options{Replicas: 1, NodeTimeout: time.Second,
		Args: []string{"--cluster-require-full-coverage", "no"}})
	ctx := context.Background()
	if err := set.Seed(ctx, c.Client(t), prefix); err != nil {
		t.Fatal(err)
	}
	masters := c.Masters()
	victim := masters[0]
	// The promoted replica must hold the seeded keys.
	if err := victim.Client().Do(ctx, "WAIT", 1, 5000).Err(); err != nil {
		t.Fatalf("WAIT on %s: %v", victim.Addr, err)
	}
	var promoted *redistest.Node
	for _, r := range c.Replicas() {
		if r.Master(t) == victim {
			promoted = r
		}
	}
	if promoted == nil {
		t.Fatalf("no replica of %s", victim.Addr)
	}
	owners := byOwner(t, c, prefix, 150)
	pools := make([][]int, len(masters)) // group i: entities on masters[i]
	for i, m := range masters {
		if pools[i] = owners[m]; len(pools[i]) < 4 {
			t.Fatalf("only %d test entities on %s", len(pools[i]), m.Addr)
		}
	}

	ns := natstest.Start(t, nil)
	// The victim is the only seed, and the topology connection starts on
	// it: the worker must find the cluster again through the masters it
	// already knows.
	w := startFaultWorker(t, natstest.Connect(t, ns), worker.Config{
		Subject: subject, KeyPrefix: prefix, ConnsPerNode: budget, RedisAddrs: []string{victim.Addr}})
	p := newProber(t, natstest.Connect(t, ns), subject, set)

	sampled := []string{promoted.Addr}
	for _, m := range masters[1:] {
		sampled = append(sampled, m.Addr)
	}
	sampler := redisconns.NewSampler(redisconns.SamplerConfig{
		Addrs: sampled, NamePrefix: worker.DefaultClientName, Interval: 20 * time.Millisecond})
	defer sampler.Close()

	loadCtx, stop := context.WithCancel(ctx)
	defer stop()
	go sampler.Run(loadCtx)
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		p.closedLoop(loadCtx, 24, func(g int, r *rand.Rand) *call {
			group := g % len(pools)
			return newCall(group, pick(r, pools[group], 2), []int{0, 1, 2, 3}, reqTimeout, 2*time.Second)
		})
	}()

	time.Sleep(500 * time.Millisecond)
	killed := time.Now()
	victim.Kill(t)
	first, ok := p.waitFor(t, 20*time.Second, func(r record) bool {
		return r.group == 0 && r.code == outValues && r.sent.After(killed)
	})
	if !ok {
		stop()
		<-loadDone
		t.Fatalf("requests for the dead master's slots still fail 20s after the kill; worker %+v", w.Stats())
	}
	recovered := first.replied()
	time.Sleep(time.Second) // load goes on against the promoted replica
	stop()
	<-loadDone
	p.drain(t)

	recs := p.records()
	assertCorrect(t, recs)
	healthy := tallyOf(recs, func(r record) bool { return r.group != 0 })
	dead := tallyOf(recs, func(r record) bool { return r.group == 0 })
	// Once a request for the dead master's slots has succeeded, the worker
	// knows the new master: later ones succeed too (a short grace covers
	// requests already retrying towards the dead node).
	after := tallyOf(recs, func(r record) bool { return r.group == 0 && r.sent.After(recovered.Add(300*time.Millisecond)) })
	if healthy.sent < 1000 || dead.sent < 200 || after.sent < 50 {
		t.Errorf("too little load to prove anything: %d healthy, %d on the dead master, %d after recovery",
			healthy.sent, dead.sent, after.sent)
	}
	if n := healthy.failed(); n > 0 {
		t.Errorf("%d of %d requests on healthy masters failed (%s, %d timeouts): a dead node blocked others",
			n, healthy.sent, healthy.errors(), healthy.timeouts)
	}
	if bad := dead.codesOutside(subjects.CodeUnavailable, subjects.CodeTimeout); bad != "" {
		t.Errorf("requests for the dead master got %s, want only values, 503 or 504", bad)
	}
	if after.failed() > 0 {
		t.Errorf("%d of %d requests for the failed-over slots failed after they recovered (%s)",
			after.failed(), after.sent, after.errors())
	}
	assertErrorsByDeadline(t, dead, reqTimeout)
	recovery := recovered.Sub(killed)
	if recovery > 20*time.Second {
		t.Errorf("recovery took %v", recovery)
	}

	// Connections: never more than the budget plus the topology connection
	// on any node, the promoted one included; the dead node was redialed
	// with backoff, not in a loop.
	for addr, s := range sampler.Snapshot() {
		t.Logf("%s: %d samples, worker connections min %d max %d last %d", addr, s.Samples, s.Min, s.Max, s.Last)
		if s.Samples < 20 {
			t.Errorf("%s: only %d CLIENT LIST samples", addr, s.Samples)
		}
		if s.Max > budget+1 {
			t.Errorf("%s: %d connections from the worker, budget %d + 1", addr, s.Max, budget)
		}
	}
	if s := sampler.Snapshot()[promoted.Addr]; s.Last < budget {
		t.Errorf("promoted replica %s: %d worker connections at the end, want at least %d", promoted.Addr, s.Last, budget)
	}
	stats := w.Stats().Pool
	// Backoff from 50ms doubling to 2s allows ~6 failed dials per
	// connection in the first 2.4s and one per 1.5s after; a redial loop
	// without backoff would fail thousands of times (a refused dial is
	// instant).
	maxDialErrors := budget * (10 + int(recovery/time.Second))
	if stats.DialErrors > uint64(maxDialErrors) {
		t.Errorf("%d failed dials in %v of outage, want at most %d: no backoff", stats.DialErrors, recovery, maxDialErrors)
	}
	for _, n := range stats.Nodes {
		if n.Open > budget {
			t.Errorf("node %s: %d connections open, budget %d", n.Addr, n.Open, budget)
		}
	}
	all := tallyOf(recs, nil)
	logRow(t, "master-failover", all, all.timeouts, recovery.Round(time.Millisecond).String(),
		fmt.Sprintf("healthy %d/%d values; dead master %s; %d failed dials", healthy.values, healthy.sent, dead.errors(), stats.DialErrors))
}

// TestFaultRedisDownAtStart: a worker whose seeds do not answer gives up
// when its start-up context ends, saying which address it could not reach.
func TestFaultRedisDownAtStart(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t)) // nothing listens there
	ns := natstest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	begin := time.Now()
	w, err := worker.Start(ctx, natstest.Connect(t, ns), worker.Config{RedisAddrs: []string{addr}, Logger: discardLogger()})
	took := time.Since(begin)
	if err == nil {
		w.Shutdown(context.Background())
		t.Fatal("worker.Start succeeded with no Redis")
	}
	t.Logf("worker.Start gave up after %v: %v", took.Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("the error does not name the address %s: %v", addr, err)
	}
	if took > 4*time.Second {
		t.Errorf("worker.Start took %v with a 2s context", took)
	}
}

// TestFaults runs the scenarios that share one 3-master cluster, each with
// its own worker on its own subject. Those that break something restore it;
// RedisDown, which loses the data, runs last.
func TestFaults(t *testing.T) {
	f := &faultEnv{cluster: redistest.Start(t, redistest.Options{}), nats: natstest.Start(t, nil)}
	if err := faultSet.Seed(context.Background(), f.cluster.Client(t), faultPrefix); err != nil {
		t.Fatal(err)
	}
	t.Run("SlowNode", f.testSlowNode)
	t.Run("Reshard", f.testReshard)
	t.Run("NATSRestart", f.testNATSRestart)
	t.Run("Overload", f.testOverload)
	t.Run("RedisDown", f.testRedisDown)
}

// faultSet is the data of TestFaults: enough entities for keys in many
// slots, so that a reshard moves keys, not just empty slots.
var faultSet = featureset.Set{Entities: 4000, Features: numFeatures}

const faultPrefix = "ft:"

type faultEnv struct {
	cluster *redistest.Cluster
	nats    *server.Server
}

// start starts a worker for cfg on subject and a prober that calls it.
func (f *faultEnv) start(t *testing.T, subject string, cfg worker.Config) (*worker.Worker, *prober) {
	t.Helper()
	cfg.Subject, cfg.KeyPrefix, cfg.RedisAddrs = subject, faultPrefix, f.cluster.Addrs()[:1]
	w := startFaultWorker(t, natstest.Connect(t, f.nats), cfg)
	return w, newProber(t, natstest.Connect(t, f.nats), subject, faultSet)
}

// testSlowNode pauses one master while requests flow to every master:
// requests for the others keep their latency, and requests for the paused
// one get values after the pause or a 504.
func (f *faultEnv) testSlowNode(t *testing.T) {
	const (
		reqTimeout = 500 * time.Millisecond
		pause      = 1500 * time.Millisecond
		groupFast  = 0
		groupSlow  = 1
	)
	_, p := f.start(t, "faults.slow", worker.Config{})
	masters := f.cluster.Masters()
	slow := masters[len(masters)-1]
	var fast []int
	owners := byOwner(t, f.cluster, faultPrefix, 200)
	for n, ids := range owners {
		if n != slow {
			fast = append(fast, ids...)
		}
	}
	slowIDs := owners[slow]

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.closedLoop(ctx, 20, func(g int, r *rand.Rand) *call {
			if g < 4 {
				return newCall(groupSlow, pick(r, slowIDs, 1), []int{0, 1}, reqTimeout, 2*time.Second)
			}
			return newCall(groupFast, pick(r, fast, 2), []int{0, 1, 2, 3}, reqTimeout, 2*time.Second)
		})
	}()
	time.Sleep(700 * time.Millisecond)
	if err := slow.Client().Do(ctx, "CLIENT", "PAUSE", strconv.Itoa(int(pause.Milliseconds())), "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	// Redis has paused by the time it acknowledges: everything sent from
	// now on reaches it paused.
	paused := time.Now()
	resumed := paused.Add(pause)
	time.Sleep(pause + time.Second)
	stop()
	<-done

	recs := p.records()
	assertCorrect(t, recs)
	isFast := func(r record) bool { return r.group == groupFast }
	base := tallyOf(recs, func(r record) bool { return isFast(r) && r.sent.Before(paused) })
	during := tallyOf(recs, func(r record) bool { return isFast(r) && !r.sent.Before(paused) && r.sent.Before(resumed) })
	fastAll := tallyOf(recs, isFast)
	slowAll := tallyOf(recs, func(r record) bool { return r.group == groupSlow })
	t.Logf("fast requests: p50/p99 %v/%v before the pause, %v/%v during it (%d requests)",
		base.pct(0.5), base.pct(0.99), during.pct(0.5), during.pct(0.99), during.sent)
	if during.sent < 200 {
		t.Errorf("only %d requests to the other masters during the pause", during.sent)
	}
	if n := fastAll.failed(); n > 0 {
		t.Errorf("%d requests to the other masters failed (%s, %d timeouts)", n, fastAll.errors(), fastAll.timeouts)
	}
	// A request held up by the paused node would wait out the pause or
	// its 500ms deadline; the bound is far below that but well above the
	// noise of a shared machine under -race (p99 is a few ms when idle).
	if p99 := during.pct(0.99); p99 > max(100*time.Millisecond, 2*base.pct(0.99)) {
		t.Errorf("p99 of requests to the other masters was %v during the pause (%v before): the slow node held them up", p99, base.pct(0.99))
	}
	if bad := slowAll.codesOutside(subjects.CodeTimeout); bad != "" {
		t.Errorf("requests to the paused master got %s, want only values or 504", bad)
	}
	assertErrorsByDeadline(t, slowAll, reqTimeout)
	first, ok := firstRecord(recs, func(r record) bool {
		return r.group == groupSlow && r.code == outValues && r.sent.After(paused)
	})
	recovery := first.replied().Sub(resumed)
	if !ok {
		t.Fatal("no request to the paused master succeeded after the pause")
	}
	all := tallyOf(recs, nil)
	logRow(t, "slow-node", all, all.timeouts, recovery.Round(time.Millisecond).String()+" after pause",
		fmt.Sprintf("pause %v; others p99 %v (before %v); paused node %d values, %s",
			pause, during.pct(0.99), base.pct(0.99), slowAll.values, slowAll.errors()))
}

// testReshard moves 2000 slots, with their keys, between masters with
// redis-cli while lookups flow: every reply is correct and none fails.
func (f *faultEnv) testReshard(t *testing.T) {
	const slots = 2000
	w, p := f.start(t, "faults.reshard", worker.Config{})
	masters := f.cluster.Masters()
	from, to := masters[0], masters[1]
	before := ownedSlots(t, to)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Some ids beyond the data: missing keys must stay missing.
		p.closedLoop(ctx, 32, func(_ int, r *rand.Rand) *call {
			return newCall(0, distinct(faultSet.Entities+40, 3)(r), []int{0, 1, 2, 3}, time.Second, 3*time.Second)
		})
	}()
	time.Sleep(300 * time.Millisecond)
	begin := time.Now()
	cmdCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cmdCtx, "redis-cli", "--cluster", "reshard", from.Addr,
		"--cluster-from", from.ID, "--cluster-to", to.ID,
		"--cluster-slots", strconv.Itoa(slots), "--cluster-yes").CombinedOutput()
	took := time.Since(begin)
	time.Sleep(300 * time.Millisecond)
	stop()
	<-done
	if err != nil {
		t.Fatalf("redis-cli --cluster reshard: %v; last output:\n%s", err, lastLines(out, 20))
	}
	f.cluster.WaitOK(t)

	recs := p.records()
	assertCorrect(t, recs)
	all := tallyOf(recs, nil)
	retries := w.Stats().Pool.Retries
	t.Logf("reshard of %d slots took %v; %d requests; worker retries %v", slots, took.Round(time.Millisecond), all.sent, retries)
	if got := ownedSlots(t, to) - before; got != slots {
		t.Errorf("%s gained %d slots, want %d", to.Addr, got, slots)
	}
	if retries[worker.ReasonMoved]+retries[worker.ReasonAsk] == 0 {
		t.Error("the worker saw no MOVED or ASK: the slots did not move under load")
	}
	if all.failed() > 0 {
		t.Errorf("%d of %d requests failed during the reshard (%s, %d timeouts)", all.failed(), all.sent, all.errors(), all.timeouts)
	}
	logRow(t, "reshard-2000", all, all.timeouts, "-",
		fmt.Sprintf("%d slots moved in %v; moved %d, ask %d", slots, took.Round(time.Millisecond),
			retries[worker.ReasonMoved], retries[worker.ReasonAsk]))
}

// testNATSRestart stops the NATS server mid-load and starts it again on the
// same port: the worker reconnects, resubscribes and serves again, and the
// replies it could not send while disconnected are dropped, not delivered
// as a stale flood after the reconnect (see connectNATS in cmd/worker,
// which sets nats.ReconnectBufSize(-1) for that reason, as this test does).
func (f *faultEnv) testNATSRestart(t *testing.T) {
	const (
		subject    = "faults.natsrestart"
		reqTimeout = 500 * time.Millisecond
	)
	srv := startRestartableNATS(t)
	// The options of cmd/worker's connectNATS that matter here, with a
	// shorter reconnect wait. The caller does not buffer either, so that
	// its requests fail at once while it is disconnected.
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond), nats.ReconnectBufSize(-1)}
	w := startFaultWorker(t, srv.connect(t, append(slices.Clip(opts), nats.Name("fault-worker"))...), worker.Config{
		Subject: subject, KeyPrefix: faultPrefix, RedisAddrs: f.cluster.Addrs()[:1]})
	p := newProber(t, srv.connect(t, append(slices.Clip(opts), nats.Name("fault-caller"))...), subject, faultSet)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var load sync.WaitGroup
	next := func(r *rand.Rand) *call {
		return newCall(0, distinct(faultSet.Entities, 2)(r), []int{0, 1, 2, 3}, reqTimeout, 2*time.Second)
	}
	// Closed-loop callers wait for their requests in flight when NATS
	// goes away; an open loop beside them keeps sending through the
	// outage.
	load.Go(func() { p.closedLoop(ctx, 16, func(_ int, r *rand.Rand) *call { return next(r) }) })
	load.Go(func() { p.openLoop(ctx, 200, next) })
	time.Sleep(500 * time.Millisecond)

	// Hold Redis for a moment so that the worker has accepted requests
	// pending when NATS goes away; their replies fall due (504) while it
	// is disconnected.
	for _, m := range f.cluster.Masters() {
		if err := m.Client().Do(ctx, "CLIENT", "PAUSE", "700", "ALL").Err(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	pendingAtOutage := w.Stats().Pending
	down := time.Now()
	srv.stop()
	if pendingAtOutage == 0 {
		t.Error("the worker had no request pending when NATS went down: the stale-reply check proves nothing")
	}
	// Every accepted request is finished while disconnected: replies that
	// cannot be sent do not hold MaxPending.
	waitUntil(t, 3*time.Second, "the worker's pending requests to drop to zero while NATS is down",
		func() bool { return w.Stats().Pending == 0 })
	time.Sleep(time.Until(down.Add(time.Second)))
	restarted := time.Now()
	srv.start(t)

	first, ok := p.waitFor(t, 10*time.Second, func(r record) bool {
		return r.code == outValues && r.sent.After(restarted)
	})
	if !ok {
		stop()
		load.Wait()
		t.Fatalf("no request succeeded within 10s of the NATS restart; worker %+v", w.Stats())
	}
	up := first.sent
	time.Sleep(time.Second)
	stop()
	load.Wait()
	p.drain(t)

	recs := p.records()
	assertCorrect(t, recs)
	// Outage: requests whose life overlaps [down, up). Before and after
	// it, everything succeeds.
	inOutage := func(r record) bool { return r.replied().After(down) && r.sent.Before(up) }
	outage := tallyOf(recs, inOutage)
	normal := tallyOf(recs, func(r record) bool { return !inOutage(r) })
	afterUp := tallyOf(recs, func(r record) bool { return !r.sent.Before(up) })
	if normal.failed() > 0 {
		t.Errorf("%d of %d requests outside the outage failed (%s, %d timeouts, %d refused)",
			normal.failed(), normal.sent, normal.errors(), normal.timeouts, normal.refused)
	}
	if afterUp.sent < 100 {
		t.Errorf("only %d requests after the restart", afterUp.sent)
	}
	recovery := first.replied().Sub(restarted)
	if recovery > 5*time.Second {
		t.Errorf("serving again took %v after the NATS restart", recovery)
	}

	// No stale flood: on the new server the worker published exactly one
	// reply per request it received there. Replies buffered during the
	// outage would have been flushed on reconnect, on top of those.
	waitUntil(t, 3*time.Second, "the worker to finish its requests", func() bool { return w.Stats().Pending == 0 })
	conn := connInfo(t, srv.server(), "fault-worker")
	t.Logf("on the restarted server the worker received %d requests and sent %d messages; the caller saw %d late replies",
		conn.OutMsgs, conn.InMsgs, p.late.Load())
	if conn.InMsgs != conn.OutMsgs {
		t.Errorf("worker connection after the restart: %d messages published for %d requests received: replies from before the outage were flushed",
			conn.InMsgs, conn.OutMsgs)
	}
	all := tallyOf(recs, nil)
	logRow(t, "nats-restart", all, normal.timeouts, recovery.Round(time.Millisecond).String()+" after restart",
		fmt.Sprintf("outage %v: %d requests (%d refused, %d timed out, %d no responders, %d values, %s); pending at outage %d; stale replies flushed %d",
			restarted.Sub(down).Round(time.Millisecond), outage.sent, outage.refused, outage.timeouts, outage.noResponders,
			outage.values, outage.errors(), pendingAtOutage, conn.InMsgs-conn.OutMsgs))
}

// testOverload measures capacity, offers three times as much for a few
// seconds, and checks that the excess is turned away fast, the accepted
// requests stay within bounds, memory stays bounded and throughput comes
// back at once. It ends by checking that requests whose deadline has
// already passed never reach Redis.
func (f *faultEnv) testOverload(t *testing.T) {
	const (
		// Requests of many entities keep the message rates low: the
		// callers, the NATS server and the worker share two cores here.
		entities    = 100
		concurrency = 64
		reqTimeout  = 2 * time.Second
		groupCap    = 0
		groupBurst  = 1
		groupLate   = 2
		groupEcho   = 3
		groupAfter  = 4 // and up: one group per window
	)
	// Bodies are built ahead, so that the callers spend their time
	// sending.
	templates := make([]*call, 512)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range templates {
		templates[i] = expectReply(newCall(0, distinct(faultSet.Entities, entities)(r), []int{0, 1, 2, 3}, reqTimeout, 3*time.Second), faultSet)
	}
	newOne := func(group int, r *rand.Rand) *call {
		c := *templates[r.IntN(len(templates))]
		c.group = group
		return &c
	}
	closedRate := func(p *prober, group int, d time.Duration) float64 {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		begin := time.Now()
		p.closedLoop(ctx, concurrency, func(_ int, r *rand.Rand) *call { return newOne(group, r) })
		n := tallyOf(p.records(), func(r record) bool { return r.group == group }).values
		return float64(n) / time.Since(begin).Seconds()
	}
	// Redis is the bottleneck, as in production: every master sleeps 10ms
	// between the pipelines it serves. A capacity set by the CPU would
	// swing several-fold from second to second on this shared machine,
	// and "3× capacity" would sometimes be no overload at all.
	throttled, unthrottle := context.WithCancel(context.Background())
	defer unthrottle()
	var throttles sync.WaitGroup
	for _, m := range f.cluster.Masters() {
		throttles.Go(func() {
			for throttled.Err() == nil {
				m.Client().Do(throttled, "DEBUG", "SLEEP", "0.01")
			}
		})
	}
	cfg := worker.Config{MaxBatch: 64} // so that a round trip carries at most 128 commands per master
	_, probe := f.start(t, "faults.capacity", cfg)
	capacity := closedRate(probe, groupCap, 2*time.Second)
	// MaxPending sized to a quarter second of work, as a deployment would
	// size it, bounds how long an accepted request waits (but leaves room
	// for the closed loop's concurrency).
	maxPending := max(2*concurrency, int(capacity/4))
	t.Logf("capacity: %.0f requests/s of %d entities; MaxPending %d", capacity, entities, maxPending)
	cfg.MaxPending = maxPending
	w, p := f.start(t, "faults.overload", cfg)

	// The control: a NATS responder that answers at once, called during
	// the burst over the same connection. Its latency is what NATS and
	// this (shared, busy) machine add to any reply right now; the 503s
	// may not take much longer.
	echoNC := natstest.Connect(t, f.nats)
	if _, err := echoNC.Subscribe("faults.echo", func(m *nats.Msg) { m.Respond([]byte(`{"values":[[null]]}`)) }); err != nil {
		t.Fatal(err)
	}
	if err := echoNC.Flush(); err != nil {
		t.Fatal(err)
	}
	echo := newProber(t, p.nc, "faults.echo", faultSet)

	// The burst: an open loop at 3× capacity, whatever the replies.
	heapCtx, stopHeap := context.WithCancel(context.Background())
	peakHeap := sampleHeap(heapCtx)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	var echoes sync.WaitGroup
	echoes.Go(func() {
		echo.openLoop(ctx, 100, func(*rand.Rand) *call { // a missing entity: [[null]] is right
			return newCall(groupEcho, []int{faultSet.Entities + 1}, []int{0}, reqTimeout, 3*time.Second)
		})
	})
	offered := p.openLoop(ctx, 3*capacity, func(r *rand.Rand) *call { return newOne(groupBurst, r) })
	cancel()
	echoes.Wait()
	p.drain(t)
	echo.drain(t)
	stopHeap()
	peak := peakHeap()
	// Throughput right after: 1s windows until one reaches 70% of the
	// capacity, five at most, so that a stall of the shared machine is not
	// taken for a slow recovery.
	var after []float64
	for k := 0; k < 5 && (k == 0 || slices.Max(after) < 0.7*capacity); k++ {
		after = append(after, closedRate(p, groupAfter+k, time.Second))
	}
	afterBest := slices.Max(after)
	unthrottle()
	throttles.Wait()

	recs := slices.Concat(probe.records(), p.records(), echo.records())
	assertCorrect(t, recs)
	burst := tallyOf(recs, func(r record) bool { return r.group == groupBurst })
	rejected := tallyOf(recs, func(r record) bool { return r.group == groupBurst && r.code == subjects.CodeUnavailable })
	accepted := tallyOf(recs, func(r record) bool {
		return r.group == groupBurst && r.code != subjects.CodeUnavailable && r.code != outTimeout
	})
	control := tallyOf(recs, func(r record) bool { return r.group == groupEcho })
	t.Logf("burst: offered %d (%.0f/s); %d accepted, p50/p99 %v/%v; %d rejected, p50/p99 %v/%v; NATS echo p50/p99 %v/%v; peak HeapInuse %d MiB; throughput after %.0f/s; worker %+v",
		offered, float64(offered)/5, accepted.sent, accepted.pct(0.5), accepted.pct(0.99),
		rejected.sent, rejected.pct(0.5), rejected.pct(0.99), control.pct(0.5), control.pct(0.99), peak>>20, after, w.Stats())
	if control.failed() > 0 {
		t.Errorf("NATS echo control: %d of %d failed", control.failed(), control.sent)
	}
	if burst.timeouts > 0 {
		t.Errorf("%d requests of the burst got no reply", burst.timeouts)
	}
	if rejected.sent < burst.sent/4 {
		t.Errorf("only %d of %d requests rejected at 3× capacity: the burst did not overload the worker", rejected.sent, burst.sent)
	}
	// Bounds relative to the control's p99, so that they measure the
	// worker rather than the machine: 503s that waited behind accepted
	// work would take as long as it (MaxPending/capacity, ~330ms), far
	// above NATS's own latency when the machine is not starved.
	floor := control.pct(0.99)
	if p99 := rejected.pct(0.99); p99 > max(50*time.Millisecond, 2*floor) {
		t.Errorf("p99 of the 503s was %v, NATS itself %v: the excess is not turned away fast", p99, floor)
	}
	if p99 := accepted.pct(0.99); p99 > time.Second+2*floor {
		t.Errorf("p99 of the accepted requests was %v, NATS itself %v", p99, floor)
	}
	if bad := burst.codesOutside(subjects.CodeUnavailable); bad != "" {
		t.Errorf("burst requests got %s, want only values or 503", bad)
	}
	const heapBound = 512 << 20
	if peak > heapBound {
		t.Errorf("HeapInuse peaked at %d MiB during the burst, bound %d MiB", peak>>20, heapBound>>20)
	}
	if afterBest < 0.7*capacity {
		t.Errorf("throughput after the burst %.0f/s, below 70%% of the capacity %.0f/s", after, capacity)
	}

	// Requests already past their deadline never reach Redis.
	waitUntil(t, 5*time.Second, "the worker to be idle", func() bool { return w.Stats().Pending == 0 })
	time.Sleep(100 * time.Millisecond) // commands of finished lookups still on the wire
	calls := f.hmgetCalls(t)
	ctx, cancel = context.WithCancel(context.Background())
	var sent atomic.Int64
	p.closedLoop(ctx, 16, func(_ int, r *rand.Rand) *call {
		if sent.Add(1) >= 400 {
			cancel()
		}
		return newCall(groupLate, distinct(faultSet.Entities, 3)(r), []int{0, 1}, time.Nanosecond, 2*time.Second)
	})
	cancel()
	late := tallyOf(p.records(), func(r record) bool { return r.group == groupLate })
	if late.codes[subjects.CodeTimeout] != late.sent {
		t.Errorf("requests with Request-Timeout 1ns: %d values, %s, %d timeouts; want all 504", late.values, late.errors(), late.timeouts)
	}
	if got := f.hmgetCalls(t) - calls; got != 0 {
		t.Errorf("%d HMGETs reached Redis for %d requests whose deadline had passed", got, late.sent)
	}

	all := tallyOf(recs, nil)
	all.add(late)
	logRow(t, "overload-3x", all, all.timeouts, fmt.Sprintf("%.0f%% of capacity in %ds", 100*afterBest/capacity, len(after)),
		fmt.Sprintf("capacity %.0f/s (%d entities), MaxPending %d, offered %.0f/s: %d accepted p99 %v, %d rejected p99 %v, NATS echo p99 %v; heap peak %d MiB; %d expired requests, 0 HMGETs",
			capacity, entities, maxPending, float64(offered)/5, accepted.sent, accepted.pct(0.99), rejected.sent, rejected.pct(0.99), floor, peak>>20, late.sent))
}

// hmgetCalls sums INFO commandstats calls of HMGET over the masters.
func (f *faultEnv) hmgetCalls(t *testing.T) int64 {
	t.Helper()
	var sum int64
	for _, m := range f.cluster.Masters() {
		info, err := m.Client().Info(context.Background(), "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_hmget:calls="); ok {
				v, _, _ = strings.Cut(v, ",")
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("%s: %q: %v", m.Addr, line, err)
				}
				sum += n
			}
		}
	}
	return sum
}

// testRedisDown kills every master mid-run and restarts them: meanwhile
// requests get clear 503s by their deadline, and the same worker serves
// again once Redis is back.
func (f *faultEnv) testRedisDown(t *testing.T) {
	const reqTimeout = 300 * time.Millisecond
	w, p := f.start(t, "faults.down", worker.Config{})
	// The nodes restart empty and are seeded again: until that is done a
	// value may be missing, but never wrong. Requests carry one entity, so
	// a row is seeded all at once or not at all.
	var reseeded atomic.Int64 // UnixNano once the data is back
	p.check = func(c *call, rows [][]*string) error {
		err := faultSet.Check(c.ids, c.fs, rows)
		if rs := reseeded.Load(); err != nil && (rs == 0 || c.sent.UnixNano() < rs) {
			if (featureset.Set{}).Check(c.ids, c.fs, rows) == nil { // all null
				return nil
			}
		}
		return err
	}
	masters := f.cluster.Masters()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.closedLoop(ctx, 16, func(_ int, r *rand.Rand) *call {
			return newCall(0, distinct(faultSet.Entities, 1)(r), []int{0, 1, 2, 3}, reqTimeout, 2*time.Second)
		})
	}()
	time.Sleep(500 * time.Millisecond)
	killing := time.Now()
	for _, m := range masters {
		m.Kill(t)
	}
	down := time.Now()
	time.Sleep(1500 * time.Millisecond)
	restarting := time.Now()
	for _, m := range masters {
		m.Restart(t)
	}
	first, ok := p.waitFor(t, 20*time.Second, func(r record) bool {
		return r.code == outValues && r.sent.After(restarting)
	})
	if !ok {
		stop()
		<-done
		t.Fatalf("no request succeeded within 20s of restarting Redis; worker %+v", w.Stats())
	}
	f.cluster.WaitOK(t)
	if err := faultSet.Seed(ctx, f.cluster.Client(t), faultPrefix); err != nil {
		t.Fatal(err)
	}
	reseeded.Store(time.Now().UnixNano())
	time.Sleep(time.Second)
	stop()
	<-done
	p.drain(t)

	recs := p.records()
	assertCorrect(t, recs)
	outage := tallyOf(recs, func(r record) bool { return r.sent.After(down) && r.sent.Before(restarting) })
	recovered := tallyOf(recs, func(r record) bool { return r.sent.UnixNano() > reseeded.Load() })
	all := tallyOf(recs, nil)
	if outage.sent < 50 {
		t.Errorf("only %d requests during the outage", outage.sent)
	}
	// From the first kill until Redis answers again, a deadline passes
	// while Redis fails: 503, never 504.
	unavailable := tallyOf(recs, func(r record) bool { return r.sent.After(killing) && r.sent.Before(first.replied()) })
	if bad := unavailable.codesOutside(subjects.CodeUnavailable); bad != "" {
		t.Errorf("requests while Redis was down or restarting got %s, want only values or 503", bad)
	}
	if outage.values > 0 || outage.codes[subjects.CodeUnavailable] != outage.sent {
		t.Errorf("requests while Redis was down: %d values, %s, %d timeouts; want all 503", outage.values, outage.errors(), outage.timeouts)
	}
	assertErrorsByDeadline(t, all, reqTimeout)
	if recovered.sent < 100 || recovered.failed() > 0 {
		t.Errorf("after Redis came back: %d of %d requests failed (%s)", recovered.failed(), recovered.sent, recovered.errors())
	}
	recovery := first.replied().Sub(restarting)
	if recovery > 20*time.Second {
		t.Errorf("recovery took %v", recovery)
	}
	logRow(t, "redis-down", all, all.timeouts, recovery.Round(time.Millisecond).String()+" after restart",
		fmt.Sprintf("kill took %v, outage %v: %d requests, %s, 503 p99 %v (Request-Timeout %v); same worker, %d dials",
			down.Sub(killing).Round(time.Millisecond), restarting.Sub(down).Round(time.Millisecond), outage.sent, outage.errors(),
			outage.pct(0.99), reqTimeout, w.Stats().Pool.Dials))
}

// Outcomes of a call besides the error codes of subjects.
const (
	outValues       = 0  // a reply with values
	outTimeout      = -1 // no reply before the caller's own deadline
	outRefused      = -2 // the caller's NATS connection would not send it (disconnected)
	outNoResponders = -3 // NATS answered that no worker is subscribed
)

// call is one lookup a prober sends.
type call struct {
	group         int           // which part of the scenario it belongs to
	ids, fs       []int         // entities and features, to check the reply
	body          []byte        // the request body for ids and fs
	reqTimeout    time.Duration // sent as the Request-Timeout header
	callerTimeout time.Duration // how long the caller waits for the reply
	want          []byte        // if set, the exact body of the right reply (see expectReply)
	sent          time.Time
	done          func(record) // if set, called once the call is recorded
}

func newCall(group int, ids, fs []int, reqTimeout, callerTimeout time.Duration) *call {
	body, err := json.Marshal(subjects.LookupRequest{Entities: names(entity, ids...), Features: names(feature, fs...)})
	if err != nil {
		panic(err)
	}
	return &call{group: group, ids: ids, fs: fs, body: body, reqTimeout: reqTimeout, callerTimeout: callerTimeout}
}

// expectReply sets c.want to the reply body the worker must send for c, so
// that the prober checks a reply by comparing bytes instead of decoding it:
// at high rates decoding costs the test as much CPU as the worker spends.
func expectReply(c *call, data featureset.Set) *call {
	rows := make([][]*string, len(c.ids))
	for r, i := range c.ids {
		for _, j := range c.fs {
			rows[r] = append(rows[r], data.Value(i, j))
		}
	}
	want, err := json.Marshal(subjects.LookupReply{Values: rows})
	if err != nil {
		panic(err)
	}
	c.want = want
	return c
}

// record is what became of one call.
type record struct {
	group int
	sent  time.Time
	took  time.Duration // until the reply, or until the caller gave up
	code  int           // an outcome above or the reply's error code
	err   error         // values that do not match the data, or a malformed reply
}

func (r record) replied() time.Time { return r.sent.Add(r.took) }

// prober sends lookups with reply subjects of its own, so that it can send
// at any rate without a goroutine per request, and records what became of
// every one: a reply, or its own timeout, swept every 10ms.
type prober struct {
	nc      *nats.Conn
	subject string
	inbox   string
	// check compares a values reply with the data; it may be replaced
	// before the first call.
	check func(c *call, rows [][]*string) error

	seq  atomic.Uint64
	late atomic.Int64 // replies that came after their caller gave up

	mu    sync.Mutex
	calls map[string]*call // in flight, by reply subject
	recs  []record
}

func newProber(tb testing.TB, nc *nats.Conn, subject string, data featureset.Set) *prober {
	tb.Helper()
	p := &prober{
		nc: nc, subject: subject, inbox: nats.NewInbox(), calls: make(map[string]*call),
		check: func(c *call, rows [][]*string) error { return data.Check(c.ids, c.fs, rows) },
	}
	sub, err := nc.Subscribe(p.inbox+".*", p.onReply)
	if err != nil {
		tb.Fatal(err)
	}
	// A reply dropped here would be counted as lost by the worker.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		tb.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { p.sweep(ctx) })
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
		sub.Unsubscribe()
	})
	return p
}

// send sends c; what becomes of it is recorded later, exactly once.
func (p *prober) send(c *call) {
	reply := p.inbox + "." + strconv.FormatUint(p.seq.Add(1), 10)
	msg := nats.NewMsg(p.subject)
	msg.Reply, msg.Data = reply, c.body
	msg.Header.Set(subjects.HeaderRequestTimeout, c.reqTimeout.String())
	c.sent = time.Now()
	p.mu.Lock()
	p.calls[reply] = c
	p.mu.Unlock()
	if err := p.nc.PublishMsg(msg); err != nil { // disconnected, and not buffering
		if p.take(reply) == c {
			p.finish(c, outRefused, nil)
		}
	}
}

// take removes the call waiting on reply, if it is still waiting.
func (p *prober) take(reply string) *call {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.calls[reply]
	delete(p.calls, reply)
	return c
}

func (p *prober) finish(c *call, code int, err error) {
	r := record{group: c.group, sent: c.sent, took: time.Since(c.sent), code: code, err: err}
	p.mu.Lock()
	p.recs = append(p.recs, r)
	p.mu.Unlock()
	if c.done != nil {
		c.done(r)
	}
}

func (p *prober) onReply(m *nats.Msg) {
	c := p.take(m.Subject)
	if c == nil {
		p.late.Add(1)
		return
	}
	// NATS itself answers a request nobody is subscribed to with an empty
	// message carrying "Status: 503".
	if m.Header.Get("Status") == "503" && len(m.Data) == 0 {
		p.finish(c, outNoResponders, nil)
		return
	}
	if c.want != nil && bytes.Equal(m.Data, c.want) && m.Header.Get(subjects.HeaderErrorCode) == "" {
		p.finish(c, outValues, nil)
		return
	}
	rows, err := subjects.DecodeReply(m)
	var se *subjects.Error
	switch {
	case errors.As(err, &se) && se.Message == "":
		p.finish(c, se.Code, fmt.Errorf("error %d without a message", se.Code))
	case errors.As(err, &se):
		p.finish(c, se.Code, nil)
	case err != nil:
		p.finish(c, outValues, err)
	default:
		p.finish(c, outValues, p.check(c, rows))
	}
}

func (p *prober) sweep(ctx context.Context) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			var expired []*call
			p.mu.Lock()
			for reply, c := range p.calls {
				if now.Sub(c.sent) > c.callerTimeout {
					expired = append(expired, c)
					delete(p.calls, reply)
				}
			}
			p.mu.Unlock()
			for _, c := range expired {
				p.finish(c, outTimeout, nil)
			}
		}
	}
}

// closedLoop keeps n calls in flight, each made by next on its own
// goroutine, until ctx ends, and returns once every call it sent is
// recorded.
func (p *prober) closedLoop(ctx context.Context, n int, next func(g int, r *rand.Rand) *call) {
	var wg sync.WaitGroup
	for g := range n {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			finished := make(chan int, 1)
			for ctx.Err() == nil {
				c := next(g, r)
				c.done = func(rec record) { finished <- rec.code }
				p.send(c)
				if code := <-finished; code == outRefused || code == outNoResponders {
					time.Sleep(5 * time.Millisecond) // NATS is down: do not spin
				}
			}
		})
	}
	wg.Wait()
}

// openLoop sends calls made by next at rate per second until ctx ends,
// whatever the replies, and returns how many it sent. A generator that
// falls behind catches up at once, as real callers would.
func (p *prober) openLoop(ctx context.Context, rate float64, next func(r *rand.Rand) *call) int {
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	begin := time.Now()
	sent := 0
	for ctx.Err() == nil {
		for due := int(time.Since(begin).Seconds() * rate); sent < due; sent++ {
			p.send(next(r))
		}
		time.Sleep(time.Millisecond)
	}
	return sent
}

// drain waits until every call sent is recorded; the callers' own
// timeouts bound it.
func (p *prober) drain(tb testing.TB) {
	tb.Helper()
	waitUntil(tb, 10*time.Second, "every call to be answered or to time out", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.calls) == 0
	})
}

func (p *prober) records() []record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.recs)
}

// waitFor waits up to bound for a record that matches, looking at each
// record once.
func (p *prober) waitFor(tb testing.TB, bound time.Duration, match func(record) bool) (record, bool) {
	tb.Helper()
	deadline := time.Now().Add(bound)
	seen := 0
	for {
		p.mu.Lock()
		fresh := slices.Clone(p.recs[seen:])
		seen = len(p.recs)
		p.mu.Unlock()
		if r, ok := firstRecord(fresh, match); ok {
			return r, true
		}
		if time.Now().After(deadline) {
			return record{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func firstRecord(recs []record, match func(record) bool) (record, bool) {
	for _, r := range recs {
		if match(r) {
			return r, true
		}
	}
	return record{}, false
}

// assertCorrect fails the test for every values reply that does not match
// the data and every malformed reply (the first five are shown).
func assertCorrect(tb testing.TB, recs []record) {
	tb.Helper()
	wrong := 0
	for _, r := range recs {
		if r.err != nil {
			if wrong++; wrong <= 5 {
				tb.Errorf("wrong reply (outcome %d): %v", r.code, r.err)
			}
		}
	}
	if wrong > 0 {
		tb.Errorf("%d wrong replies", wrong)
	}
}

// tally counts the outcomes of some records.
type tally struct {
	sent, values, timeouts, refused, noResponders int
	codes                                         map[int]int     // error replies by code
	took                                          []time.Duration // of the replies, values or errors, sorted
	errTook                                       time.Duration   // the slowest error reply
}

// tallyOf counts the records keep accepts; nil keeps all.
func tallyOf(recs []record, keep func(record) bool) tally {
	t := tally{codes: make(map[int]int)}
	for _, r := range recs {
		if keep != nil && !keep(r) {
			continue
		}
		t.sent++
		switch r.code {
		case outValues:
			t.values++
		case outTimeout:
			t.timeouts++
			continue
		case outRefused:
			t.refused++
			continue
		case outNoResponders:
			t.noResponders++
		default:
			t.codes[r.code]++
			t.errTook = max(t.errTook, r.took)
		}
		t.took = append(t.took, r.took)
	}
	slices.Sort(t.took)
	return t
}

// add merges o into t.
func (t *tally) add(o tally) {
	t.sent += o.sent
	t.values += o.values
	t.timeouts += o.timeouts
	t.refused += o.refused
	t.noResponders += o.noResponders
	for c, n := range o.codes {
		t.codes[c] += n
	}
	t.took = append(t.took, o.took...)
	slices.Sort(t.took)
	t.errTook = max(t.errTook, o.errTook)
}

// failed counts the calls that did not get values.
func (t tally) failed() int { return t.sent - t.values }

// errors lists the error replies by code, as "503:12 504:3".
func (t tally) errors() string {
	codes := make([]int, 0, len(t.codes))
	for c := range t.codes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var b strings.Builder
	for _, c := range codes {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%d", c, t.codes[c])
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// codesOutside lists the outcomes other than values and the allowed codes,
// "" if there are none.
func (t tally) codesOutside(allowed ...int) string {
	var bad []string
	for c, n := range t.codes {
		if !slices.Contains(allowed, c) {
			bad = append(bad, fmt.Sprintf("%d×%d", n, c))
		}
	}
	if t.timeouts > 0 {
		bad = append(bad, fmt.Sprintf("%d timeouts", t.timeouts))
	}
	if t.refused+t.noResponders > 0 {
		bad = append(bad, fmt.Sprintf("%d not sent", t.refused+t.noResponders))
	}
	slices.Sort(bad)
	return strings.Join(bad, ", ")
}

// pct returns the q-quantile of the reply latencies.
func (t tally) pct(q float64) time.Duration {
	if len(t.took) == 0 {
		return 0
	}
	return t.took[min(len(t.took)-1, int(q*float64(len(t.took))))].Round(100 * time.Microsecond)
}

// assertErrorsByDeadline checks that error replies came by the request's
// deadline, give or take scheduling on a busy machine: not hangs.
func assertErrorsByDeadline(tb testing.TB, t tally, reqTimeout time.Duration) {
	tb.Helper()
	if bound := reqTimeout + 500*time.Millisecond; t.errTook > bound {
		tb.Errorf("an error reply took %v with a Request-Timeout of %v", t.errTook, reqTimeout)
	}
}

// logRow logs a scenario's row of the fault table.
func logRow(tb testing.TB, scenario string, t tally, lost int, recovery, notes string) {
	tb.Helper()
	tb.Logf("FAULTS | %-15s | sent %6d | values %6d | errors %-16s | timeouts %d | lost %d | recovery %s | %s",
		scenario, t.sent, t.values, t.errors(), t.timeouts, lost, recovery, notes)
	if lost > 0 {
		tb.Errorf("%s: %d requests lost", scenario, lost)
	}
}

// startFaultWorker starts a worker on nc, silent unless cfg has a logger,
// and shuts it down when the test ends.
func startFaultWorker(tb testing.TB, nc *nats.Conn, cfg worker.Config) *worker.Worker {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := worker.Start(ctx, nc, cfg)
	if err != nil {
		tb.Fatalf("starting worker: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			tb.Errorf("worker shutdown: %v", err)
		}
	})
	return w
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// byOwner groups entities 0..n-1 by the master that owns their key now.
func byOwner(tb testing.TB, c *redistest.Cluster, prefix string, n int) map[*redistest.Node][]int {
	tb.Helper()
	owners := make(map[*redistest.Node][]int)
	for i := range n {
		o := c.SlotOwner(tb, prefix+entity(i))
		owners[o] = append(owners[o], i)
	}
	return owners
}

// pick returns k different ids from pool.
func pick(r *rand.Rand, pool []int, k int) []int {
	ids := make([]int, 0, k)
	for _, i := range distinct(len(pool), k)(r) {
		ids = append(ids, pool[i])
	}
	return ids
}

// ownedSlots counts the slots n owns, as n itself reports them.
func ownedSlots(tb testing.TB, n *redistest.Node) int {
	tb.Helper()
	slots, err := n.Client().ClusterSlots(context.Background()).Result()
	if err != nil {
		tb.Fatal(err)
	}
	owned := 0
	for _, s := range slots {
		if len(s.Nodes) > 0 && s.Nodes[0].Addr == n.Addr {
			owned += int(s.End - s.Start + 1)
		}
	}
	return owned
}

// sampleHeap samples HeapInuse every 50ms until ctx ends; the function it
// returns waits for that and returns the peak.
func sampleHeap(ctx context.Context) func() uint64 {
	var peak uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { <-done; return peak }
}

func waitUntil(tb testing.TB, bound time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", bound, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// freePort returns a loopback port nothing listens on right now.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// restartableNATS is an embedded NATS server on a fixed loopback port that
// can be stopped and started again, where its clients reconnect to.
// natstest.Start picks a random port for each server, so it cannot do that.
type restartableNATS struct {
	port int
	mu   sync.Mutex
	s    *server.Server // the current server, nil while stopped
}

// startRestartableNATS starts the server; whichever server is current
// when the test ends is stopped then, after the cleanups registered later
// (the workers' shutdowns) have run.
func startRestartableNATS(tb testing.TB) *restartableNATS {
	tb.Helper()
	n := &restartableNATS{port: freePort(tb)}
	tb.Cleanup(n.stop)
	n.start(tb)
	return n
}

func (n *restartableNATS) start(tb testing.TB) {
	tb.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: n.port, NoSigs: true, NoLog: true})
	if err != nil {
		tb.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		tb.Fatalf("nats server on port %d not ready within 10s", n.port)
	}
	n.mu.Lock()
	n.s = s
	n.mu.Unlock()
}

func (n *restartableNATS) stop() {
	n.mu.Lock()
	s := n.s
	n.s = nil
	n.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

func (n *restartableNATS) server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.s
}

// connect opens a client connection closed when the test ends.
func (n *restartableNATS) connect(tb testing.TB, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	return natstest.Connect(tb, n.server(), opts...)
}

// connInfo returns the server's view of the client connection named name.
func connInfo(tb testing.TB, s *server.Server, name string) *server.ConnInfo {
	tb.Helper()
	cz, err := s.Connz(&server.ConnzOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	for _, c := range cz.Conns {
		if c.Name == name {
			return c
		}
	}
	tb.Fatalf("no connection named %s on the NATS server", name)
	return nil
}

func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
