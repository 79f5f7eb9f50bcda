package worker_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/internal/redistest"
	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// set is the data every test reads: 600 entities of 4 features.
var set = featureset.Set{Entities: 600, Features: 4}

const (
	seeded      = 600
	numFeatures = 4
)

var (
	entity  = featureset.Entity
	feature = featureset.Feature
)

func want(i, j int) *string { return set.Value(i, j) }

func names(f func(int) string, ids ...int) []string { return featureset.Names(f, ids) }

func checkRows(ids, fs []int, got [][]*string) error { return set.Check(ids, fs, got) }

// env is a Redis Cluster with the feature set, a NATS server, and a worker.
type env struct {
	cluster *redistest.Cluster
	nats    *server.Server
	nc      *nats.Conn
	worker  *worker.Worker
	client  *subjects.Client
	cfg     worker.Config
}

// newEnv starts everything; cfg's RedisAddrs are filled in. The worker is
// shut down when the test ends.
func newEnv(tb testing.TB, cfg worker.Config) *env {
	tb.Helper()
	e := &env{cluster: redistest.Start(tb, redistest.Options{})}
	if err := set.Seed(context.Background(), e.cluster.Client(tb), cfg.KeyPrefix); err != nil {
		tb.Fatal(err)
	}
	e.nats = natstest.Start(tb, nil)
	cfg.RedisAddrs = e.cluster.Addrs()[:1]
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e.cfg = cfg
	e.startWorker(tb)
	e.client = &subjects.Client{Conn: natstest.Connect(tb, e.nats), Timeout: 5 * time.Second}
	return e
}

func (e *env) startWorker(tb testing.TB) {
	tb.Helper()
	e.nc = natstest.Connect(tb, e.nats)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := worker.Start(ctx, e.nc, e.cfg)
	if err != nil {
		tb.Fatalf("starting worker: %v", err)
	}
	e.worker = w
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			tb.Errorf("worker shutdown: %v", err)
		}
	})
}
