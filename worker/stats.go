package worker

import (
	"slices"
	"sync/atomic"
)

// Stats is a snapshot of a worker's own accounting. It is for metrics and
// diagnosis; the connection budget is proven from Redis's CLIENT LIST.
type Stats struct {
	Received, Replied, Rejected, Errors, Pending int64
	Dropped                                      int64 // by NATS: the worker was a slow consumer
	Pool                                         PoolStats
}

// PoolStats counts the pool's work since it started.
type PoolStats struct {
	Pipelines  uint64            // round trips sent
	Commands   uint64            // HMGETs sent, retries included
	Dials      uint64            // data connections opened
	DialErrors uint64            // failed dials
	Retries    map[string]uint64 // by reason: moved, ask, tryagain, ...
	Nodes      []NodeStats       // current masters, by address
}

// NodeStats describes one master's connections and queue.
type NodeStats struct {
	Addr        string
	Open, Busy  int
	Queued      int
	LastDialErr string
}

// Stats returns a snapshot of the worker's counters.
func (w *Worker) Stats() Stats {
	c := &w.counters
	dropped, _ := w.sub.Dropped()
	return Stats{
		Dropped:  int64(dropped),
		Received: int64(c.received.Load()),
		Replied:  int64(c.replied.Load()),
		Rejected: int64(c.rejected.Load()),
		Errors:   int64(c.errors.Load()),
		Pending:  w.pending.Load(),
		Pool:     w.pool.Stats(),
	}
}

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() PoolStats {
	s := PoolStats{
		Pipelines:  p.stats.pipelines.Load(),
		Commands:   p.stats.commands.Load(),
		Dials:      p.stats.dials.Load(),
		DialErrors: p.stats.dialErrors.Load(),
		Retries:    make(map[string]uint64),
	}
	p.stats.retries.Range(func(k, v any) bool {
		s.Retries[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	p.mu.Lock()
	for _, n := range p.nodes {
		n.mu.Lock()
		queued := len(n.queue)
		n.mu.Unlock()
		ns := NodeStats{Addr: n.addr, Open: int(n.open.Load()), Busy: int(n.busy.Load()), Queued: queued}
		if e := n.dialErr.Load(); e != nil {
			ns.LastDialErr = (*e).Error()
		}
		s.Nodes = append(s.Nodes, ns)
	}
	p.mu.Unlock()
	slices.SortFunc(s.Nodes, func(a, b NodeStats) int {
		if a.Addr < b.Addr {
			return -1
		}
		return 1
	})
	return s
}
