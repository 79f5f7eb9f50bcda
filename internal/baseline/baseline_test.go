package baseline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
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

var set = featureset.Set{Entities: 300, Features: 4}

const prefix = "fs:"

// env is a seeded cluster and a NATS server that the subtests share.
type env struct {
	cluster *redistest.Cluster
	nats    *server.Server
	client  *subjects.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{cluster: redistest.Start(t, redistest.Options{}), nats: natstest.Start(t, nil)}
	if err := set.Seed(context.Background(), e.cluster.Client(t), prefix); err != nil {
		t.Fatal(err)
	}
	e.client = &subjects.Client{Conn: natstest.Connect(t, e.nats), Timeout: 5 * time.Second}
	return e
}

// config is the worker configuration the baselines are started with.
func (e *env) config() worker.Config {
	return worker.Config{
		RedisAddrs:   e.cluster.Addrs()[:1],
		ConnsPerNode: 2,
		KeyPrefix:    prefix,
		Limits:       subjects.Limits{MaxEntities: 50, MaxFeatures: 10},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// start runs the baseline called name until the test ends.
func (e *env) start(t *testing.T, name string, cfg worker.Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Start(ctx, natstest.Connect(t, e.nats), name, cfg)
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("%s shutdown: %v", name, err)
		}
	})
	return s
}

// TestBaselines checks that every baseline keeps the wire contract: right
// values (echo: its placeholder), and the worker's error codes.
func TestBaselines(t *testing.T) {
	e := newEnv(t)
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			e.start(t, name, e.config())
			e.testValues(t, name)
			e.testErrors(t)
		})
	}
	t.Run("unknown", func(t *testing.T) {
		_, err := Start(context.Background(), natstest.Connect(t, e.nats), "batched", e.config())
		if err == nil || !strings.Contains(err.Error(), "unknown baseline") {
			t.Fatalf("Start(batched) = %v, want an unknown baseline error", err)
		}
	})
}

func (e *env) testValues(t *testing.T, name string) {
	ctx := context.Background()
	for _, tc := range []struct {
		ids, fs []int
	}{
		{[]int{1}, []int{0, 1, 2, 3}},
		{[]int{7, set.Entities + 5}, []int{0, 3}}, // a missing field and a missing entity
		{[]int{0, 11, 22, 33, 44, 55, 66, 77, 88, 99}, []int{3, 1, 0, 2}},
	} {
		got, err := e.client.Lookup(ctx, featureset.Names(featureset.Entity, tc.ids), featureset.Names(featureset.Feature, tc.fs))
		if err != nil {
			t.Fatalf("lookup %v × %v: %v", tc.ids, tc.fs, err)
		}
		if name == Echo {
			err = checkEcho(len(tc.ids), len(tc.fs), got)
		} else {
			err = set.Check(tc.ids, tc.fs, got)
		}
		if err != nil {
			t.Errorf("lookup %v × %v: %v", tc.ids, tc.fs, err)
		}
	}
}

func checkEcho(rows, cells int, got [][]*string) error {
	if len(got) != rows {
		return errors.New("wrong number of rows")
	}
	for _, row := range got {
		if len(row) != cells {
			return errors.New("wrong number of cells")
		}
		for _, c := range row {
			if c == nil || *c != echoValue {
				return errors.New("a cell is not the echo value")
			}
		}
	}
	return nil
}

func (e *env) testErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		timeout string
		code    int
	}{
		{"bad JSON", `{"entities":`, "", subjects.CodeBadRequest},
		{"duplicate", `{"entities":["e:1","e:1"],"features":["f0"]}`, "", subjects.CodeBadRequest},
		{"too many features", `{"entities":["e:1"],"features":["a","b","c","d","e","f","g","h","i","j","k"]}`, "", subjects.CodeTooLarge},
		{"bad timeout header", `{"entities":["e:1"],"features":["f0"]}`, "soon", subjects.CodeBadRequest},
	} {
		msg := nats.NewMsg(subjects.Lookup)
		msg.Data = []byte(tc.body)
		if tc.timeout != "" {
			msg.Header.Set(subjects.HeaderRequestTimeout, tc.timeout)
		}
		reply, err := e.client.Conn.RequestMsg(msg, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, err = subjects.DecodeReply(reply)
		var se *subjects.Error
		if !errors.As(err, &se) || se.Code != tc.code || se.Message == "" {
			t.Errorf("%s: got %v, want a %d", tc.name, err, tc.code)
		}
		if !strings.Contains(string(reply.Data), `{"error":{"code":`) {
			t.Errorf("%s: body %s, want an error reply body", tc.name, reply.Data)
		}
	}
}

// TestDeadline: a request whose deadline passes before Redis can answer
// gets a 504, not a late reply.
func TestDeadline(t *testing.T) {
	e := newEnv(t)
	e.start(t, PerRequest, e.config())
	msg := nats.NewMsg(subjects.Lookup)
	msg.Data = []byte(`{"entities":["e:1"],"features":["f0"]}`)
	msg.Header.Set(subjects.HeaderRequestTimeout, "1ns")
	reply, err := e.client.Conn.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := subjects.DecodeReply(reply); !errors.Is(err, subjects.ErrTimeout) {
		t.Fatalf("got %v, want a 504", err)
	}
}

// TestConnections loads per-request and naive with 64 callers of 10
// entities while sampling CLIENT LIST: per-request must hold the budget,
// and naive, which has none, must go past it (else it shows nothing).
func TestConnections(t *testing.T) {
	e := newEnv(t)
	var addrs []string
	for _, n := range e.cluster.Masters() {
		addrs = append(addrs, n.Addr)
	}
	for _, name := range []string{PerRequest, Naive} {
		t.Run(name, func(t *testing.T) {
			cfg := e.config()
			cfg.Redis.ClientName = "baseline-" + name // apart from the other subtest's closing connections
			s := e.start(t, name, cfg)
			sampler := redisconns.NewSampler(redisconns.SamplerConfig{
				Addrs: addrs, NamePrefix: cfg.Redis.ClientName, Interval: 20 * time.Millisecond,
			})
			defer sampler.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			go sampler.Run(ctx)
			n := e.load(t, ctx, 64)
			sampler.Close()
			peak := 0
			for addr, st := range sampler.Snapshot() {
				t.Logf("%s: %d samples, connections min %d max %d", addr, st.Samples, st.Min, st.Max)
				peak = max(peak, st.Max)
			}
			t.Logf("%s: %d requests in 3s, peak %d connections per node", name, n, peak)
			switch {
			case name == PerRequest && peak > cfg.ConnsPerNode:
				t.Errorf("per-request: %d connections on a node, budget %d", peak, cfg.ConnsPerNode)
			case name == PerRequest && peak < 1:
				t.Errorf("per-request: no connection seen: the sampler is blind")
			case name == Naive && peak <= cfg.ConnsPerNode:
				t.Errorf("naive: at most %d connections per node, want more than the budget %d", peak, cfg.ConnsPerNode)
			}
			if got := s.replied.Load(); got < uint64(n) {
				t.Errorf("%d requests answered by the callers' count, the server counts %d", n, got)
			}
		})
	}
}

// load runs callers that each send requests of 10 distinct entities until
// ctx ends, checking every reply, and returns how many succeeded.
func (e *env) load(t *testing.T, ctx context.Context, callers int) int {
	t.Helper()
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			ok := 0
			for k := g; ctx.Err() == nil; k += callers {
				ids := make([]int, 10)
				for i := range ids {
					ids[i] = (k*10 + i) % set.Entities
				}
				fs := []int{0, 1, 2, 3}
				got, err := e.client.Lookup(context.Background(), featureset.Names(featureset.Entity, ids), featureset.Names(featureset.Feature, fs))
				if err == nil {
					err = set.Check(ids, fs, got)
				}
				if err != nil {
					t.Errorf("lookup %v: %v", ids, err)
					return
				}
				ok++
			}
			mu.Lock()
			total += ok
			mu.Unlock()
		})
	}
	wg.Wait()
	return total
}

// blocker is a strategy that answers once released, to hold requests in
// flight.
type blocker struct{ release chan struct{} }

func (b blocker) Lookup(ctx context.Context, req *subjects.LookupRequest) ([][]*string, error) {
	select {
	case <-b.release:
		return echo{}.Lookup(ctx, req)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (blocker) Close() error { return nil }

// TestOverloadAndShutdown: beyond MaxPending a request gets a 503 at once;
// Shutdown answers what it accepted before it returns.
func TestOverloadAndShutdown(t *testing.T) {
	ns := natstest.Start(t, nil)
	b := blocker{release: make(chan struct{})}
	cfg := worker.Config{MaxPending: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}.WithDefaults()
	s, err := serve(natstest.Connect(t, ns), "blocker", cfg, b, false)
	if err != nil {
		t.Fatal(err)
	}
	client := &subjects.Client{Conn: natstest.Connect(t, ns), Timeout: 10 * time.Second}
	first := make(chan error, 1)
	go func() {
		_, err := client.Lookup(context.Background(), []string{"e:1"}, []string{"f0"})
		first <- err
	}()
	for s.pending.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	_, err = client.Lookup(context.Background(), []string{"e:2"}, []string{"f0"})
	if !errors.Is(err, subjects.ErrUnavailable) || !strings.Contains(err.Error(), "overloaded") || time.Since(start) > 2*time.Second {
		t.Fatalf("second request: %v after %v, want an immediate 503 overloaded", err, time.Since(start))
	}
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(b.release)
	if err := <-first; err != nil {
		t.Errorf("the accepted request: %v", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
