package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/internal/jaegertest"
	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/tracing"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// TestTracesInJaeger runs the whole worker program exporting OTLP to a real
// Jaeger, sends lookups under a caller's span, and reads the traces back
// from Jaeger's query API.
func TestTracesInJaeger(t *testing.T) {
	j := jaegertest.Start(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", j.OTLPHTTPEndpoint)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_SERVICE_NAME", "features-worker")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")

	m, ns, stop := startMain(t, func(m *Main) { m.MetricsAddr = "127.0.0.1:0" })
	set := testSet

	// The caller is another service with its own tracer provider.
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(j.OTLPHTTPEndpoint+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	caller := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("inference-service"))))
	client := &subjects.Client{Conn: natstest.Connect(t, ns), Inject: tracing.Inject}
	ctx, span := caller.Tracer("test").Start(context.Background(), "predict")
	ids := []int{1, 2, 3, 4, 5, 6}
	got, err := client.Lookup(ctx, featureset.Names(featureset.Entity, ids), []string{"f1"})
	span.End()
	if err == nil {
		err = set.Check(ids, []int{1}, got)
	}
	if err != nil {
		t.Fatal(err)
	}
	traceID := span.SpanContext().TraceID().String()

	// A caller in another language sends a lowercase traceparent.
	const foreignTrace, foreignParent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	msg := nats.NewMsg(subjects.Lookup)
	msg.Header["traceparent"] = []string{"00-" + foreignTrace + "-" + foreignParent + "-01"}
	msg.Data = []byte(`{"entities":["e:1"],"features":["f1"]}`)
	if reply, err := client.Conn.RequestMsg(msg, 5*time.Second); err != nil || subjects.ReplyError(reply) != nil {
		t.Fatalf("lowercase traceparent request: %v", err)
	}

	checkMetrics(t, m.MetricsURL())
	healthURL := strings.TrimSuffix(m.MetricsURL(), "metrics") + "healthz"
	if code := healthcheck(healthURL); code != 0 {
		t.Errorf("healthcheck %s = %d, want 0 while serving", healthURL, code)
	}
	if err := caller.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil { // flushes the worker's spans
		t.Fatal(err)
	}

	tr := j.WaitTrace(t, traceID, 5, 30*time.Second)
	predict := tr.Span("predict")
	process := tr.Span(worker.SpanProcess + subjects.Lookup)
	if predict == nil || process == nil {
		t.Fatalf("trace lacks the caller's or the worker's span: %+v", tr.Spans)
	}
	if process.ParentSpanID != predict.SpanID || process.ServiceName != "features-worker" || predict.ServiceName != "inference-service" {
		t.Errorf("process span: parent %s service %s, want parent %s (predict)", process.ParentSpanID, process.ServiceName, predict.SpanID)
	}
	for key, want := range map[string]any{"messaging.system": "nats", "messaging.destination.name": subjects.Lookup, "messaging.consumer.group.name": subjects.QueueGroup} {
		if process.Tags[key] != want {
			t.Errorf("process span tag %s = %v, want %v", key, process.Tags[key], want)
		}
	}
	counts := map[string]int{}
	nodes := map[string]map[any]bool{worker.SpanPoolWait: {}, worker.SpanPipeline: {}}
	for _, s := range tr.Spans {
		counts[s.OperationName]++
		if seen := nodes[s.OperationName]; seen != nil {
			seen[s.Tags["server.port"]] = true
		}
		switch s.OperationName {
		case worker.SpanPoolWait, worker.SpanPipeline, worker.SpanReply:
			if s.ParentSpanID != process.SpanID {
				t.Errorf("%s span's parent is %s, want the process span %s", s.OperationName, s.ParentSpanID, process.SpanID)
			}
		}
		if s.OperationName == worker.SpanPipeline && (s.Tags["db.system"] != "redis" || s.Tags["server.address"] != "127.0.0.1") {
			t.Errorf("pipeline span tags: %v", s.Tags)
		}
	}
	// Six entities over three masters: a wait and a pipeline on every node
	// (usually exactly one each; more if a busy node split the commands).
	if len(nodes[worker.SpanPoolWait]) != 3 || len(nodes[worker.SpanPipeline]) != 3 || counts[worker.SpanReply] != 1 {
		t.Errorf("span counts %v over nodes %v, want pool waits and pipelines on 3 nodes, 1 reply", counts, nodes)
	}

	foreign := j.WaitTrace(t, foreignTrace, 4, 30*time.Second)
	if p := foreign.Span(worker.SpanProcess + subjects.Lookup); p == nil || p.ParentSpanID != foreignParent {
		t.Errorf("lowercase traceparent not continued: %+v", p)
	}
}

// checkMetrics reads /metrics and looks for every family the worker
// promises.
func checkMetrics(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, family := range []string{
		`features_requests_total{code="0",otel_scope_name=`, `outcome="ok"`,
		"features_request_duration_seconds_bucket", "features_pool_wait_seconds_bucket",
		"features_pipeline_commands_bucket", "features_pipeline_requests_bucket",
		"features_pending", "features_connections_open{node=", "features_connections_busy{node=",
		"features_node_queued{node=", "features_nats_dropped_total", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(string(body), family) {
			t.Errorf("/metrics lacks %s", family)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
