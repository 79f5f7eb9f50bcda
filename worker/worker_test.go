package worker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/redisconns"
	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// TestLookup runs the read-only scenarios against one cluster and worker.
func TestLookup(t *testing.T) {
	e := newEnv(t, worker.Config{
		KeyPrefix: "fs:",
		Limits:    subjects.Limits{MaxEntities: 100, MaxFeatures: 10},
	})
	t.Run("Values", e.testValues)
	t.Run("ErrorCodes", e.testErrorCodes)
	t.Run("Concurrent5000", e.testConcurrent5000)
	t.Run("Batching", e.testBatching)
}

func (e *env) testValues(t *testing.T) {
	ctx := context.Background()
	// 60 seeded entities hash to every master; seeded+3 does not exist.
	ids := make([]int, 0, 61)
	masters := map[string]bool{}
	for i := range 60 {
		ids = append(ids, i)
		masters[e.cluster.SlotOwner(t, "fs:"+entity(i)).Addr] = true
	}
	ids = append(ids, seeded+3)
	if len(masters) != len(e.cluster.Masters()) {
		t.Fatalf("test entities reach %d masters of %d", len(masters), len(e.cluster.Masters()))
	}
	for _, tc := range []struct {
		name     string
		ids      []int
		features []int
	}{
		{"one entity", []int{1}, []int{0, 1, 2, 3}},
		{"missing entity", []int{seeded + 3}, []int{0}},
		{"missing field", []int{7}, []int{0}}, // (7+0)%7 == 0
		{"all masters, reordered features", ids, []int{3, 1, 0, 2}},
		{"unknown feature", []int{2, 3}, []int{0, 9}},
	} {
		got, err := e.client.Lookup(ctx, names(entity, tc.ids...), names(feature, tc.features...))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if err := checkRows(tc.ids, tc.features, got); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// The prefix is applied: the unprefixed key is not what is read.
	if err := e.cluster.Client(t).HSet(ctx, entity(1), "f0", "outside").Err(); err != nil {
		t.Fatal(err)
	}
	got, err := e.client.Lookup(ctx, []string{entity(1)}, []string{"f0"})
	if err != nil || got[0][0] == nil || *got[0][0] != *want(1, 0) {
		t.Fatalf("prefixed lookup: %v, %v", got, err)
	}
}

func (e *env) testErrorCodes(t *testing.T) {
	many := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = strconv.Quote("x" + strconv.Itoa(i))
		}
		return "[" + strings.Join(s, ",") + "]"
	}
	tests := []struct {
		name, body, timeout string
		code                int
	}{
		{"not JSON", `{"entities":`, "", 400},
		{"wrong type", `{"entities":"user:1","features":["f0"]}`, "", 400},
		{"number in list", `{"entities":[1],"features":["f0"]}`, "", 400},
		{"missing entities", `{"features":["f0"]}`, "", 400},
		{"empty entities", `{"entities":[],"features":["f0"]}`, "", 400},
		{"empty features", `{"entities":["user:1"],"features":[]}`, "", 400},
		{"empty string", `{"entities":[""],"features":["f0"]}`, "", 400},
		{"null entity", `{"entities":[null],"features":["f0"]}`, "", 400},
		{"bad timeout header", `{"entities":["user:1"],"features":["f0"]}`, "soon", 400},
		{"negative timeout", `{"entities":["user:1"],"features":["f0"]}`, "-1s", 400},
		{"too many entities", `{"entities":` + many(101) + `,"features":["f0"]}`, "", 413},
		{"too many features", `{"entities":["user:1"],"features":` + many(11) + `}`, "", 413},
		{"deadline passed", `{"entities":["user:1"],"features":["f0"]}`, "1ns", 504},
	}
	for _, tc := range tests {
		msg := nats.NewMsg(subjects.Lookup)
		msg.Data = []byte(tc.body)
		if tc.timeout != "" {
			msg.Header.Set(subjects.HeaderRequestTimeout, tc.timeout)
		}
		reply, err := e.client.Conn.RequestMsg(msg, 5*time.Second)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var se *subjects.Error
		if _, err := subjects.DecodeReply(reply); !errors.As(err, &se) || se.Code != tc.code || se.Message == "" {
			t.Errorf("%s: got %v, want code %d with a message", tc.name, err, tc.code)
			continue
		}
		if !strings.Contains(string(reply.Data), fmt.Sprintf(`{"error":{"code":%d,"message":`, tc.code)) {
			t.Errorf("%s: body %s lacks the error object", tc.name, reply.Data)
		}
	}
}

func (e *env) testConcurrent5000(t *testing.T) {
	const n = 5000
	var wg sync.WaitGroup
	var failed atomic.Int64
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := []int{k % (seeded + 50), (k * 7) % seeded}
			if ids[0] == ids[1] {
				ids = ids[:1]
			}
			fs := []int{k % numFeatures, (k + 1) % numFeatures}
			got, err := e.client.Lookup(context.Background(), names(entity, ids...), names(feature, fs...))
			if err == nil {
				err = checkRows(ids, fs, got)
			}
			if err != nil && failed.Add(1) <= 5 {
				t.Errorf("request %d: %v", k, err)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d concurrent requests failed", f, n)
	}
}

// load sends lookups from inFlight goroutines until ctx ends, checking every
// reply, and returns how many succeeded. Any failure is reported on t.
func (e *env) load(t *testing.T, ctx context.Context, inFlight int, ids func(r *rand.Rand) []int) int64 {
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	fs := []int{0, 1, 2, 3}
	for g := range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for ctx.Err() == nil {
				want := ids(r)
				got, err := e.client.Lookup(context.Background(), names(entity, want...), names(feature, fs...))
				if err == nil {
					err = checkRows(want, fs, got)
				}
				if err != nil {
					if failed.Add(1) <= 5 {
						t.Errorf("lookup %v: %v", want, err)
					}
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return ok.Load()
}

// distinct picks k different ids below n: a request may not repeat one.
func distinct(n, k int) func(r *rand.Rand) []int {
	return func(r *rand.Rand) []int {
		ids := make([]int, 0, k)
		for len(ids) < k {
			if i := r.IntN(n); !slices.Contains(ids, i) {
				ids = append(ids, i)
			}
		}
		return ids
	}
}

func (e *env) testBatching(t *testing.T) {
	before := e.worker.Stats().Pool
	readsBefore := e.redisReads(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	requests := e.load(t, ctx, 256, distinct(seeded, 1))
	after := e.worker.Stats().Pool
	reads := e.redisReads(t) - readsBefore
	pipelines := after.Pipelines - before.Pipelines
	t.Logf("%d requests in %d pipelines (%.1f per pipeline); Redis processed %d reads",
		requests, pipelines, float64(requests)/float64(pipelines), reads)
	if requests < 1000 {
		t.Fatalf("only %d requests in 2s", requests)
	}
	if pipelines*4 > uint64(requests) {
		t.Errorf("%d pipelines for %d requests: not batching", pipelines, requests)
	}
	// Redis's own count of socket reads confirms it: one read serves many
	// requests.
	if reads*2 > requests {
		t.Errorf("Redis processed %d reads for %d requests: not batching", reads, requests)
	}
}

// redisReads sums INFO stats total_reads_processed over the masters.
func (e *env) redisReads(t *testing.T) int64 {
	t.Helper()
	var sum int64
	for _, n := range e.cluster.Masters() {
		info, err := n.Client().Info(context.Background(), "stats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "total_reads_processed:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				sum += n
			}
		}
	}
	return sum
}

// TestConnectionBudget saturates a worker for 10s while sampling CLIENT
// LIST on every master: Redis must never see more than the budget plus one
// topology connection from it.
func TestConnectionBudget(t *testing.T) {
	const budget = 2
	e := newEnv(t, worker.Config{ConnsPerNode: budget})
	var addrs []string
	for _, n := range e.cluster.Masters() {
		addrs = append(addrs, n.Addr)
	}
	sampler := redisconns.NewSampler(redisconns.SamplerConfig{
		Addrs: addrs, NamePrefix: worker.DefaultClientName, Interval: 20 * time.Millisecond,
	})
	defer sampler.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go sampler.Run(ctx)
	requests := e.load(t, ctx, 512, distinct(seeded, 3))
	t.Logf("%d requests of 3 entities in 10s", requests)
	for addr, s := range sampler.Snapshot() {
		t.Logf("%s: %d samples, connections min %d max %d", addr, s.Samples, s.Min, s.Max)
		if s.Samples < 100 {
			t.Errorf("%s: only %d samples", addr, s.Samples)
		}
		if s.Max > budget+1 {
			t.Errorf("%s: %d connections from the worker, budget %d + 1", addr, s.Max, budget)
		}
		if s.Min < budget {
			t.Errorf("%s: as few as %d connections: the sampler or the pool is broken", addr, s.Min)
		}
	}
	if s := e.worker.Stats().Pool; s.Dials != uint64(budget*len(addrs)) {
		t.Errorf("%d dials under load, want %d: connections were replaced", s.Dials, budget*len(addrs))
	}
}

// TestOverload fills MaxPending while Redis is paused: the excess gets an
// immediate 503, the accepted requests are answered once Redis resumes.
func TestOverload(t *testing.T) {
	const maxPending = 8
	e := newEnv(t, worker.Config{MaxPending: maxPending})
	for _, n := range e.cluster.Masters() {
		if err := n.Client().Do(context.Background(), "CLIENT", "PAUSE", "3000", "ALL").Err(); err != nil {
			t.Fatal(err)
		}
	}
	var ok, overloaded, other atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for k := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := e.client.Lookup(ctx, []string{entity(k)}, []string{feature(1)})
			switch {
			case err == nil && checkRows([]int{k}, []int{1}, got) == nil:
				ok.Add(1)
			case errors.Is(err, subjects.ErrUnavailable) && strings.Contains(err.Error(), "overloaded"):
				if time.Since(start) > 2*time.Second {
					t.Errorf("503 after %v: not at once", time.Since(start))
				}
				overloaded.Add(1)
			default:
				other.Add(1)
				t.Errorf("request %d: %v %v", k, got, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("ok %d, overloaded %d, other %d; worker %+v", ok.Load(), overloaded.Load(), other.Load(), e.worker.Stats())
	if ok.Load() < 1 || ok.Load() > maxPending || ok.Load()+overloaded.Load() != 40 {
		t.Fatalf("want at most %d answered and the rest 503", maxPending)
	}
	if _, err := e.client.Lookup(context.Background(), []string{entity(1)}, []string{feature(1)}); err != nil {
		t.Fatalf("after the overload: %v", err)
	}
}

// TestSlotMigration moves the slot that holds every key (the prefix is a
// hash tag) to another master while lookups flow: every reply stays
// correct, through ASK during the move and MOVED after it.
func TestSlotMigration(t *testing.T) {
	e := newEnv(t, worker.Config{KeyPrefix: "{mig}:"})
	from := e.cluster.SlotOwner(t, "{mig}:"+entity(0))
	var to = e.cluster.Masters()[0]
	if to.Addr == from.Addr {
		to = e.cluster.Masters()[1]
	}
	slot := e.cluster.KeySlot(t, "{mig}:"+entity(0))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int64)
	go func() {
		done <- e.load(t, ctx, 32, distinct(seeded+20, 2))
	}()
	time.Sleep(300 * time.Millisecond)
	e.cluster.MoveSlot(t, slot, to)
	time.Sleep(300 * time.Millisecond)
	cancel()
	requests := <-done
	retries := e.worker.Stats().Pool.Retries
	t.Logf("%d correct lookups; retries %v", requests, retries)
	if retries[worker.ReasonMoved]+retries[worker.ReasonAsk] == 0 {
		t.Fatalf("the worker saw no MOVED or ASK: the slot did not move under load")
	}
	if got := e.cluster.SlotOwner(t, "{mig}:"+entity(0)); got.Addr != to.Addr {
		t.Fatalf("slot %d is on %s, want %s", slot, got.Addr, to.Addr)
	}
	var rdb *redis.ClusterClient = e.cluster.Client(t)
	if v, err := rdb.HGet(context.Background(), "{mig}:"+entity(1), feature(1)).Result(); err != nil || v != *want(1, 1) {
		t.Fatalf("data after the move: %q, %v", v, err)
	}
}
