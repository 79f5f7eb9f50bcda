package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/featurestore/featureworker/internal/resp"
	"github.com/featurestore/featureworker/subjects"
)

// Pool is the Redis side of the worker: the cluster's slot map and, for
// each master, a queue and exactly Config.ConnsPerNode connections, plus one
// connection for topology. It never opens more, whatever the load.
type Pool struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the pool starts
	closed atomic.Bool

	slots [numSlots]atomic.Pointer[node]

	mu    sync.Mutex
	nodes map[string]*node // current masters by address
	gone  map[string]*node // retired nodes, until their connections close

	refresh chan struct{} // capacity 1: the slot map may be stale
	topo    topology
	tel     *telemetry

	stats poolStats
}

type poolStats struct {
	pipelines, commands, dials, dialErrors atomic.Uint64
	retries                                sync.Map // reason -> *atomic.Uint64
}

// NewPool discovers the cluster from cfg.RedisAddrs and connects to every
// master. It retries until ctx ends, then returns the last error; the pool
// is then closed. cfg is validated and defaulted as in Config.
func NewPool(ctx context.Context, cfg Config) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	p := &Pool{
		cfg:     cfg,
		log:     cfg.Logger,
		nodes:   make(map[string]*node),
		gone:    make(map[string]*node),
		refresh: make(chan struct{}, 1),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.topo.pool = p
	var err error
	if p.tel, err = newTelemetry(cfg); err != nil {
		return nil, err
	}
	if err := p.start(ctx); err != nil {
		p.Close(context.Background())
		return nil, err
	}
	return p, nil
}

func (p *Pool) start(ctx context.Context) error {
	b := newBackoff(dialBase, dialCap)
	for {
		err := p.topo.refresh(ctx)
		if err == nil {
			break
		}
		p.log.Warn("cannot read the cluster's slot map yet", "err", err)
		d, _ := b.Next()
		select {
		case <-ctx.Done():
			return fmt.Errorf("reading the Redis Cluster slot map: %w", err)
		case <-time.After(d):
		}
	}
	p.wg.Add(1)
	go p.topo.run()
	// Start serving only with a connection to every master, so the first
	// requests do not fail for want of one.
	p.mu.Lock()
	nodes := make([]*node, 0, len(p.nodes))
	for _, n := range p.nodes {
		nodes = append(nodes, n)
	}
	p.mu.Unlock()
	for _, n := range nodes {
		select {
		case <-n.ready:
		case <-ctx.Done():
			err := fmt.Errorf("connecting to Redis node %s: %w", n.addr, ctx.Err())
			if e := n.dialErr.Load(); e != nil {
				err = fmt.Errorf("connecting to Redis node %s: %w", n.addr, *e)
			}
			return err
		}
	}
	return nil
}

func (p *Pool) dialOptions(topology bool) resp.Options {
	name := p.cfg.Redis.ClientName
	if topology {
		name += "-topology"
	}
	return resp.Options{
		Username:    p.cfg.Redis.Username,
		Password:    p.cfg.Redis.Password,
		TLS:         p.cfg.Redis.TLS,
		ClientName:  name,
		DialTimeout: p.cfg.Redis.DialTimeout,
	}
}

// do routes every command of l and starts its deadline. l is finished, by
// its done function, exactly once: with its rows, or with an error.
func (p *Pool) do(l *lookup) {
	l.startTimer()
	if len(l.cmds) == 1 {
		p.route(&l.cmds[0])
		return
	}
	// A lookup's commands for one node are queued together: it takes each
	// node's lock once, and its commands there go out in one pipeline.
	var buf [16]*node
	nodes := buf[:0]
	for i := range l.cmds {
		nodes = append(nodes, p.slots[l.cmds[i].slot].Load())
	}
	group := make([]*command, 0, len(l.cmds))
	for i, n := range nodes {
		switch n {
		case grouped:
			continue
		case nil:
			p.route(&l.cmds[i]) // no owner known yet: route retries it
			continue
		}
		start := len(group)
		for j := i; j < len(nodes); j++ {
			if nodes[j] == n {
				group = append(group, &l.cmds[j])
				nodes[j] = grouped
			}
		}
		if !p.enqueue(n, group[start:]...) {
			for _, c := range group[start:] {
				p.route(c)
			}
		}
	}
}

// grouped marks, in do, a command already queued with its node's group.
var grouped = new(node)

// route queues c on the master that owns its slot.
func (p *Pool) route(c *command) {
	if !c.l.active() {
		return
	}
	for range 3 { // a retired node is replaced in the slot map before it retires
		if p.closed.Load() {
			c.l.fail(subjects.Errorf(subjects.CodeUnavailable, "worker is shutting down"))
			return
		}
		n := p.slots[c.slot].Load()
		if n == nil {
			break
		}
		if p.enqueue(n, c) {
			return
		}
	}
	p.requestRefresh()
	p.retryLater(c, ReasonNoOwner, errNoOwner)
}

// enqueue queues cmds on n, with the bookkeeping for metrics and spans. It
// returns false if n is retired.
func (p *Pool) enqueue(n *node, cmds ...*command) bool {
	now := time.Now()
	for _, c := range cmds {
		c.queuedAt = now
		if c.l.tr != nil {
			c.l.tr.unsent(c) // moved off a retired node before it was sent
			c.l.tr.queued(p.tel, c, n, c.reason)
		}
	}
	if n.enqueue(cmds...) {
		return true
	}
	for _, c := range cmds {
		if c.l.tr != nil {
			c.l.tr.unsent(c)
		}
	}
	return false
}

// retryLater routes c again after its backoff, or fails its lookup if the
// backoff would end past the deadline.
func (p *Pool) retryLater(c *command, reason string, err error) {
	c.l.noteCause(err)
	c.attempt++
	c.reason = reason
	d := c.retry.next()
	if time.Now().Add(d).After(c.l.deadline) {
		c.l.fail(subjects.Errorf(subjects.CodeUnavailable, "redis unavailable: %v", err))
		return
	}
	p.countRetry(reason)
	time.AfterFunc(d, func() { p.route(c) })
}

// retryAll hands back commands that were on a connection that broke.
func (p *Pool) retryAll(cmds []*command, err error) {
	// A connection times out only at the latest deadline of its pipeline,
	// so every command on it is out of time because the node was slow,
	// not because it failed: expire answers 504 (or 503 if an earlier
	// failure was noted), instead of recording the worker's own timeout
	// as a Redis failure.
	timedOut := errors.Is(err, os.ErrDeadlineExceeded)
	for _, c := range cmds {
		if c.l.tr != nil {
			c.l.tr.answered(c, err)
		}
		if timedOut {
			c.l.expire()
			continue
		}
		p.retryLater(c, ReasonConn, err)
	}
}

// handleReplyError deals with an error reply to one command of a pipeline:
// redirects go at once where Redis says, transient errors wait their
// backoff, and anything else fails the lookup.
func (p *Pool) handleReplyError(c *command, e resp.Error) {
	if r, ok := parseRedirect(string(e)); ok {
		c.attempt++
		c.reason = ReasonMoved
		if r.ask {
			c.reason = ReasonAsk
		}
		if c.attempt > maxRedirects {
			c.l.fail(subjects.Errorf(subjects.CodeUnavailable, "redis: too many redirects, last %v", e))
			return
		}
		if r.ask {
			p.countRetry(ReasonAsk)
			c.asking = true
			if !p.enqueue(p.nodeAt(r.addr), c) {
				p.retryLater(c, ReasonAsk, e)
			}
			return
		}
		p.countRetry(ReasonMoved)
		c.asking = false
		p.moved(r)
		p.route(c)
		return
	}
	if reason := transientReason(e); reason != "" {
		c.asking = false
		p.retryLater(c, reason, e)
		return
	}
	c.l.fail(subjects.Errorf(subjects.CodeInternal, "redis refused HMGET %s: %v", c.l.entities[c.row], e))
}

// moved points a slot at the node a MOVED reply names, and asks for a full
// refresh, since a MOVED seldom comes alone.
func (p *Pool) moved(r redirect) {
	p.slots[r.slot].Store(p.nodeAt(r.addr))
	p.requestRefresh()
}

// nodeAt returns the node at addr, starting it if it is new.
func (p *Pool) nodeAt(addr string) *node {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nodeAtLocked(addr)
}

func (p *Pool) nodeAtLocked(addr string) *node {
	if n := p.nodes[addr]; n != nil {
		return n
	}
	n := newNode(p, addr, p.gone[addr])
	delete(p.gone, addr)
	p.nodes[addr] = n
	return n
}

func (p *Pool) requestRefresh() {
	select {
	case p.refresh <- struct{}{}:
	default:
	}
}

func (p *Pool) countRetry(reason string) {
	v, ok := p.stats.retries.Load(reason)
	if !ok {
		v, _ = p.stats.retries.LoadOrStore(reason, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// Close stops the pool. Queued commands fail with 503 at once; round trips
// under way finish and deliver their replies (each is bounded by its
// requests' deadlines). Close waits for every goroutine of the pool, or
// returns ctx.Err() if ctx ends first; they still exit by themselves.
func (p *Pool) Close(ctx context.Context) error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	p.mu.Lock()
	var queued []*command
	for _, n := range p.nodes {
		queued = append(queued, n.retire()...)
	}
	p.mu.Unlock()
	p.cancel()
	for _, c := range queued {
		c.l.fail(subjects.Errorf(subjects.CodeUnavailable, "worker is shutting down"))
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
