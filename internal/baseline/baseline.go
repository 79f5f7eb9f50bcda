// Package baseline holds the strategies the worker is measured against.
// Each serves the same subject, queue group and wire contract as package
// worker (subjects.DecodeRequest, the same reply body, the same error
// headers and codes), but answers in a simpler way, so that a benchmark
// shows what batching buys and what it costs:
//
//   - Echo answers without touching Redis: the ceiling that NATS and JSON
//     allow on this machine.
//   - PerRequest sends each request as one go-redis cluster pipeline (an
//     HMGET per entity) over the worker's connection budget.
//   - Naive sends one HGET per entity and feature, each its own round trip,
//     on a go-redis cluster client with default options: the connection
//     and round-trip pattern the worker exists to prevent.
//
// They are benchmarks' yardsticks, not products: no tracing, metrics or
// service discovery, and no retries beyond what go-redis does by itself.
package baseline

import (
	"context"
	"fmt"
	"strings"

	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats.go"
)

// Names of the baselines, as the worker's --strategy flag takes them.
const (
	Echo       = "echo"
	PerRequest = "per-request"
	Naive      = "naive"
)

// Strategy answers decoded requests from wherever it gets its values.
type Strategy interface {
	// Lookup returns one row per entity and one cell per feature, in
	// request order, nil where there is no value. An error that is not a
	// *subjects.Error is reported as a 504 if ctx has ended by then, and
	// as a 503 (Redis unavailable) otherwise.
	Lookup(ctx context.Context, req *subjects.LookupRequest) ([][]*string, error)
	// Close releases the strategy's connections. No Lookup runs then.
	Close() error
}

// kind is how to build a strategy and how to call it.
type kind struct {
	open func(ctx context.Context, cfg worker.Config) (Strategy, error)
	// inline strategies never block: the NATS handler calls them itself,
	// with a context that has no deadline. The others get a goroutine and
	// a context that ends at the request's deadline.
	inline bool
}

var kinds = map[string]kind{
	Echo:       {open: openEcho, inline: true},
	PerRequest: {open: openPerRequest},
	Naive:      {open: openNaive},
}

// Names lists every baseline, in the order benchmarks show them.
func Names() []string { return []string{Echo, Naive, PerRequest} }

// Start builds the baseline called name from cfg (the worker's own
// configuration: subject, queue group, Redis addresses and options,
// ConnsPerNode, KeyPrefix, Limits, MaxPending, RequestTimeout, Logger) and
// subscribes it on nc. It retries Redis until ctx ends. nc stays the
// caller's: Shutdown does not close it.
func Start(ctx context.Context, nc *nats.Conn, name string, cfg worker.Config) (*Server, error) {
	k, ok := kinds[name]
	if !ok {
		return nil, fmt.Errorf("unknown baseline %q: want one of %s", name, strings.Join(Names(), ", "))
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	s, err := k.open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", name, err)
	}
	srv, err := serve(nc, name, cfg, s, k.inline)
	if err != nil {
		s.Close()
		return nil, err
	}
	return srv, nil
}
