package worker

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// traced is the tracing state of a sampled lookup. Unsampled lookups have
// none, so their path makes no spans at all.
type traced struct {
	ctx  context.Context // carries the request's process span
	span trace.Span

	mu    sync.Mutex // commands of one lookup run on several goroutines
	parts []*part
}

// part is what a traced lookup has on one node for one attempt: the pool
// wait span, from queueing until its last command is sent, and the redis
// pipeline span, from the first command sent until the last reply.
type part struct {
	node             *node
	attempt          int
	wait, pipe       trace.Span
	queued, inflight int
	err              error
}

// queued notes that c is about to be queued on n.
func (t *traced) queued(tel *telemetry, c *command, n *node, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.parts {
		if p.node == n && p.attempt == c.attempt && p.queued > 0 {
			p.queued++
			c.part = p
			return
		}
	}
	attrs := append(serverAttrs(n.addr), attribute.Int("attempt", c.attempt))
	if reason != "" {
		attrs = append(attrs, attribute.String("retry.reason", reason))
	}
	n.mu.Lock()
	depth := len(n.queue)
	n.mu.Unlock()
	attrs = append(attrs, attribute.Int("queue.depth", depth))
	_, wait := tel.tracer.Start(t.ctx, SpanPoolWait, trace.WithAttributes(attrs...))
	p := &part{node: n, attempt: c.attempt, wait: wait, queued: 1}
	t.parts = append(t.parts, p)
	c.part = p
}

// sent notes that c went out in a pipeline of cmds commands for reqs
// requests, whose round trip is the span batch.
func (t *traced) sent(tel *telemetry, c *command, batch trace.SpanContext, cmds, reqs int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := c.part
	if p == nil {
		return
	}
	if p.queued--; p.queued == 0 {
		p.wait.End()
	}
	if p.pipe == nil {
		attrs := append(serverAttrs(p.node.addr),
			attribute.Int("attempt", p.attempt),
			attribute.Int("pipeline.commands", cmds),
			attribute.Int("pipeline.requests", reqs))
		_, p.pipe = tel.tracer.Start(t.ctx, SpanPipeline, trace.WithAttributes(attrs...),
			trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(trace.Link{SpanContext: batch}))
	}
	p.inflight++
}

// answered notes c's reply, or the error that ends this attempt.
func (t *traced) answered(c *command, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := c.part
	c.part = nil
	if p == nil || p.pipe == nil {
		return
	}
	if err != nil && p.err == nil {
		p.err = err
	}
	if p.inflight--; p.inflight == 0 && p.queued == 0 {
		endSpan(p.pipe, p.err)
	}
}

// unsent ends the wait of a command dropped before it was sent (its
// lookup ended, or its node retired).
func (t *traced) unsent(c *command) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := c.part
	c.part = nil
	if p != nil && p.queued > 0 {
		if p.queued--; p.queued == 0 {
			p.wait.End()
		}
	}
}

// startBatch starts the span of one round trip if any request in it is
// sampled, linked to every sampled request it serves.
func (tel *telemetry) startBatch(n *node, send []*command, reqs int) trace.Span {
	var links []trace.Link
	for i, c := range send {
		if c.l.tr != nil && (i == 0 || send[i-1].l != c.l) {
			links = append(links, trace.Link{SpanContext: c.l.tr.span.SpanContext()})
		}
	}
	if links == nil {
		return nil
	}
	attrs := append(serverAttrs(n.addr), attribute.Int("pipeline.commands", len(send)), attribute.Int("pipeline.requests", reqs))
	_, span := tel.tracer.Start(context.Background(), SpanBatch, trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...), trace.WithAttributes(attrs...))
	return span
}
