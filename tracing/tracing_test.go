package tracing_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/featurestore/featureworker/tracing"
)

// clearOTELEnv blanks every OTEL_* variable for the duration of the test, so
// that the developer's or CI's environment cannot leak in. An empty value
// means unset to the SDK and to Setup.
func clearOTELEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			t.Setenv(k, "")
		}
	}
}

// setupOff runs Setup with tracing off, which installs the propagator.
func setupOff(t *testing.T) {
	t.Helper()
	clearOTELEnv(t)
	shutdown, err := tracing.Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
}

func setup(t *testing.T) func(context.Context) error {
	t.Helper()
	shutdown, err := tracing.Setup(context.Background(), "default-svc")
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if shutdown == nil {
		t.Fatal("Setup returned a nil shutdown and no error")
	}
	t.Cleanup(func() { _ = shutdown(context.Background()) })
	return shutdown
}

func TestSetupOff(t *testing.T) {
	clearOTELEnv(t)
	shutdown := setup(t)

	if _, ok := otel.GetTracerProvider().(noop.TracerProvider); !ok {
		t.Errorf("global TracerProvider is %T, want noop.TracerProvider", otel.GetTracerProvider())
	}
	_, span := tracing.Tracer().Start(context.Background(), "root")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Errorf("root span recording=%v valid=%v, want neither", span.IsRecording(), span.SpanContext().IsValid())
	}
	span.End()

	if fields := otel.GetTextMapPropagator().Fields(); !slices.Contains(fields, "traceparent") || !slices.Contains(fields, "baggage") {
		t.Errorf("propagator fields = %q, want traceparent and baggage", fields)
	}

	// With tracing off, a caller's trace context still reaches the next hop.
	in := nats.Header{"traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	ctx, span := tracing.Tracer().Start(tracing.Extract(context.Background(), in), "handle")
	out := nats.Header{}
	tracing.Inject(ctx, out)
	span.End()
	if got := out.Get("traceparent"); got != in.Get("traceparent") {
		t.Errorf("pass-through traceparent = %q, want %q", got, in.Get("traceparent"))
	}

	for range 2 {
		if err := shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
}

func TestSetupSwitchedOff(t *testing.T) {
	for _, env := range []map[string]string{
		{"OTEL_SDK_DISABLED": "true"},
		{"OTEL_SDK_DISABLED": "TRUE"},
		{"OTEL_TRACES_EXPORTER": "none"},
	} {
		clearOTELEnv(t)
		srv, reqs := newOTLPHTTPServer(t)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
		for k, v := range env {
			t.Setenv(k, v)
		}
		shutdown := setup(t)
		_, span := tracing.Tracer().Start(context.Background(), "root")
		if span.IsRecording() {
			t.Errorf("%v: span is recording", env)
		}
		span.End()
		if err := shutdown(context.Background()); err != nil {
			t.Errorf("%v: shutdown: %v", env, err)
		}
		if len(reqs) != 0 {
			t.Errorf("%v: collector received %d requests", env, len(reqs))
		}
	}
}

func TestSetupErrors(t *testing.T) {
	for _, env := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "udp"},
		{"OTEL_TRACES_EXPORTER": "zipkin"},
	} {
		clearOTELEnv(t)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
		for k, v := range env {
			t.Setenv(k, v)
		}
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
		before := otel.GetTracerProvider()

		shutdown, err := tracing.Setup(context.Background(), "svc")
		if err == nil {
			_ = shutdown(context.Background())
			t.Errorf("%v: Setup succeeded, want an error", env)
			continue
		}
		t.Logf("%v: %v", env, err)
		if shutdown != nil {
			t.Errorf("%v: shutdown is non-nil on error", env)
		}
		if otel.GetTracerProvider() != before {
			t.Errorf("%v: failed Setup changed the TracerProvider", env)
		}
		if !slices.Contains(otel.GetTextMapPropagator().Fields(), "traceparent") {
			t.Errorf("%v: failed Setup did not install the propagator", env)
		}
	}
}

func TestSetupOTLPHTTP(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		wantPath string
		wantSvc  string
	}{
		{"default protocol", nil, "/v1/traces", "default-svc"},
		{"explicit", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_SERVICE_NAME": "svc-from-env"}, "/v1/traces", "svc-from-env"},
		{"traces protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "HTTP/protobuf"}, "/v1/traces", "default-svc"},
		{"service name from attributes", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test,service.name=svc-from-attrs"}, "/v1/traces", "svc-from-attrs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearOTELEnv(t)
			srv, reqs := newOTLPHTTPServer(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			shutdown := setup(t)
			parent, child := startTwoSpans(t)

			if len(reqs) != 0 {
				t.Errorf("exported before shutdown: batching is not in effect")
			}
			if err := shutdown(context.Background()); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			var r otlpHTTPRequest
			select {
			case r = <-reqs:
			default:
				t.Fatal("no export request reached the collector by the end of shutdown")
			}
			if r.method != http.MethodPost || r.path != tt.wantPath || r.contentType != "application/x-protobuf" {
				t.Errorf("request %s %s (%s), want POST %s (application/x-protobuf)", r.method, r.path, r.contentType, tt.wantPath)
			}
			if len(r.body) == 0 {
				t.Fatal("empty request body")
			}
			var req coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(r.body, &req); err != nil {
				t.Fatalf("body is not an ExportTraceServiceRequest: %v", err)
			}
			checkExport(t, &req, tt.wantSvc, parent, child)
		})
	}
}

func TestSetupOTLPHTTPTracesEndpoint(t *testing.T) {
	clearOTELEnv(t)
	srv, reqs := newOTLPHTTPServer(t)
	// The signal-specific endpoint is used as given; the generic one would
	// get /v1/traces appended.
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", srv.URL+"/custom/traces")
	shutdown := setup(t)
	startTwoSpans(t)
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reqs:
		if r.path != "/custom/traces" {
			t.Errorf("path = %q, want /custom/traces", r.path)
		}
	default:
		t.Fatal("no export request")
	}
}

func TestSetupOTLPGRPC(t *testing.T) {
	clearOTELEnv(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	collector := &grpcCollector{reqs: make(chan *coltracepb.ExportTraceServiceRequest, 10)}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, collector)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)

	// The http scheme makes the gRPC exporter use plaintext.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+lis.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
	shutdown := setup(t)
	parent, child := startTwoSpans(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case req := <-collector.reqs:
		checkExport(t, req, "default-svc", parent, child)
	default:
		t.Fatal("no export request reached the collector by the end of shutdown")
	}
}

func TestSetupSamplerFromEnv(t *testing.T) {
	for _, tt := range []struct {
		sampler, arg string
		want         bool
	}{
		{"", "", true}, // parentbased_always_on
		{"always_off", "", false},
		{"traceidratio", "0", false},
		{"traceidratio", "1", true},
	} {
		clearOTELEnv(t)
		srv, _ := newOTLPHTTPServer(t)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
		t.Setenv("OTEL_TRACES_SAMPLER", tt.sampler)
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", tt.arg)
		shutdown := setup(t)
		_, span := tracing.Tracer().Start(context.Background(), "root")
		if span.IsRecording() != tt.want {
			t.Errorf("sampler %q arg %q: recording = %v, want %v", tt.sampler, tt.arg, span.IsRecording(), tt.want)
		}
		span.End()
		_ = shutdown(context.Background())
	}
}

// startTwoSpans starts and ends a parent span and a child span.
func startTwoSpans(t *testing.T) (parent, child trace.SpanContext) {
	t.Helper()
	ctx, p := tracing.Tracer().Start(context.Background(), "parent")
	_, c := tracing.Tracer().Start(ctx, "child")
	if !p.IsRecording() || !c.IsRecording() {
		t.Fatal("spans are not recording with an endpoint configured")
	}
	c.End()
	p.End()
	return p.SpanContext(), c.SpanContext()
}

func checkExport(t *testing.T, req *coltracepb.ExportTraceServiceRequest, wantSvc string, parent, child trace.SpanContext) {
	t.Helper()
	if len(req.ResourceSpans) != 1 {
		t.Fatalf("got %d resource spans, want 1", len(req.ResourceSpans))
	}
	rs := req.ResourceSpans[0]
	if got := attr(rs.GetResource().GetAttributes(), "service.name"); got != wantSvc {
		t.Errorf("service.name = %q, want %q", got, wantSvc)
	}
	if got := attr(rs.GetResource().GetAttributes(), "deployment.environment"); got != "test" {
		t.Errorf("deployment.environment = %q, want test (from OTEL_RESOURCE_ATTRIBUTES)", got)
	}
	traceID, parentID, childID := parent.TraceID(), parent.SpanID(), child.SpanID()
	spans := map[string][2][]byte{} // name -> span id, parent span id
	for _, ss := range rs.ScopeSpans {
		if ss.GetScope().GetName() != tracing.InstrumentationName {
			t.Errorf("scope = %q, want %q", ss.GetScope().GetName(), tracing.InstrumentationName)
		}
		for _, s := range ss.Spans {
			if string(s.TraceId) != string(traceID[:]) {
				t.Errorf("span %q trace id %x, want %s", s.Name, s.TraceId, parent.TraceID())
			}
			spans[s.Name] = [2][]byte{s.SpanId, s.ParentSpanId}
		}
	}
	if len(spans) != 2 {
		t.Fatalf("exported spans %v, want parent and child", spans)
	}
	if got := spans["child"]; string(got[0]) != string(childID[:]) || string(got[1]) != string(parentID[:]) {
		t.Errorf("child span %x parent %x, want %s parent %s", got[0], got[1], child.SpanID(), parent.SpanID())
	}
	if got := spans["parent"]; string(got[0]) != string(parentID[:]) || len(got[1]) != 0 {
		t.Errorf("parent span %x parent %x, want %s and no parent", got[0], got[1], parent.SpanID())
	}
}

func attr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

type otlpHTTPRequest struct {
	method, path, contentType string
	body                      []byte
}

// newOTLPHTTPServer starts a stand-in OTLP/HTTP collector that records each
// request and answers with an empty (successful) ExportTraceServiceResponse.
func newOTLPHTTPServer(t *testing.T) (*httptest.Server, chan otlpHTTPRequest) {
	t.Helper()
	reqs := make(chan otlpHTTPRequest, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		reqs <- otlpHTTPRequest{r.Method, r.URL.Path, r.Header.Get("Content-Type"), body}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, reqs
}

type grpcCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	reqs chan *coltracepb.ExportTraceServiceRequest
}

func (c *grpcCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.reqs <- req
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// BenchmarkOff measures what instrumented code pays with tracing off: a
// span around a unit of work and propagation into an outgoing header.
func BenchmarkOff(b *testing.B) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			b.Setenv(k, "")
		}
	}
	if _, err := tracing.Setup(context.Background(), "bench"); err != nil {
		b.Fatal(err)
	}
	h := nats.Header{}
	b.ReportAllocs()
	for b.Loop() {
		ctx, span := tracing.Tracer().Start(context.Background(), "lookup")
		tracing.Inject(ctx, h)
		span.End()
	}
}
