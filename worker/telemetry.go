package worker

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// instrumentationName names the worker's tracer and meter.
const instrumentationName = "github.com/featurestore/featureworker/worker"

// Span names, as they show in Jaeger.
const (
	SpanProcess  = "process "  // + subject; one per request
	SpanPoolWait = "pool wait" // per request and node: queued until sent
	SpanPipeline = "redis pipeline"
	SpanBatch    = "redis pipeline batch" // per round trip, linked to the requests
	SpanReply    = "reply"
)

// telemetry holds the worker's tracer and metric instruments. Every
// instrument comes from the configured providers, which are no-ops unless
// the program installs real ones, so an unobserved worker pays almost
// nothing; spans below the request span are only made for sampled requests.
type telemetry struct {
	tracer trace.Tracer
	// tracingOff is set when the provider is a no-op one (tracing.Setup
	// installs one when nothing is configured): then not even the
	// caller's headers are parsed.
	tracingOff bool

	requests      metric.Int64Counter
	latency       metric.Float64Histogram
	poolWait      metric.Float64Histogram
	batchCommands metric.Int64Histogram
	batchRequests metric.Int64Histogram

	outcomes sync.Map // code -> metric.MeasurementOption, so Add does not allocate
}

// Seconds buckets from 100µs to 10s, for latency and pool wait.
var secondsBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

func newTelemetry(cfg Config) (*telemetry, error) {
	tp, mp := cfg.TracerProvider, cfg.MeterProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentationName)
	_, off := tp.(noop.TracerProvider)
	t := &telemetry{tracer: tp.Tracer(instrumentationName), tracingOff: off}
	var errs [5]error
	t.requests, errs[0] = m.Int64Counter("features.requests",
		metric.WithDescription("Requests answered, by outcome (ok or error) and code."))
	t.latency, errs[1] = m.Float64Histogram("features.request.duration", metric.WithUnit("s"),
		metric.WithDescription("From receipt to reply."), metric.WithExplicitBucketBoundaries(secondsBuckets...))
	t.poolWait, errs[2] = m.Float64Histogram("features.pool.wait", metric.WithUnit("s"),
		metric.WithDescription("From queueing a command until a connection sends it."), metric.WithExplicitBucketBoundaries(secondsBuckets...))
	t.batchCommands, errs[3] = m.Int64Histogram("features.pipeline.commands",
		metric.WithDescription("Commands per pipeline."), metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
	t.batchRequests, errs[4] = m.Int64Histogram("features.pipeline.requests",
		metric.WithDescription("Requests served by one pipeline."), metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024))
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

// countReply records one answered request.
func (t *telemetry) countReply(code int, took time.Duration) {
	opt, ok := t.outcomes.Load(code)
	if !ok {
		outcome := "ok"
		if code != 0 {
			outcome = "error"
		}
		opt, _ = t.outcomes.LoadOrStore(code, metric.WithAttributeSet(attribute.NewSet(
			attribute.String("outcome", outcome), attribute.Int("code", code))))
	}
	ctx := context.Background()
	t.requests.Add(ctx, 1, opt.(metric.MeasurementOption))
	t.latency.Record(ctx, took.Seconds())
}

// registerGauges reports the values the worker keeps anyway (pending
// requests, connections, retries, slow-consumer drops) when metrics are
// collected, instead of updating instruments on the hot path.
func (t *telemetry) registerGauges(mp metric.MeterProvider, w *Worker) error {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(instrumentationName)
	pending, err1 := m.Int64ObservableGauge("features.pending", metric.WithDescription("Requests accepted and not yet answered."))
	open, err2 := m.Int64ObservableGauge("features.connections.open", metric.WithDescription("Data connections up, per Redis node (the worker's own accounting)."))
	busy, err3 := m.Int64ObservableGauge("features.connections.busy", metric.WithDescription("Data connections in a round trip, per Redis node."))
	queued, err4 := m.Int64ObservableGauge("features.node.queued", metric.WithDescription("Commands waiting for a connection, per Redis node."))
	retries, err5 := m.Int64ObservableCounter("features.retries", metric.WithDescription("Commands retried, by reason."))
	drops, err6 := m.Int64ObservableCounter("features.nats.dropped", metric.WithDescription("Requests NATS dropped because the worker was a slow consumer."))
	for _, err := range []error{err1, err2, err3, err4, err5, err6} {
		if err != nil {
			return err
		}
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := w.Stats()
		o.ObserveInt64(pending, s.Pending)
		for _, n := range s.Pool.Nodes {
			node := metric.WithAttributes(attribute.String("node", n.Addr))
			o.ObserveInt64(open, int64(n.Open), node)
			o.ObserveInt64(busy, int64(n.Busy), node)
			o.ObserveInt64(queued, int64(n.Queued), node)
		}
		for reason, n := range s.Pool.Retries {
			o.ObserveInt64(retries, int64(n), metric.WithAttributes(attribute.String("reason", reason)))
		}
		o.ObserveInt64(drops, s.Dropped)
		return nil
	}, pending, open, busy, queued, retries, drops)
	return err
}

// endSpan ends a span with the outcome of what it covered.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// serverAttrs are a node's server.address and server.port.
func serverAttrs(addr string) []attribute.KeyValue {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return []attribute.KeyValue{
		attribute.String("db.system", "redis"),
		attribute.String("server.address", host),
		attribute.Int("server.port", p),
	}
}
