package baseline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats.go"
)

// Server serves one baseline on a NATS subscription, with the worker's
// admission rules: requests beyond MaxPending get a 503 at once, a
// malformed Request-Timeout header or body a 400 or 413.
type Server struct {
	name   string
	cfg    worker.Config
	log    *slog.Logger
	nc     *nats.Conn
	sub    *nats.Subscription
	strat  Strategy
	inline bool

	pending           atomic.Int64 // accepted and not yet replied to
	received, replied atomic.Uint64
}

// serve subscribes strat, the baseline called name, to cfg's subject and
// queue group on nc.
func serve(nc *nats.Conn, name string, cfg worker.Config, strat Strategy, inline bool) (*Server, error) {
	s := &Server{name: name, cfg: cfg, log: cfg.Logger, nc: nc, strat: strat, inline: inline}
	var err error
	s.sub, err = nc.QueueSubscribe(cfg.Subject, cfg.QueueGroup, s.handle)
	if err == nil {
		err = s.sub.SetPendingLimits(cfg.PendingMsgsLimit, cfg.PendingBytesLimit)
	}
	if err == nil {
		err = nc.Flush() // the subscription is live when Start returns
	}
	if err != nil {
		if s.sub != nil {
			s.sub.Unsubscribe()
		}
		return nil, fmt.Errorf("subscribing to %s: %w", cfg.Subject, err)
	}
	// The worker's message, so that scripts wait for either the same way.
	s.log.Info("worker serving", "strategy", name, "subject", cfg.Subject, "queue_group", cfg.QueueGroup,
		"conns_per_node", cfg.ConnsPerNode, "max_pending", cfg.MaxPending)
	return s, nil
}

// handle accepts one request and answers it, inline or from a goroutine of
// its own, as the strategy requires.
func (s *Server) handle(msg *nats.Msg) {
	received := time.Now()
	s.received.Add(1)
	if msg.Reply == "" {
		return
	}
	if s.pending.Add(1) > int64(s.cfg.MaxPending) {
		s.send(msg.Reply, nil, subjects.Errorf(subjects.CodeUnavailable, "overloaded: %d requests pending", s.cfg.MaxPending))
		return
	}
	timeout, err := subjects.RequestTimeout(msg.Header, s.cfg.RequestTimeout)
	if err != nil {
		s.send(msg.Reply, nil, asError(context.Background(), err))
		return
	}
	req, err := subjects.DecodeRequest(msg.Data, s.cfg.Limits)
	if err != nil {
		s.send(msg.Reply, nil, asError(context.Background(), err))
		return
	}
	if s.inline {
		s.answer(context.Background(), msg.Reply, req)
		return
	}
	go func() {
		ctx, cancel := context.WithDeadline(context.Background(), received.Add(timeout))
		defer cancel()
		s.answer(ctx, msg.Reply, req)
	}()
}

// answer runs the strategy for one request and sends its reply.
func (s *Server) answer(ctx context.Context, to string, req *subjects.LookupRequest) {
	defer func() {
		// As in the worker, a bug in one request's path costs that request only.
		if r := recover(); r != nil {
			s.log.Error("panic while handling a request", "panic", r)
			s.send(to, nil, subjects.Errorf(subjects.CodeInternal, "internal error"))
		}
	}()
	rows, err := s.strat.Lookup(ctx, req)
	if err != nil {
		s.send(to, nil, asError(ctx, err))
		return
	}
	s.send(to, rows, nil)
}

// asError turns err into the error reply a caller gets; see
// Strategy.Lookup.
func asError(ctx context.Context, err error) *subjects.Error {
	var se *subjects.Error
	switch {
	case errors.As(err, &se):
		return se
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return subjects.Errorf(subjects.CodeTimeout, "deadline passed before Redis answered")
	default:
		return subjects.Errorf(subjects.CodeUnavailable, "redis unavailable: %v", err)
	}
}

// send answers an accepted request with rows, or with e if it is not nil,
// in the wire format of subjects.LookupReply and subjects.ErrorReply.
// encoding/json is enough for a baseline.
func (s *Server) send(to string, rows [][]*string, e *subjects.Error) {
	var err error
	if e != nil {
		msg := &nats.Msg{Subject: to, Header: nats.Header{
			subjects.HeaderErrorCode: {strconv.Itoa(e.Code)},
			subjects.HeaderError:     {e.Message},
		}}
		msg.Data, err = json.Marshal(subjects.ErrorReply{Error: e})
		if err == nil {
			err = s.nc.PublishMsg(msg)
		}
	} else {
		var body []byte
		body, err = json.Marshal(subjects.LookupReply{Values: rows})
		if err == nil {
			err = s.nc.Publish(to, body)
		}
	}
	s.pending.Add(-1)
	s.replied.Add(1)
	if err != nil {
		s.log.Warn("cannot publish a reply", "err", err)
	}
}

// Shutdown stops taking requests, waits until every accepted one is
// answered (or ctx ends), flushes the replies and closes the strategy's
// connections. The NATS connection is left open for the caller to close.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	if err := s.sub.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, fmt.Errorf("draining the subscription: %w", err))
	}
	// Shutdown is rare, so a poll is simpler than signalling from the
	// hot path.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for s.sub.IsValid() || s.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%d requests still pending at shutdown: %w", s.pending.Load(), ctx.Err()))
			s.sub.Unsubscribe()
		case <-tick.C:
			continue
		}
		break
	}
	// A grace of its own, so the replies get a last chance even when ctx
	// has ended.
	grace, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.nc.FlushWithContext(grace); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, fmt.Errorf("flushing replies: %w", err))
	}
	errs = append(errs, s.strat.Close())
	s.log.Info("worker stopped", "strategy", s.name, "received", s.received.Load(), "replied", s.replied.Load())
	return errors.Join(errs...)
}
