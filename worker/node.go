package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/featurestore/featureworker/internal/resp"
	"github.com/featurestore/featureworker/subjects"
	"github.com/sethvargo/go-retry"
)

// node is one Redis master: a queue of commands and a fixed number of
// connections, each owned by one goroutine that sends whatever is queued as
// one pipeline and waits for its replies. While every connection is busy,
// work accumulates in the queue, and the next round trip takes all of it:
// batching needs no timer.
type node struct {
	addr string
	pool *Pool

	ctx    context.Context // ends when the node is retired or the pool closes
	cancel context.CancelFunc
	conns  sync.WaitGroup // the connection goroutines
	prev   *node          // an earlier node at this address, still closing

	mu      sync.Mutex
	queue   []*command
	retired bool
	wake    chan struct{} // capacity 1: work was queued

	ready     chan struct{} // closed when the first connection is up
	readyOnce sync.Once
	open      atomic.Int32          // connections up
	busy      atomic.Int32          // connections in a round trip
	dialErr   atomic.Pointer[error] // last dial error, nil once one succeeds
}

func newNode(p *Pool, addr string, prev *node) *node {
	n := &node{addr: addr, pool: p, prev: prev, wake: make(chan struct{}, 1), ready: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(p.ctx)
	for range p.cfg.ConnsPerNode {
		n.conns.Add(1)
		p.wg.Add(1)
		go n.runConn()
	}
	return n
}

// enqueue queues cmds and wakes a connection. It returns false if the node
// is retired, and the caller must route them elsewhere.
func (n *node) enqueue(cmds ...*command) bool {
	n.mu.Lock()
	if n.retired {
		n.mu.Unlock()
		return false
	}
	n.queue = append(n.queue, cmds...)
	n.mu.Unlock()
	if n.open.Load() == 0 {
		if err := n.dialErr.Load(); err != nil {
			for _, c := range cmds {
				c.l.noteCause(*err)
			}
		}
	}
	n.signal()
	return true
}

// noteQueued records a dial error as the cause of every queued command's
// lookup: they may have been queued while the node seemed up, and now wait
// for a connection that cannot be made, so a deadline that passes meanwhile
// is a 503, not a 504 (enqueue notes it for commands queued later).
func (n *node) noteQueued(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.queue {
		c.l.noteCause(err)
	}
}

func (n *node) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// take waits for queued work and moves up to max commands into buf. It
// returns nil once the node's context ends.
func (n *node) take(buf []*command, max int) []*command {
	for {
		n.mu.Lock()
		if k := min(len(n.queue), max); k > 0 {
			buf = append(buf[:0], n.queue[:k]...)
			rest := copy(n.queue, n.queue[k:])
			clear(n.queue[rest:])
			n.queue = n.queue[:rest]
			n.mu.Unlock()
			if rest > 0 {
				n.signal() // let an idle connection take the rest
			}
			return buf
		}
		n.mu.Unlock()
		select {
		case <-n.wake:
		case <-n.ctx.Done():
			return nil
		}
	}
}

// retire stops the node: no more work is queued to it, and what is queued
// is handed back. Connections finish their round trip, then close.
func (n *node) retire() []*command {
	n.mu.Lock()
	n.retired = true
	q := n.queue
	n.queue = nil
	n.mu.Unlock()
	n.cancel()
	return q
}

// runConn owns one connection for the node's lifetime: it dials, redials
// alone when the connection breaks, and runs one pipeline per round trip.
func (n *node) runConn() {
	defer n.pool.wg.Done()
	defer n.conns.Done()
	if n.prev != nil {
		// The budget holds across re-incarnations too: wait until the
		// old node's connections to this address are closed.
		n.prev.conns.Wait()
	}
	var (
		conn  *resp.Conn
		batch []*command
		rows  rowReader
	)
	for {
		if conn == nil {
			if conn = n.dial(); conn == nil {
				return
			}
		}
		if batch = n.take(batch, n.pool.cfg.MaxBatch); batch == nil {
			conn.Close()
			n.open.Add(-1)
			return
		}
		n.busy.Add(1)
		err := n.roundTrip(conn, batch, &rows)
		n.busy.Add(-1)
		clear(batch)
		if err != nil {
			n.pool.log.Warn("redis connection broken, redialing it alone", "node", n.addr, "err", err)
			conn.Close()
			n.open.Add(-1)
			conn = nil
			n.pool.requestRefresh()
		}
	}
}

// dial connects with exponential backoff and jitter until it succeeds or
// the node's context ends (then it returns nil).
func (n *node) dial() *resp.Conn {
	var conn *resp.Conn
	err := retry.Do(n.ctx, newBackoff(dialBase, dialCap), func(ctx context.Context) error {
		var err error
		conn, err = resp.Dial(ctx, n.addr, n.pool.dialOptions(false))
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			n.dialErr.Store(&err)
			n.noteQueued(err)
			n.pool.stats.dialErrors.Add(1)
			n.pool.log.Warn("cannot connect to redis node", "node", n.addr, "err", err)
			n.pool.requestRefresh() // the node may have failed over
			return retry.RetryableError(err)
		}
		return nil
	})
	if err != nil {
		return nil
	}
	n.dialErr.Store(nil)
	n.open.Add(1)
	n.pool.stats.dials.Add(1)
	n.readyOnce.Do(func() { close(n.ready) })
	return conn
}

// roundTrip sends batch as one pipeline and hands every reply to its
// command. A non-nil error means the connection is unusable; every command
// without a reply has then been handed back for retry.
func (n *node) roundTrip(conn *resp.Conn, batch []*command, rows *rowReader) (err error) {
	p := n.pool
	now := time.Now()
	send := batch[:0]
	var latest time.Time
	for _, c := range batch {
		switch {
		case !c.l.active():
		case c.l.expired(now) && c.l.cause.Load() != nil:
			c.l.expire() // Redis failed while it waited: 503
		case c.l.expired(now):
			c.l.fail(subjects.Errorf(subjects.CodeTimeout, "deadline passed while waiting for a Redis connection"))
		default:
			send = append(send, c)
			if c.l.deadline.After(latest) {
				latest = c.l.deadline
			}
			p.tel.poolWait.Record(context.Background(), now.Sub(c.queuedAt).Seconds())
			continue
		}
		if c.l.tr != nil {
			c.l.tr.unsent(c)
		}
	}
	if len(send) == 0 {
		return nil
	}
	reqs := countLookups(send)
	p.stats.pipelines.Add(1)
	p.stats.commands.Add(uint64(len(send)))
	p.tel.batchCommands.Record(context.Background(), int64(len(send)))
	p.tel.batchRequests.Record(context.Background(), int64(reqs))
	if span := p.tel.startBatch(n, send, reqs); span != nil {
		for _, c := range send {
			if c.l.tr != nil {
				c.l.tr.sent(p.tel, c, span.SpanContext(), len(send), reqs)
			}
		}
		defer func() { endSpan(span, err) }()
	}

	// A node that stops answering must not hold this connection past the
	// last deadline it serves.
	conn.SetDeadline(latest)
	for _, c := range send {
		if c.asking {
			conn.WriteCommand("ASKING")
		}
		conn.WriteHMGET(c.l.prefix, c.l.entities[c.row], c.l.features)
	}
	if err := conn.Flush(); err != nil {
		p.retryAll(send, err)
		return err
	}
	for i, c := range send {
		if c.asking {
			if _, err := conn.ReadValue(); err != nil {
				p.retryAll(send[i:], err)
				return err
			}
		}
		row, err := rows.read(conn, len(c.l.features))
		if c.l.tr != nil {
			c.l.tr.answered(c, err)
		}
		// ReadArray returns a reply error unwrapped; a type switch, unlike
		// errors.As, does not make the hot path allocate.
		switch redisErr := err.(type) {
		case nil:
			c.l.setRow(c, row)
		case resp.Error:
			p.handleReplyError(c, redisErr)
		default:
			p.retryAll(send[i:], err)
			return err
		}
	}
	return nil
}

// countLookups counts the requests a pipeline serves. A lookup's commands
// are queued together, so counting changes between neighbours is enough.
func countLookups(cmds []*command) int {
	n := 0
	for i, c := range cmds {
		if i == 0 || cmds[i-1].l != c.l {
			n++
		}
	}
	return n
}

// rowReader turns one HMGET reply into a JSON row. It keeps its callback in
// a field so that reading a row does not allocate a closure.
type rowReader struct {
	row  []byte
	cell func(i int, b []byte, null bool)
}

func (r *rowReader) read(conn *resp.Conn, width int) ([]byte, error) {
	if r.cell == nil {
		r.cell = func(i int, b []byte, null bool) { r.row = appendCell(r.row, i, b, null) }
	}
	// Room for typical cells ("v12345-6",) so most rows never grow.
	r.row = make([]byte, 1, 2+width*16)
	r.row[0] = '['
	if err := conn.ReadArray(r.cell); err != nil {
		return nil, err
	}
	return append(r.row, ']'), nil
}
