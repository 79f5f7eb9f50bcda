package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/featurestore/featureworker/internal/baseline"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats.go"
)

// strategyBatched is the default --strategy: package worker, which batches
// every request in flight into one pipeline per node. The other strategies
// are the baselines of internal/baseline, there to be benchmarked against.
const strategyBatched = "batched"

func strategies() []string { return append([]string{strategyBatched}, baseline.Names()...) }

const strategyUsage = "how requests are answered: batched (the worker), or for benchmarks only " +
	"echo (no Redis), per-request (a go-redis pipeline per request) or naive (an HGET per entity and feature)"

// strategyFlag is the flag.Value of --strategy, bound to a Main's Strategy.
// It accepts only a known strategy, so that a typo fails at start-up.
type strategyFlag struct{ p *string }

func (f strategyFlag) String() string {
	if f.p == nil || *f.p == "" {
		return strategyBatched
	}
	return *f.p
}

func (f strategyFlag) Set(v string) error {
	if !slices.Contains(strategies(), v) {
		return fmt.Errorf("unknown strategy %q: want one of %s", v, strings.Join(strategies(), ", "))
	}
	*f.p = v
	return nil
}

// startStrategy starts serving on nc with m.Strategy.
func (m *Main) startStrategy(ctx context.Context, nc *nats.Conn) error {
	var err error
	if m.Strategy == "" || m.Strategy == strategyBatched {
		m.w, err = worker.Start(ctx, nc, m.Config)
	} else {
		m.baseline, err = baseline.Start(ctx, nc, m.Strategy, m.Config)
	}
	return err
}

// shutdownStrategy drains whichever strategy Run started.
func (m *Main) shutdownStrategy(ctx context.Context) error {
	switch {
	case m.w != nil:
		return m.w.Shutdown(ctx)
	case m.baseline != nil:
		return m.baseline.Shutdown(ctx)
	}
	return nil
}
