package redisconns

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultInterval is the sampling interval when SamplerConfig.Interval is zero.
const DefaultInterval = 100 * time.Millisecond

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("redisconns: sampler closed")

// SamplerConfig configures a Sampler.
type SamplerConfig struct {
	// Addrs are the nodes to sample, "host:port". Duplicates are sampled once.
	Addrs []string

	// NamePrefix selects the connections counted: those whose client name
	// starts with it ("" counts every connection but the ones never counted;
	// see the package documentation).
	NamePrefix string

	// Interval is the time between two samples of one node; zero means
	// DefaultInterval. Each sample is one CLIENT LIST, which costs the server
	// O(connections), so keep it well above a millisecond.
	Interval time.Duration

	// Username and Password authenticate the sampler's connections, if the
	// nodes require it.
	Username, Password string

	// OnSample, if set, is called after every successful sample with the
	// node's address and the count, from the goroutine that sampled that
	// node: calls for one node are sequential, calls for different nodes are
	// concurrent. It must not block for long, as it delays that node's next
	// sample. A load generator can use it to build a time series.
	OnSample func(addr string, n int)
}

// NodeStats summarises the samples of one node. Min, Max and Last cover the
// successful samples only and are zero while Samples is zero.
type NodeStats struct {
	Min, Max, Last int   // counts of matching connections
	Samples        int   // successful samples
	Errors         int   // failed samples (node down, timeout, bad reply)
	LastErr        error // the most recent failure, nil if none yet
}

// Sampler polls CLIENT LIST on a fixed set of nodes at a fixed interval and
// records, per node, the minimum, maximum and last number of connections
// whose name has the configured prefix.
//
// Max is a lower bound of the true peak, not the peak: a connection that
// opens and closes between two samples is never seen. Sample more often, or
// hold connections open longer in the test, to narrow the gap.
//
// Each node is sampled over exactly one dedicated connection (a go-redis
// Client with PoolSize 1, MaxActiveConns 1, no pipeline pool, named
// SamplerClientName), so the sampler adds one known connection per node and
// never counts it. A failed sample (for example the node is down) is counted
// in NodeStats.Errors and sampling of that node goes on at the next tick;
// nodes are sampled independently, so a slow node does not delay the others.
//
// A Sampler is safe for concurrent use.
type Sampler struct {
	cfg     SamplerConfig
	addrs   []string
	clients map[string]*redis.Client

	mu      sync.Mutex
	stats   map[string]*NodeStats
	running bool
	closed  bool
	closing chan struct{} // closed by Close
	runs    sync.WaitGroup
}

// NewSampler returns a Sampler for cfg. It opens no connection until Run.
func NewSampler(cfg SamplerConfig) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	s := &Sampler{
		cfg:     cfg,
		clients: make(map[string]*redis.Client),
		stats:   make(map[string]*NodeStats),
		closing: make(chan struct{}),
	}
	for _, addr := range cfg.Addrs {
		if _, dup := s.clients[addr]; dup {
			continue
		}
		s.addrs = append(s.addrs, addr)
		s.stats[addr] = &NodeStats{}
		s.clients[addr] = redis.NewClient(&redis.Options{
			Addr:       addr,
			Username:   cfg.Username,
			Password:   cfg.Password,
			ClientName: SamplerClientName,
			// One connection, and provably only one: no pre-dialled idle
			// connections, no second connection under load, and no
			// dedicated pipeline pool (go-redis creates one by default).
			PoolSize:         1,
			MinIdleConns:     0,
			MaxActiveConns:   1,
			PipelinePoolSize: -1,
			// RESP2 and no maintenance-notification or identity handshake:
			// the connection only ever runs CLIENT LIST.
			Protocol:                 2,
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
			DisableIdentity:          true,
			// Fail fast on a dead node (one dial per attempt, not go-redis's
			// default five), but retry the command once so that the first
			// sample after a node restart re-dials instead of failing on
			// the stale connection.
			MaxRetries:    1,
			DialerRetries: 1,
			DialTimeout:   time.Second,
			ReadTimeout:   time.Second,
			WriteTimeout:  time.Second,
			PoolTimeout:   2 * time.Second,
		})
	}
	return s
}

// Run samples every node, at once and then every Interval, until ctx ends or
// the Sampler is closed, and then returns nil once every sampling goroutine
// has stopped (so no OnSample call happens after Run returns). Errors from
// nodes do not stop it. Run returns ErrClosed if the Sampler is closed, and
// an error if another Run is in progress.
func (s *Sampler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.running {
		s.mu.Unlock()
		return errors.New("redisconns: Sampler.Run called while already running")
	}
	s.running = true
	s.runs.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
		s.runs.Done()
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()

	var wg sync.WaitGroup
	for _, addr := range s.addrs {
		wg.Go(func() { s.loop(ctx, addr) })
	}
	wg.Wait()
	<-ctx.Done() // already done, unless there are no nodes
	return nil
}

func (s *Sampler) loop(ctx context.Context, addr string) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.sample(ctx, addr)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sampler) sample(ctx context.Context, addr string) {
	n, err := s.count(ctx, addr)
	if ctx.Err() != nil {
		return // stopping: an interrupted sample is not a node failure
	}
	s.mu.Lock()
	st := s.stats[addr]
	if err != nil {
		st.Errors++
		st.LastErr = err
		s.mu.Unlock()
		return
	}
	if st.Samples == 0 || n < st.Min {
		st.Min = n
	}
	if st.Samples == 0 || n > st.Max {
		st.Max = n
	}
	st.Last = n
	st.Samples++
	s.mu.Unlock()
	if s.cfg.OnSample != nil {
		s.cfg.OnSample(addr, n)
	}
}

func (s *Sampler) count(ctx context.Context, addr string) (int, error) {
	list, err := s.clients[addr].ClientList(ctx).Result()
	if err != nil {
		return 0, err
	}
	clients, err := Parse(list)
	if err != nil {
		return 0, err
	}
	// The sampler's own connection is excluded by name, with every other
	// sampler's; there is no other connection to exclude.
	return countMatching(clients, s.cfg.NamePrefix, -1), nil
}

// Snapshot returns a copy of the statistics of every node, keyed by address.
// Every configured node is present, with zero statistics until sampled.
func (s *Sampler) Snapshot() map[string]NodeStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := make(map[string]NodeStats, len(s.stats))
	for addr, st := range s.stats {
		snap[addr] = *st
	}
	return snap
}

// Close stops a Run in progress, waits for it to return, and closes the
// sampler's connections. Later calls to Run return ErrClosed; Snapshot keeps
// working. Close is idempotent and returns the first error from closing a
// connection.
func (s *Sampler) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()

	s.runs.Wait()
	var first error
	for _, addr := range s.addrs {
		if err := s.clients[addr].Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
