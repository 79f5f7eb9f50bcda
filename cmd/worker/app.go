package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/featurestore/featureworker/internal/baseline"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats.go"
	"github.com/sethvargo/go-retry"
)

// Main is the worker program: its configuration, then Run and Close. Tests
// drive it directly, so everything main does is here.
type Main struct {
	Config          worker.Config
	NATSURL         string
	NATSOptions     []nats.Option // added to the defaults, for tests and auth
	StartupTimeout  time.Duration // how long Run retries NATS and Redis
	ShutdownTimeout time.Duration // how long Close may take
	MetricsAddr     string        // serve Prometheus /metrics here; empty means off
	PprofAddr       string        // serve /debug/pprof here; empty means off
	Logger          *slog.Logger
	Strategy        string // --strategy; empty means batched (see strategy.go)

	nc          *nats.Conn
	w           *worker.Worker
	baseline    *baseline.Server // instead of w, for a baseline --strategy
	stopObserve func(context.Context) error
	metricsURL  string
	health      atomic.Pointer[func() error] // set once serving, for /healthz
}

// NewMain returns a Main with the defaults the flags have.
func NewMain() *Main {
	return &Main{
		NATSURL:         nats.DefaultURL,
		StartupTimeout:  30 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		Logger:          slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	}
}

// Run connects to NATS and Redis, retrying both for StartupTimeout, and
// starts serving. It returns once the worker is subscribed.
func (m *Main) Run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, m.StartupTimeout)
	defer cancel()
	m.Config.Logger = m.Logger
	if err := m.Config.Validate(); err != nil {
		return err
	}
	var err error
	if m.stopObserve, err = m.startObservability(ctx); err != nil {
		return err
	}
	nc, err := m.connectNATS(ctx)
	if err != nil {
		return err
	}
	m.nc = nc
	if err = m.startStrategy(ctx, nc); err != nil {
		nc.Close()
		return fmt.Errorf("starting on Redis %v: %w", m.Config.RedisAddrs, err)
	}
	health := func() error { return nil } // a baseline is ready once started
	if m.w != nil {
		health = m.w.Health
	}
	m.health.Store(&health)
	return nil
}

// connectNATS dials with backoff until it connects or ctx ends. Once
// connected, nats.go reconnects by itself for as long as the process runs.
func (m *Main) connectNATS(ctx context.Context) (*nats.Conn, error) {
	log := m.Logger
	opts := append([]nats.Option{
		nats.Name("features-worker"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// No reconnect buffer (-1; 0 would mean the 8MB default): while
		// disconnected a reply fails to publish at once and its request is
		// freed, instead of being flushed after the reconnect to callers
		// that gave up long ago, a stale flood competing with fresh
		// traffic. Replies are only worth anything within the request's
		// deadline. Asserted by TestFaults/NATSRestart in package worker.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close at shutdown
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) && sub != nil {
				dropped, _ := sub.Dropped()
				log.Error("slow consumer: NATS dropped requests", "subject", sub.Subject, "dropped_total", dropped)
				return
			}
			log.Error("nats async error", "err", err)
		}),
	}, m.NATSOptions...)
	var nc *nats.Conn
	var lastErr error
	err := retry.Do(ctx, retry.WithCappedDuration(2*time.Second, retry.NewExponential(100*time.Millisecond)), func(ctx context.Context) error {
		var err error
		if nc, err = nats.Connect(m.NATSURL, opts...); err != nil {
			log.Warn("cannot connect to NATS yet", "url", m.NATSURL, "err", err)
			lastErr = err
			return retry.RetryableError(err)
		}
		return nil
	})
	if err != nil {
		if lastErr != nil {
			// retry.Do gives up with ctx's error alone; why the server
			// refused (authorization, TLS) is what the operator needs.
			err = fmt.Errorf("%w; last attempt: %w", err, lastErr)
		}
		return nil, fmt.Errorf("connecting to NATS at %s: %w", m.NATSURL, err)
	}
	return nc, nil
}

// Close drains the worker, answering every accepted request, then closes
// Redis and NATS, all within ShutdownTimeout.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.ShutdownTimeout)
	defer cancel()
	err := m.shutdownStrategy(ctx)
	if m.nc != nil {
		m.nc.Close()
	}
	if m.stopObserve != nil {
		err = errors.Join(err, m.stopObserve(ctx)) // flushes the last spans
	}
	return err
}

// Worker is the running worker, for tests.
func (m *Main) Worker() *worker.Worker { return m.w }

// MetricsURL is where /metrics is served, once Run has returned.
func (m *Main) MetricsURL() string { return m.metricsURL }
