package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/internal/redisconns"
	"github.com/featurestore/featureworker/internal/redistest"
	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Scale-out tests: several worker processes in one queue group, as
// docker-compose runs them. The machine running them has 2 cores shared by
// the workers (built with -race), Redis, NATS and the callers, so bounds are
// generous and throughput is reported, never asserted.

// scaleSet is the data of the scale tests.
var scaleSet = featureset.Set{Entities: 2000, Features: 4}

// Connection names of the workers in CLIENT LIST.
const (
	dataConnName     = worker.DefaultClientName
	topologyConnName = worker.DefaultClientName + "-topology"
)

// TestFairShareAndConnectionBudget runs three workers under saturating load:
// each must serve about a third of the requests, and together they must
// never hold more than 3 × (conns-per-node + 1) connections to any master.
func TestFairShareAndConnectionBudget(t *testing.T) {
	const workers, budget = 3, 2
	e := newProcEnv(t, scaleSet)
	ws := e.startWorkers(t, workers, "worker", "--conns-per-node", strconv.Itoa(budget))
	var masters []string
	for _, n := range e.cluster.Masters() {
		masters = append(masters, n.Addr)
	}
	all := sampleConns(t, masters, dataConnName) // the prefix matches both kinds
	topology := sampleConns(t, masters, topologyConnName)

	load := startCallers(t, callersConfig{Client: e.client, Set: e.set, Callers: 128})
	time.Sleep(5 * time.Second)
	got := load.finish()
	all.Close()
	topology.Close()
	t.Logf("128 callers for 5s: %v (%.0f requests/s)", got, float64(got.OK)/5)
	if got.Failed() > 0 || got.OK == 0 {
		t.Errorf("want every request answered with correct values")
	}

	allSnap, topoSnap := all.Snapshot(), topology.Snapshot()
	for _, addr := range masters {
		a, tp := allSnap[addr], topoSnap[addr]
		t.Logf("master %s: worker connections max %d over %d samples (topology max %d)", addr, a.Max, a.Samples, tp.Max)
		if a.Samples < 10 || a.Errors > 0 {
			t.Errorf("master %s: %d samples, %d failed (%v): the budget was not watched", addr, a.Samples, a.Errors, a.LastErr)
		}
		if limit := workers * (budget + 1); a.Max > limit {
			t.Errorf("master %s: %d worker connections at a sample, the limit is %d × (%d + 1) = %d", addr, a.Max, workers, budget, limit)
		}
	}
	// At rest every worker holds exactly its budget to every master, and
	// one topology connection somewhere.
	topoTotal := 0
	for _, n := range e.cluster.Masters() {
		names := connsByName(t, n)
		t.Logf("master %s at the end: %d data, %d topology connections", n.Addr, names[dataConnName], names[topologyConnName])
		if names[dataConnName] != workers*budget {
			t.Errorf("master %s: %d data connections, want %d × %d", n.Addr, names[dataConnName], workers, budget)
		}
		topoTotal += names[topologyConnName]
	}
	if topoTotal != workers {
		t.Errorf("%d topology connections on the masters, want one per worker (%d)", topoTotal, workers)
	}

	var total int64
	shares := make([]int64, workers)
	for i, w := range ws {
		stopped, exit := w.stop()
		shares[i] = stoppedCounts(t, w.name, stopped, exit)
		total += shares[i]
	}
	t.Logf("requests per worker: %v of %d", shares, total)
	if total != got.Sent {
		t.Errorf("the workers received %d requests, the callers sent %d", total, got.Sent)
	}
	even := float64(total) / workers
	for i, n := range shares {
		if d := float64(n)/even - 1; d < -0.25 || d > 0.25 {
			t.Errorf("worker%d served %d requests, %+.0f%% off an even share of %.0f", i+1, n, 100*d, even)
		}
	}
}

// TestAddingWorkerThroughput measures a Redis-heavy workload (50 entities
// per request) with one worker, then after adding a second one under load.
// Both phases must answer everything correctly; the throughput is only
// logged, since on a small shared machine the second worker competes for
// the same cores as Redis and the callers.
func TestAddingWorkerThroughput(t *testing.T) {
	const entities, phase = 50, 3 * time.Second
	e := newProcEnv(t, featureset.Set{Entities: 5000, Features: 4})
	ws := []*workerProcess{startWorker(t, "worker1", e.args()...)}
	load := startCallers(t, callersConfig{Client: e.client, Set: e.set, Callers: 64, Entities: entities, Timeout: 10 * time.Second})

	measure := func(label string) float64 {
		time.Sleep(500 * time.Millisecond) // warm up
		pids := []int{os.Getpid()}
		for _, w := range ws {
			pids = append(pids, w.cmd.Process.Pid)
		}
		redisPids := redisPids(t, e.cluster)
		cpu0 := cpuSeconds(append(pids, redisPids...))
		before, begin := load.snapshot(), time.Now()
		time.Sleep(phase)
		after, took := load.snapshot(), time.Since(begin)
		cpu1 := cpuSeconds(append(pids, redisPids...))
		rate := float64(after.OK-before.OK) / took.Seconds()
		used := func(pids []int) string {
			var sum float64
			for _, p := range pids {
				sum += cpu1[p] - cpu0[p]
			}
			return fmt.Sprintf("%.2f", sum/took.Seconds())
		}
		t.Logf("%s: %.0f requests/s = %.0f entity lookups/s; cores busy: workers %s, redis %s, test process (callers, NATS) %s",
			label, rate, rate*entities, used(pids[1:]), used(redisPids), used(pids[:1]))
		if after.OK == before.OK || after.Failed() > 0 {
			t.Errorf("%s: %v: want requests answered, all correctly", label, after)
		}
		return rate
	}
	one := measure("1 worker")
	ws = append(ws, startWorker(t, "worker2", e.args()...))
	two := measure("2 workers")
	got := load.finish()
	t.Logf("2 workers / 1 worker = %.2f; in all %v", two/one, got)
	if got.Failed() > 0 {
		t.Errorf("want every request answered with correct values")
	}
}

// TestRollingRestart replaces each of three workers in turn under load,
// starting the replacement before stopping the old one: every request must
// get exactly one correct reply.
func TestRollingRestart(t *testing.T) {
	e := newProcEnv(t, scaleSet)
	old := e.startWorkers(t, 3, "old")
	load := startCallers(t, callersConfig{Client: e.client, Set: e.set, Callers: 64})
	time.Sleep(time.Second)

	var received int64
	var current []*workerProcess
	for i, w := range old {
		current = append(current, startWorker(t, fmt.Sprintf("new%d", i+1), e.args()...))
		time.Sleep(300 * time.Millisecond) // the old one keeps serving meanwhile
		stopped, exit := w.stop()
		received += stoppedCounts(t, w.name, stopped, exit)
		t.Logf("%s replaced: %v", w.name, load.snapshot())
	}
	time.Sleep(500 * time.Millisecond)
	got := load.finish()
	for _, w := range current {
		stopped, exit := w.stop()
		received += stoppedCounts(t, w.name, stopped, exit)
	}
	t.Logf("rolling restart of 3 workers: %v; the 6 workers received %d", got, received)
	if got.Failed() > 0 || got.OK != got.Sent {
		t.Errorf("want every request answered with correct values")
	}
	// Each request was received by exactly one worker: none was lost
	// between two workers, none was served twice.
	if received != got.Sent {
		t.Errorf("the workers received %d requests, the callers sent %d", received, got.Sent)
	}
}

// TestSIGKILL kills one of two workers under load: the requests it held (at
// most one per caller) time out at their callers, and nothing else is lost.
func TestSIGKILL(t *testing.T) {
	const callers, timeout = 64, 2 * time.Second
	e := newProcEnv(t, scaleSet)
	ws := e.startWorkers(t, 2, "worker")
	load := startCallers(t, callersConfig{Client: e.client, Set: e.set, Callers: callers, Timeout: timeout})
	time.Sleep(1500 * time.Millisecond)
	atKill, killedAt := load.snapshot(), time.Now()
	ws[0].kill()
	gone := time.Since(killedAt)
	// Past the timeout, every request the dead worker held has timed out.
	time.Sleep(timeout + time.Second)
	got := load.finish()
	stopped, exit := ws[1].stop()
	survivor := stoppedCounts(t, ws[1].name, stopped, exit)
	first, last := load.lostBetween()
	t.Logf("at SIGKILL: %v; at the end: %v; the survivor received %d", atKill, got, survivor)
	t.Logf("the process was reaped %v after SIGKILL; the requests lost were sent from %v to %v after it",
		gone.Round(time.Millisecond), first.Sub(killedAt).Round(time.Millisecond), last.Sub(killedAt).Round(time.Millisecond))
	if got.Wrong+got.NoResponders+got.ErrReplies+got.Other > 0 {
		t.Errorf("only timeouts may happen when a worker is killed")
	}
	// Each caller has one request in flight: the dead worker held at most
	// that many, and it surely held some under this load.
	if got.Timeouts < 1 || got.Timeouts > callers {
		t.Errorf("%d requests timed out, want between 1 and %d (one per caller)", got.Timeouts, callers)
	}
	if got.OK-atKill.OK < 100 {
		t.Errorf("only %d requests answered after the kill: the survivor did not take over", got.OK-atKill.OK)
	}
}

// TestQueueGroupIsolation runs two groups of workers on one NATS and one
// Redis, with different subjects, queue groups and key prefixes: each
// subject is served by its group only, from its prefix only.
func TestQueueGroupIsolation(t *testing.T) {
	// The two prefixes hold different values for every cell: b's are padded.
	setA, setB := scaleSet, scaleSet
	setB.ValueSize = 16
	cluster := redistest.Start(t, redistest.Options{})
	rdb := cluster.Client(t)
	if err := setA.Seed(context.Background(), rdb, "a:"); err != nil {
		t.Fatal(err)
	}
	if err := setB.Seed(context.Background(), rdb, "b:"); err != nil {
		t.Fatal(err)
	}
	e := &procEnv{cluster: cluster, nats: natstest.Start(t, nil)}
	const subjectB, groupB = "features.b.lookup", "features-b"
	a := e.startWorkers(t, 2, "a", "--key-prefix", "a:")
	b := e.startWorkers(t, 2, "b", "--subject", subjectB, "--queue-group", groupB, "--key-prefix", "b:")
	nc := natstest.Connect(t, e.nats)

	loadA := startCallers(t, callersConfig{Client: &subjects.Client{Conn: nc}, Set: setA, Callers: 16, Entities: 5})
	loadB := startCallers(t, callersConfig{Client: &subjects.Client{Conn: nc, Subject: subjectB}, Set: setB, Callers: 16, Entities: 5})
	time.Sleep(2 * time.Second)
	gotA, gotB := loadA.finish(), loadB.finish()
	t.Logf("group A: %v; group B: %v", gotA, gotB)
	if gotA.Failed() > 0 || gotA.OK == 0 || gotB.Failed() > 0 || gotB.OK == 0 {
		t.Errorf("want every request of both groups answered with its own group's values")
	}

	// Every worker reports its own requests only. The counters are bumped
	// just after a reply is sent, so wait for them to catch up.
	want := map[string]int64{subjects.QueueGroup: gotA.Sent, groupB: gotB.Sent}
	var stats []micro.Stats
	deadline := time.Now().Add(5 * time.Second)
	for {
		stats = serviceStats(t, nc)
		sums := map[string]int64{}
		for _, s := range stats {
			for _, ep := range s.Endpoints {
				sums[ep.QueueGroup] += int64(ep.NumRequests)
			}
		}
		if len(stats) == len(a)+len(b) && fmt.Sprint(sums) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests per queue group in $SRV.STATS: %v from %d workers, want %v from %d", sums, len(stats), want, len(a)+len(b))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, s := range stats {
		ep := s.Endpoints[0]
		t.Logf("worker %s: %s in %s, %d requests", s.ID, ep.Subject, ep.QueueGroup, ep.NumRequests)
		wantSubject := map[string]string{subjects.QueueGroup: subjects.Lookup, groupB: subjectB}[ep.QueueGroup]
		if len(s.Endpoints) != 1 || ep.Subject != wantSubject || ep.NumRequests == 0 {
			t.Errorf("worker %s: endpoints %+v, want one on %s with requests", s.ID, s.Endpoints, wantSubject)
		}
	}
}

// serviceStats asks every worker for its $SRV.STATS and returns the replies
// that come within half a second.
func serviceStats(t *testing.T, nc *nats.Conn) []micro.Stats {
	t.Helper()
	subject, err := micro.ControlSubject(micro.StatsVerb, worker.ServiceName, "")
	if err != nil {
		t.Fatal(err)
	}
	var out []micro.Stats
	for _, msg := range natstest.Gather(t, nc, subject, 500*time.Millisecond) {
		var s micro.Stats
		if err := json.Unmarshal(msg.Data, &s); err != nil {
			t.Fatalf("decoding %s reply: %v", subject, err)
		}
		out = append(out, s)
	}
	return out
}

// sampleConns samples the connections named with prefix on addrs every
// 20ms until the returned sampler is closed (at the latest when the test
// ends).
func sampleConns(t *testing.T, addrs []string, prefix string) *redisconns.Sampler {
	s := redisconns.NewSampler(redisconns.SamplerConfig{Addrs: addrs, NamePrefix: prefix, Interval: 20 * time.Millisecond})
	go s.Run(context.Background())
	t.Cleanup(func() { s.Close() })
	return s
}

// connsByName counts n's connections by client name, from one CLIENT LIST.
func connsByName(t *testing.T, n *redistest.Node) map[string]int {
	t.Helper()
	list, err := n.Client().ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST on %s: %v", n.Addr, err)
	}
	clients, err := redisconns.Parse(list)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, c := range clients {
		names[c.Name]++
	}
	return names
}

// redisPids returns the process ids of the cluster's masters.
func redisPids(t *testing.T, c *redistest.Cluster) []int {
	t.Helper()
	var pids []int
	for _, n := range c.Masters() {
		pid, err := n.Client().InfoMap(context.Background(), "server").Result()
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(pid["Server"]["process_id"])
		pids = append(pids, p)
	}
	return pids
}

// cpuSeconds returns the CPU time (user and system) each process has used,
// from /proc/PID/stat, in clock ticks of 1/100 s (the Linux USER_HZ). It is
// for logging only: a process it cannot read counts as zero.
func cpuSeconds(pids []int) map[int]float64 {
	out := make(map[int]float64, len(pids))
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name in parentheses: the 3rd field
		// (state) first, so utime and stime (14th, 15th) are at 11 and 12.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		user, _ := strconv.ParseFloat(f[11], 64)
		sys, _ := strconv.ParseFloat(f[12], 64)
		out[pid] = (user + sys) / 100
	}
	return out
}
