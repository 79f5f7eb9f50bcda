package jaegertest_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/featurestore/featureworker/internal/jaegertest"
	"github.com/featurestore/featureworker/tracing"
)

// TestExportToJaeger sends a parent and a child span through tracing.Setup
// to a real Jaeger over each OTLP protocol and reads them back.
func TestExportToJaeger(t *testing.T) {
	j := jaegertest.Start(t)

	for _, tc := range []struct{ protocol, endpoint string }{
		{"grpc", j.OTLPGRPCEndpoint},
		{"http/protobuf", j.OTLPHTTPEndpoint},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			for _, kv := range os.Environ() {
				if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
					t.Setenv(k, "")
				}
			}
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tc.endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", tc.protocol)
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=jaegertest")
			service := "jaegertest-" + strings.ReplaceAll(tc.protocol, "/", "-")

			ctx := context.Background()
			shutdown, err := tracing.Setup(ctx, service)
			if err != nil {
				t.Fatal(err)
			}
			ctx, parent := tracing.Tracer().Start(ctx, "parent", trace.WithAttributes(
				attribute.String("protocol", tc.protocol),
				attribute.Int64("big", 1<<53+1), // not exact as a float64
			))
			_, child := tracing.Tracer().Start(ctx, "child", trace.WithSpanKind(trace.SpanKindClient))
			child.End()
			parent.End()

			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := shutdown(sctx); err != nil {
				t.Fatalf("shutdown (flush to Jaeger): %v", err)
			}

			traceID := parent.SpanContext().TraceID().String()
			tr := j.WaitTrace(t, traceID, 2, 10*time.Second)
			if len(tr.Spans) != 2 {
				t.Fatalf("trace has %d spans, want 2", len(tr.Spans))
			}
			if tr.TraceID != traceID {
				t.Errorf("TraceID = %s, want %s", tr.TraceID, traceID)
			}

			p, c := tr.Span("parent"), tr.Span("child")
			if p == nil || c == nil {
				t.Fatalf("spans %+v, want parent and child", tr.Spans)
			}
			if p.SpanID != parent.SpanContext().SpanID().String() || p.ParentSpanID != "" {
				t.Errorf("parent span %s with parent %q, want %s and none", p.SpanID, p.ParentSpanID, parent.SpanContext().SpanID())
			}
			if c.SpanID != child.SpanContext().SpanID().String() || c.ParentSpanID != p.SpanID {
				t.Errorf("child span %s with parent %q, want %s with parent %s", c.SpanID, c.ParentSpanID, child.SpanContext().SpanID(), p.SpanID)
			}
			if len(c.References) != 1 || c.References[0].RefType != "CHILD_OF" || c.References[0].TraceID != traceID {
				t.Errorf("child references = %+v, want one CHILD_OF in trace %s", c.References, traceID)
			}
			for _, s := range []*jaegertest.Span{p, c} {
				if s.ServiceName != service {
					t.Errorf("span %s service = %q, want %q", s.OperationName, s.ServiceName, service)
				}
				if got := s.ProcessTags["deployment.environment"]; got != "jaegertest" {
					t.Errorf("span %s deployment.environment = %v, want jaegertest", s.OperationName, got)
				}
				if got := s.Tags["otel.scope.name"]; got != tracing.InstrumentationName {
					t.Errorf("span %s otel.scope.name = %v, want %s", s.OperationName, got, tracing.InstrumentationName)
				}
			}
			if got := p.Tags["protocol"]; got != tc.protocol {
				t.Errorf("parent tag protocol = %v, want %s", got, tc.protocol)
			}
			if got := p.Tags["big"]; got != int64(1<<53+1) {
				t.Errorf("parent tag big = %v (%T), want %d", got, got, int64(1<<53+1))
			}
			if got := c.Tags["span.kind"]; got != "client" {
				t.Errorf("child span.kind = %v, want client", got)
			}
			if !c.StartTime.After(time.Now().Add(-time.Minute)) || c.Duration < 0 {
				t.Errorf("child start %v duration %v look wrong", c.StartTime, c.Duration)
			}
		})
	}
}

func TestTraceNotFound(t *testing.T) {
	j := jaegertest.Start(t)
	_, err := j.Trace(context.Background(), "0af7651916cd43dd8448eb211c80319c")
	if !errors.Is(err, jaegertest.ErrTraceNotFound) {
		t.Errorf("Trace of an unknown id: err = %v, want ErrTraceNotFound", err)
	}
}

func TestConfigUsesGivenPorts(t *testing.T) {
	cfg := jaegertest.Config(1001, 1002, 1003, 1004)
	for _, want := range []string{"127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003", "127.0.0.1:1004", "memory:", "enable_tracing: false", "level: none"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q:\n%s", want, cfg)
		}
	}
}
