// Package worker answers feature lookups from NATS out of a Redis Cluster,
// batching the requests in flight into one pipeline per node per round trip
// over a fixed number of connections per node.
//
// Start subscribes a Worker to the lookup subject in a queue group; Pool is
// its Redis side. See the subjects package for the wire contract.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/tracing"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Worker serves lookup requests from one NATS subscription.
type Worker struct {
	cfg  Config
	log  *slog.Logger
	nc   *nats.Conn
	pool *Pool
	sub  *nats.Subscription
	disc *discovery

	pending  atomic.Int64  // accepted and not yet replied to
	admitted chan admitted // accepted, waiting for a decoder; never more than MaxPending
	decoders sync.WaitGroup
	stop     chan struct{} // closed by Shutdown to stop the decoders
	finish   func(*lookup, *subjects.Error)

	shutdownOnce sync.Once
	shutdownErr  error
	bufs         sync.Pool // reply buffers
	counters     counters
}

type counters struct {
	received, replied, rejected, errors, publishErrors atomic.Uint64
}

// Start connects to Redis (retrying until ctx ends) and subscribes to
// cfg.Subject in cfg.QueueGroup on nc. nc stays the caller's: Shutdown does
// not close it.
func Start(ctx context.Context, nc *nats.Conn, cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	pool, err := NewPool(ctx, cfg)
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, log: cfg.Logger, nc: nc, pool: pool}
	w.finish = w.reply
	w.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	w.admitted, w.stop = make(chan admitted, cfg.MaxPending), make(chan struct{})
	for range runtime.GOMAXPROCS(0) {
		w.decoders.Go(w.decode)
	}
	w.disc = newDiscovery(w) // the handler counts into it from the first message
	w.sub, err = nc.QueueSubscribe(cfg.Subject, cfg.QueueGroup, w.handle)
	if err == nil {
		err = w.sub.SetPendingLimits(cfg.PendingMsgsLimit, cfg.PendingBytesLimit)
	}
	if err == nil {
		err = w.disc.start()
	}
	if err == nil {
		err = pool.tel.registerGauges(cfg.MeterProvider, w)
	}
	if err == nil {
		err = flush(ctx, nc) // the subscription is live when Start returns
	}
	if err == nil {
		err = subscribeRefused(nc)
	}
	if err != nil {
		if w.sub != nil {
			w.sub.Unsubscribe()
		}
		w.disc.stop()
		pool.Close(context.Background())
		close(w.stop)
		w.decoders.Wait()
		return nil, fmt.Errorf("subscribing to %s: %w", cfg.Subject, err)
	}
	w.log.Info("worker serving", "subject", cfg.Subject, "queue_group", cfg.QueueGroup,
		"conns_per_node", cfg.ConnsPerNode, "max_pending", cfg.MaxPending)
	return w, nil
}

// subscribeRefused returns the server's refusal of a subscription, if any.
// The server refuses asynchronously, but before it answers the flush that
// follows, and nats.go keeps the refusal as the connection's last error:
// without this check a worker whose NATS user may not subscribe would run
// deaf, reporting that it serves.
func subscribeRefused(nc *nats.Conn) error {
	err := nc.LastError()
	if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), "Subscription") {
		return err
	}
	return nil
}

// handle admits one request or turns it away with a 503. It never blocks:
// a decoder goroutine decodes the request and routes its lookup, which is
// answered later from the node goroutines, so one subscription keeps many
// requests in flight.
func (w *Worker) handle(msg *nats.Msg) {
	received := time.Now()
	w.counters.received.Add(1)
	if msg.Reply == "" {
		w.log.Debug("dropping a request without a reply subject")
		return
	}
	if w.pending.Add(1) > int64(w.cfg.MaxPending) {
		w.counters.rejected.Add(1)
		w.send(msg.Reply, nil, subjects.Errorf(subjects.CodeUnavailable, "overloaded: %d requests pending", w.cfg.MaxPending), nil, received)
		return
	}
	// Decoding and routing are left to the decoders, so that this handler
	// keeps up with arrivals even when they are slow (large requests, a
	// busy machine): otherwise the excess would wait behind them in the
	// subscription's queue, unseen by pending, instead of getting its 503
	// at once. The send never blocks: pending bounds what is queued.
	w.admitted <- admitted{msg, received}
}

// admitted is a request past admission control.
type admitted struct {
	msg      *nats.Msg
	received time.Time
}

// decode runs admitted requests until stop is closed, then the ones still
// queued (a closed pool fails them with a 503), and returns. A few decoders
// (one per CPU) rather than a goroutine per request keep the scheduler's
// run queue short, so the NATS readers and the handler are not queued
// behind a burst of decoding.
func (w *Worker) decode() {
	for {
		select {
		case a := <-w.admitted:
			w.process(a.msg, a.received)
		case <-w.stop:
			for {
				select {
				case a := <-w.admitted:
					w.process(a.msg, a.received)
				default:
					return
				}
			}
		}
	}
}

// process decodes an admitted request and hands its lookup to the pool.
// Everything here that may run foreign code (the tracer, the decoder) is
// under its recover; the handler before it only counts.
func (w *Worker) process(msg *nats.Msg, received time.Time) {
	var (
		l  *lookup
		tr *traced
	)
	defer func() {
		// A bug in one request's path costs that request only. Once the
		// lookup exists it is finished through fail, so that its timer or
		// commands already queued cannot answer a second time.
		if r := recover(); r != nil {
			w.log.Error("panic while handling a request", "panic", r)
			e := subjects.Errorf(subjects.CodeInternal, "internal error")
			if l != nil {
				l.fail(e)
				return
			}
			w.send(msg.Reply, nil, e, tr, received)
		}
	}()
	tr = w.startTrace(msg, received)
	timeout, err := subjects.RequestTimeout(msg.Header, w.cfg.RequestTimeout)
	if err != nil {
		w.send(msg.Reply, nil, asError(err, subjects.CodeBadRequest), tr, received)
		return
	}
	req, err := subjects.DecodeRequest(msg.Data, w.cfg.Limits)
	if err != nil {
		w.send(msg.Reply, nil, asError(err, subjects.CodeBadRequest), tr, received)
		return
	}
	l = newLookup(w.cfg.KeyPrefix, req, received.Add(timeout), w.finish)
	l.replyTo, l.received, l.tr = msg.Reply, received, tr
	w.pool.do(l)
}

// startTrace starts the request's span under the caller's, and returns its
// state if the request is sampled.
func (w *Worker) startTrace(msg *nats.Msg, received time.Time) *traced {
	if w.pool.tel.tracingOff {
		return nil
	}
	ctx := tracing.Extract(context.Background(), msg.Header)
	ctx, span := w.pool.tel.tracer.Start(ctx, SpanProcess+w.cfg.Subject,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(received))
	if !span.IsRecording() {
		return nil
	}
	span.SetAttributes(
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.destination.name", msg.Subject),
		attribute.String("messaging.consumer.group.name", w.cfg.QueueGroup),
		attribute.Int("messaging.message.body.size", len(msg.Data)))
	return &traced{ctx: ctx, span: span}
}

// reply answers a finished lookup. It runs on whichever goroutine finished
// it, once per lookup.
func (w *Worker) reply(l *lookup, e *subjects.Error) {
	w.send(l.replyTo, l.rows, e, l.tr, l.received)
}

// send answers an accepted request with its rows, or with e if it is not
// nil, and ends its trace.
func (w *Worker) send(to string, rows [][]byte, e *subjects.Error, tr *traced, received time.Time) {
	var span trace.Span
	if tr != nil {
		_, span = w.pool.tel.tracer.Start(tr.ctx, SpanReply)
	}
	var err error
	code := 0
	if e != nil {
		code = e.Code
		w.counters.errors.Add(1)
		msg := &nats.Msg{Subject: to, Header: nats.Header{
			subjects.HeaderErrorCode: {strconv.Itoa(e.Code)},
			subjects.HeaderError:     {e.Message},
		}}
		msg.Data = appendErrorBody(nil, e)
		err = w.nc.PublishMsg(msg)
	} else {
		bp := w.bufs.Get().(*[]byte)
		body := appendValues((*bp)[:0], rows)
		err = w.nc.Publish(to, body) // copies body before it returns
		*bp = body
		w.bufs.Put(bp)
	}
	took := time.Since(received)
	w.pool.tel.countReply(code, took)
	if e != nil {
		w.disc.observe(took, e.Message)
	} else {
		w.disc.observe(took, "")
	}
	w.pending.Add(-1)
	w.counters.replied.Add(1)
	if err != nil {
		w.counters.publishErrors.Add(1)
		w.log.Warn("cannot publish a reply", "err", err)
	}
	if tr != nil {
		endSpan(span, err)
		if e != nil {
			endSpan(tr.span, e)
		} else {
			endSpan(tr.span, err)
		}
	}
}

func appendErrorBody(buf []byte, e *subjects.Error) []byte {
	buf = append(buf, `{"error":{"code":`...)
	buf = strconv.AppendInt(buf, int64(e.Code), 10)
	buf = append(buf, `,"message":`...)
	buf = appendJSONString(buf, []byte(e.Message))
	return append(buf, "}}"...)
}

// Shutdown stops taking requests and answers every accepted one: it drains
// the subscription, waits until nothing is pending, closes the pool and
// flushes the replies. If ctx ends first, what is still queued gets a 503,
// and Shutdown returns ctx.Err() after a short grace for those replies.
// The NATS connection is left open for the caller to close. Later calls
// wait for the first and return its result.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.shutdownOnce.Do(func() { w.shutdownErr = w.shutdown(ctx) })
	return w.shutdownErr
}

func (w *Worker) shutdown(ctx context.Context) error {
	closed := w.sub.StatusChanged(nats.SubscriptionClosed)
	errs := []error{w.disc.stop()}
	if err := w.sub.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, fmt.Errorf("draining the subscription: %w", err))
	}
	select {
	case <-waitClosed(closed):
	case <-ctx.Done():
		w.sub.Unsubscribe()
	}
	waitZero(ctx, &w.pending)
	errs = append(errs, w.pool.Close(ctx))
	// After Close every lookup is finished or about to be (a retry timer
	// that fires now fails at once), so this wait is short.
	grace, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	waitZero(grace, &w.pending)
	close(w.stop) // nothing is admitted any more, and what was is decoded
	w.decoders.Wait()
	if n := w.pending.Load(); n > 0 {
		errs = append(errs, fmt.Errorf("%d requests still pending at shutdown", n))
	}
	if err := flush(grace, w.nc); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, fmt.Errorf("flushing replies: %w", err))
	}
	w.log.Info("worker stopped", "received", w.counters.received.Load(), "replied", w.counters.replied.Load())
	return errors.Join(errs...)
}

// flush waits for the server to process everything sent so far, bounded by
// ctx, or by a few seconds when ctx has no deadline.
func flush(ctx context.Context, nc *nats.Conn) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	return nc.FlushWithContext(ctx)
}

func waitClosed(ch <-chan nats.SubStatus) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for range ch { // closed by nats.go when the subscription closes
		}
		close(done)
	}()
	return done
}

// waitZero polls until *n is zero or ctx ends. Shutdown is rare, so a poll
// is simpler than signalling from the hot path.
func waitZero(ctx context.Context, n *atomic.Int64) {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for n.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
