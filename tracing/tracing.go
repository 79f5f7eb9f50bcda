// Package tracing sets up OpenTelemetry tracing for the feature worker and its
// clients, and carries W3C trace context and baggage in NATS message headers.
//
// Setup reads the standard OpenTelemetry environment variables, so tracing is
// configured by the deployment rather than by flags. Without an OTLP endpoint
// tracing stays off and costs next to nothing, but trace context received from
// callers is still passed on to whatever the process calls next.
package tracing

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// InstrumentationName is the instrumentation scope name of the spans this
// project creates through Tracer.
const InstrumentationName = "github.com/featurestore/featureworker/tracing"

// OTLP protocols accepted in OTEL_EXPORTER_OTLP_PROTOCOL and
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// Environment variables Setup interprets itself. The exporters and the SDK
// read the others (endpoints, headers, timeouts, TLS, sampler, batching,
// resource attributes) directly.
const (
	envSDKDisabled    = "OTEL_SDK_DISABLED"
	envTracesExporter = "OTEL_TRACES_EXPORTER"
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
)

// Setup installs the global TextMapPropagator and TracerProvider according to
// the standard OpenTelemetry environment variables, and returns a function
// that flushes and stops the provider.
//
// The propagator (W3C tracecontext and baggage) is installed first and in
// every case, including when Setup fails, so that trace context always passes
// through the process.
//
// Tracing is off, and the global TracerProvider is a no-op one whose spans
// do not record, when any of these holds:
//   - OTEL_SDK_DISABLED is "true" (in any case);
//   - OTEL_TRACES_EXPORTER is "none";
//   - neither OTEL_EXPORTER_OTLP_TRACES_ENDPOINT nor
//     OTEL_EXPORTER_OTLP_ENDPOINT is set to a non-empty value.
//
// Otherwise spans are batched (sdktrace.BatchSpanProcessor, tuned by the
// OTEL_BSP_* variables) and exported over OTLP with the protocol given by
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else
// "http/protobuf" as the specification prescribes; "grpc" is the only other
// accepted value. The exporter reads the endpoint, headers, timeout,
// compression and TLS settings from the OTEL_EXPORTER_OTLP_* variables itself,
// and the SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (the
// default is parentbased_always_on; an invalid sampler is reported through
// otel.Handle and the default is used). The resource carries service.name
// from OTEL_SERVICE_NAME, else from OTEL_RESOURCE_ATTRIBUTES, else
// defaultServiceName, plus the other OTEL_RESOURCE_ATTRIBUTES, the host name
// and the SDK version; an attribute that cannot be read (a malformed
// OTEL_RESOURCE_ATTRIBUTES entry, say) is reported through otel.Handle and
// left out rather than failing Setup.
//
// Setup returns an error, and leaves the global TracerProvider unchanged, if
// OTEL_TRACES_EXPORTER names an exporter other than "otlp" or "none", if the
// protocol is not one of the two above, or if the exporter cannot be created.
// Setup does not contact the collector: an unreachable endpoint shows up as
// export errors through otel.Handle later, not as an error here.
//
// On success shutdown is non-nil. It flushes the spans still queued, stops
// the exporter and makes later spans non-recording; it gives up when its
// context is done. Calling it again returns nil. When tracing is off it does
// nothing and returns nil.
func Setup(ctx context.Context, defaultServiceName string) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{},
		propagation.Baggage{},
	))

	enabled, protocol, err := configFromEnv()
	if err != nil {
		return nil, err
	}
	if !enabled {
		// An explicit no-op provider rather than the global default: the
		// default delegates to whatever provider is installed later, which is
		// not "off", and costs an atomic load per call on top.
		otel.SetTracerProvider(noop.NewTracerProvider())
		return func(context.Context) error { return nil }, nil
	}

	var exp sdktrace.SpanExporter
	switch protocol {
	case ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	case ProtocolHTTPProtobuf:
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: creating OTLP %s exporter: %w", protocol, err)
	}

	// Later options override earlier ones, so the environment (which includes
	// OTEL_SERVICE_NAME) wins over the default service name.
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithAttributes(semconv.ServiceName(defaultServiceName)),
		resource.WithFromEnv(),
	)
	if err != nil {
		// resource.New always returns a usable resource, lacking only what
		// failed (a malformed OTEL_RESOURCE_ATTRIBUTES entry, say). Losing an
		// attribute is no reason to run without traces.
		otel.Handle(err)
	}

	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
	)
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// configFromEnv reports whether tracing is on and, if so, which OTLP protocol
// to use.
func configFromEnv() (enabled bool, protocol string, err error) {
	// The specification makes every value other than "true" mean false.
	if strings.EqualFold(strings.TrimSpace(os.Getenv(envSDKDisabled)), "true") {
		return false, "", nil
	}

	switch exporter := strings.ToLower(strings.TrimSpace(os.Getenv(envTracesExporter))); exporter {
	case "", "otlp":
	case "none":
		return false, "", nil
	default:
		return false, "", fmt.Errorf("tracing: %s=%q is not supported (want \"otlp\" or \"none\")", envTracesExporter, exporter)
	}

	// Validate the protocol even when there is no endpoint, so that a typo
	// is reported before the day someone turns tracing on.
	protocol = ProtocolHTTPProtobuf
	for _, key := range []string{envTracesProtocol, envProtocol} {
		if v := strings.TrimSpace(os.Getenv(key)); v != "" {
			protocol = strings.ToLower(v)
			if protocol != ProtocolGRPC && protocol != ProtocolHTTPProtobuf {
				return false, "", fmt.Errorf("tracing: %s=%q is not supported (want %q or %q)", key, v, ProtocolGRPC, ProtocolHTTPProtobuf)
			}
			break
		}
	}

	if strings.TrimSpace(os.Getenv(envTracesEndpoint)) == "" && strings.TrimSpace(os.Getenv(envEndpoint)) == "" {
		return false, "", nil
	}
	return true, protocol, nil
}

// Tracer returns the project's tracer, named InstrumentationName, from the
// current global TracerProvider.
//
// It looks the tracer up on every call so that it always follows the
// provider installed by the latest Setup. Code on a hot path may keep the
// result instead; a tracer obtained before the first Setup follows the
// provider that Setup installs, but not any installed after that.
func Tracer() trace.Tracer {
	return otel.Tracer(InstrumentationName)
}
