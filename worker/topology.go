package worker

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/featurestore/featureworker/internal/resp"
)

// minRefreshGap keeps a burst of MOVED replies from becoming a burst of
// CLUSTER SLOTS calls.
const minRefreshGap = 100 * time.Millisecond

// topology keeps the slot map current over one connection of its own,
// which it moves to another node when that one stops answering.
type topology struct {
	pool *Pool
	conn *resp.Conn // owned by the goroutine in run, or by start before it
	addr string     // where conn goes
}

// run refreshes the slot map at the configured interval and whenever the
// pool asks, until the pool closes.
func (t *topology) run() {
	p := t.pool
	defer p.wg.Done()
	defer t.close()
	tick := time.NewTicker(p.cfg.TopologyInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-tick.C:
		case <-p.refresh:
		}
		if err := t.refresh(p.ctx); err != nil && p.ctx.Err() == nil {
			p.log.Warn("refreshing the cluster slot map failed", "err", err)
		}
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(minRefreshGap):
		}
	}
}

func (t *topology) close() {
	if t.conn != nil {
		t.conn.Close()
		t.conn = nil
	}
}

// refresh reads CLUSTER SLOTS from the first node that answers, trying the
// current topology node, then the known masters, then the seeds, and
// applies it.
func (t *topology) refresh(ctx context.Context) error {
	var lastErr error
	for _, addr := range t.candidates() {
		ranges, err := t.fetch(ctx, addr)
		if err == nil {
			t.pool.applySlots(ranges)
			return nil
		}
		lastErr = fmt.Errorf("%s: %w", addr, err)
		if ctx.Err() != nil {
			break
		}
	}
	return lastErr
}

func (t *topology) candidates() []string {
	p := t.pool
	var addrs []string
	if t.conn != nil {
		addrs = append(addrs, t.addr)
	}
	p.mu.Lock()
	for addr := range p.nodes {
		addrs = append(addrs, addr)
	}
	p.mu.Unlock()
	slices.Sort(addrs[min(1, len(addrs)):])
	addrs = append(addrs, p.cfg.RedisAddrs...)
	return slices.Compact(addrs)
}

// fetch asks addr for CLUSTER SLOTS, moving the topology connection there
// first if needed. One connection at most is open at any time.
func (t *topology) fetch(ctx context.Context, addr string) ([]slotRange, error) {
	if t.conn != nil && t.addr != addr {
		t.close()
	}
	if t.conn == nil {
		conn, err := resp.Dial(ctx, addr, t.pool.dialOptions(true))
		if err != nil {
			return nil, err
		}
		t.conn, t.addr = conn, addr
	}
	t.conn.SetDeadline(time.Now().Add(t.pool.cfg.Redis.DialTimeout))
	t.conn.WriteCommand("CLUSTER", "SLOTS")
	err := t.conn.Flush()
	var v any
	if err == nil {
		v, err = t.conn.ReadValue()
	}
	if err != nil {
		t.close()
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	return parseClusterSlots(v, host)
}

// slotRange is one entry of CLUSTER SLOTS: slots start..end served by the
// master at addr.
type slotRange struct {
	start, end int
	addr       string
}

// parseClusterSlots reads a CLUSTER SLOTS reply. An empty or "?" host means
// the node's own host, which Redis sends when it does not know its address.
func parseClusterSlots(v any, defaultHost string) ([]slotRange, error) {
	if e, ok := v.(resp.Error); ok {
		return nil, e
	}
	entries, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("CLUSTER SLOTS: unexpected reply %T", v)
	}
	ranges := make([]slotRange, 0, len(entries))
	for _, e := range entries {
		f, ok := e.([]any)
		if !ok || len(f) < 3 {
			return nil, fmt.Errorf("CLUSTER SLOTS: malformed entry %v", e)
		}
		start, ok1 := f[0].(int64)
		end, ok2 := f[1].(int64)
		master, ok3 := f[2].([]any)
		if !ok1 || !ok2 || !ok3 || len(master) < 2 || start < 0 || end >= numSlots || start > end {
			return nil, fmt.Errorf("CLUSTER SLOTS: malformed entry %v", e)
		}
		host, _ := master[0].(string)
		port, ok := master[1].(int64)
		if !ok {
			return nil, fmt.Errorf("CLUSTER SLOTS: malformed node %v", master)
		}
		if host == "" || host == "?" {
			host = defaultHost
		}
		ranges = append(ranges, slotRange{int(start), int(end), net.JoinHostPort(host, strconv.Itoa(int(port)))})
	}
	return ranges, nil
}

// applySlots installs a slot map: it starts nodes for new masters, points
// every slot at its master, and retires nodes that no longer own a slot.
// Work queued on a retired node is routed again, not dropped. Slots the
// reply does not cover (a cluster still converging, or one that reports
// nothing at all) keep their current owner: a partial answer must never
// close connections that are still needed.
func (p *Pool) applySlots(ranges []slotRange) {
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		return
	}
	var owner [numSlots]*node
	for s := range owner {
		owner[s] = p.slots[s].Load()
	}
	for _, r := range ranges {
		n := p.nodeAtLocked(r.addr)
		for s := r.start; s <= r.end; s++ {
			owner[s] = n
		}
	}
	owning := make(map[*node]bool, len(p.nodes))
	for s, n := range owner {
		p.slots[s].Store(n)
		owning[n] = true
	}
	var moved []*command
	for addr, n := range p.nodes {
		if !owning[n] {
			p.log.Info("redis node no longer owns slots, closing its connections", "node", addr)
			delete(p.nodes, addr)
			p.gone[addr] = n
			moved = append(moved, n.retire()...)
		}
	}
	p.mu.Unlock()
	for _, c := range moved {
		p.route(c)
	}
}
