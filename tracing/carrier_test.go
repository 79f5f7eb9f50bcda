package tracing_test

import (
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/featurestore/featureworker/tracing"
)

func TestHeaderCarrierGet(t *testing.T) {
	tests := []struct {
		name string
		h    nats.Header
		key  string
		want string
	}{
		{"nil", nil, "traceparent", ""},
		{"absent", nats.Header{"Other": {"x"}}, "traceparent", ""},
		{"exact", nats.Header{"traceparent": {"a"}}, "traceparent", "a"},
		{"canonical", nats.Header{"Traceparent": {"a"}}, "traceparent", "a"},
		{"upper", nats.Header{"TRACEPARENT": {"a"}}, "traceparent", "a"},
		{"lookup by other case", nats.Header{"traceparent": {"a"}}, "TraceParent", "a"},
		{"exact wins", nats.Header{"Traceparent": {"b"}, "traceparent": {"a"}, "TRACEPARENT": {"c"}}, "traceparent", "a"},
		{"first value", nats.Header{"Traceparent": {"a", "b"}}, "traceparent", "a"},
		{"empty exact falls back", nats.Header{"traceparent": {}, "Traceparent": {"b"}}, "traceparent", "b"},
		{"empty only", nats.Header{"Traceparent": nil}, "traceparent", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tracing.HeaderCarrier(tt.h).Get(tt.key); got != tt.want {
				t.Errorf("Get(%q) = %q, want %q", tt.key, got, tt.want)
			}
		})
	}
}

func TestHeaderCarrierSet(t *testing.T) {
	tests := []struct {
		name       string
		h          nats.Header
		key, value string
		want       nats.Header
	}{
		{"empty", nats.Header{}, "traceparent", "v", nats.Header{"traceparent": {"v"}}},
		{"replace exact", nats.Header{"traceparent": {"old", "older"}}, "traceparent", "v", nats.Header{"traceparent": {"v"}}},
		{"replace canonical", nats.Header{"Traceparent": {"old"}}, "traceparent", "v", nats.Header{"traceparent": {"v"}}},
		{
			"replace all spellings, keep others",
			nats.Header{"Traceparent": {"1"}, "TRACEPARENT": {"2"}, "traceparent": {"3"}, "Request-Timeout": {"50ms"}},
			"traceparent", "v",
			nats.Header{"traceparent": {"v"}, "Request-Timeout": {"50ms"}},
		},
		{"set with other case", nats.Header{"traceparent": {"old"}}, "Traceparent", "v", nats.Header{"Traceparent": {"v"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tracing.HeaderCarrier(tt.h).Set(tt.key, tt.value)
			if !equalHeader(tt.h, tt.want) {
				t.Errorf("after Set(%q, %q): header = %v, want %v", tt.key, tt.value, tt.h, tt.want)
			}
		})
	}
}

func TestHeaderCarrierKeys(t *testing.T) {
	tests := []struct {
		name string
		h    nats.Header
		want []string
	}{
		{"nil", nil, []string{}},
		{"mixed case kept as stored", nats.Header{"traceparent": {"a"}, "Tracestate": {"b"}, "BAGGAGE": {"c"}}, []string{"BAGGAGE", "Tracestate", "traceparent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tracing.HeaderCarrier(tt.h).Keys()
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Keys() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHeaderCarrierValues(t *testing.T) {
	// Spare capacity in the exact key's slice must not be written into.
	exact := make([]string, 1, 4)
	exact[0] = "a=1"
	h := nats.Header{"baggage": exact, "Baggage": {"b=2", "c=3"}, "Other": {"x"}}
	got := tracing.HeaderCarrier(h).Values("baggage")
	if len(got) != 3 || got[0] != "a=1" || !slices.Contains(got, "b=2") || !slices.Contains(got, "c=3") {
		t.Errorf("Values(baggage) = %q, want a=1 first, then b=2 and c=3", got)
	}
	if spare := exact[:2][1]; spare != "" || len(h["baggage"]) != 1 {
		t.Errorf("Values wrote into the header's slice: %v, spare %q", h, spare)
	}
	if got := tracing.HeaderCarrier(h).Values("Other"); !slices.Equal(got, []string{"x"}) {
		t.Errorf("Values(Other) = %q, want [x]", got)
	}
	if got := tracing.HeaderCarrier(h).Values("missing"); len(got) != 0 {
		t.Errorf("Values(missing) = %q, want none", got)
	}
}

// A header holding "baggage" and "Baggage" (two hops, two conventions) keeps
// the members of both, because the baggage propagator uses Values.
func TestExtractBaggageFromMixedCaseHeaders(t *testing.T) {
	setupOff(t)
	h := nats.Header{"baggage": {"a=1"}, "Baggage": {"b=2"}}
	bag := baggage.FromContext(tracing.Extract(context.Background(), h))
	if bag.Member("a").Value() != "1" || bag.Member("b").Value() != "2" {
		t.Errorf("baggage = %q, want a=1 and b=2", bag.String())
	}
}

func TestInjectExtractRoundTrip(t *testing.T) {
	setupOff(t)
	ts, err := trace.ParseTraceState("vendor1=opaque1,vendor2=opaque2")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.Parse("tenant=acme,model=ranker%20v2;owner=ml")
	if err != nil {
		t.Fatal(err)
	}

	for _, flags := range []trace.TraceFlags{trace.FlagsSampled, 0} {
		t.Run(flags.String(), func(t *testing.T) {
			sc := trace.NewSpanContext(trace.SpanContextConfig{
				TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
				SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
				TraceFlags: flags,
				TraceState: ts,
			})
			ctx := trace.ContextWithSpanContext(context.Background(), sc)
			ctx = baggage.ContextWithBaggage(ctx, bag)

			// A stale, differently spelled field must be replaced, not joined.
			h := nats.Header{"Traceparent": {"00-00000000000000000000000000000001-0000000000000001-01"}}
			tracing.Inject(ctx, h)
			for _, k := range []string{"traceparent", "tracestate", "baggage"} {
				if len(h[k]) != 1 {
					t.Errorf("header %q = %q after Inject, want one value", k, h[k])
				}
			}
			if _, ok := h["Traceparent"]; ok {
				t.Errorf("Inject left the stale Traceparent field: %v", h)
			}

			got := tracing.Extract(context.Background(), h)
			gotSC := trace.SpanContextFromContext(got)
			if gotSC.TraceID() != sc.TraceID() || gotSC.SpanID() != sc.SpanID() {
				t.Errorf("extracted ids %s/%s, want %s/%s", gotSC.TraceID(), gotSC.SpanID(), sc.TraceID(), sc.SpanID())
			}
			if gotSC.IsSampled() != sc.IsSampled() {
				t.Errorf("extracted sampled = %v, want %v", gotSC.IsSampled(), sc.IsSampled())
			}
			if gotSC.TraceState().String() != ts.String() {
				t.Errorf("extracted tracestate %q, want %q", gotSC.TraceState(), ts)
			}
			if !gotSC.IsRemote() {
				t.Error("extracted span context is not marked remote")
			}
			gotBag := baggage.FromContext(got)
			if gotBag.Len() != 2 || gotBag.Member("tenant").Value() != "acme" || gotBag.Member("model").Value() != "ranker v2" {
				t.Errorf("extracted baggage %q, want %q", gotBag, bag)
			}
			if p := gotBag.Member("model").Properties(); len(p) != 1 || p[0].Key() != "owner" {
				t.Errorf("baggage member properties = %v, want owner", p)
			}
		})
	}
}

// Callers in other languages send lowercase fields; a Go caller going
// through http.Header sends canonical ones. Both must be understood.
func TestExtractFromOtherLanguages(t *testing.T) {
	setupOff(t)
	const (
		traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		traceID     = "0af7651916cd43dd8448eb211c80319c"
		spanID      = "b7ad6b7169203331"
	)
	for _, h := range []nats.Header{
		{"traceparent": {traceparent}, "tracestate": {"congo=t61rcWkgMzE"}},
		{"Traceparent": {traceparent}, "Tracestate": {"congo=t61rcWkgMzE"}},
		{"TRACEPARENT": {traceparent}, "TRACESTATE": {"congo=t61rcWkgMzE"}},
	} {
		sc := trace.SpanContextFromContext(tracing.Extract(context.Background(), h))
		if !sc.IsValid() || sc.TraceID().String() != traceID || sc.SpanID().String() != spanID || !sc.IsSampled() {
			t.Errorf("Extract(%v) = %s/%s sampled=%v valid=%v, want %s/%s sampled", h, sc.TraceID(), sc.SpanID(), sc.IsSampled(), sc.IsValid(), traceID, spanID)
		}
		if got := sc.TraceState().Get("congo"); got != "t61rcWkgMzE" {
			t.Errorf("Extract(%v) tracestate congo = %q", h, got)
		}
	}
}

func TestInjectNothingToPropagate(t *testing.T) {
	setupOff(t)
	h := nats.Header{}
	tracing.Inject(context.Background(), h)
	if len(h) != 0 {
		t.Errorf("Inject with an empty context wrote %v", h)
	}
	tracing.Inject(context.Background(), nil) // must not panic

	// Baggage alone is still propagated.
	bag, _ := baggage.Parse("tenant=acme")
	tracing.Inject(baggage.ContextWithBaggage(context.Background(), bag), h)
	if h.Get("baggage") != "tenant=acme" {
		t.Errorf("baggage-only Inject wrote %v", h)
	}

	if allocs := testing.AllocsPerRun(100, func() { tracing.Inject(context.Background(), h) }); allocs != 0 {
		t.Errorf("Inject with nothing to propagate allocates %v times", allocs)
	}
}

func TestExtractEmpty(t *testing.T) {
	setupOff(t)
	ctx := context.Background()
	for _, h := range []nats.Header{nil, {}, {"traceparent": {"garbage"}}} {
		if sc := trace.SpanContextFromContext(tracing.Extract(ctx, h)); sc.IsValid() {
			t.Errorf("Extract(%v) gave a valid span context %v", h, sc)
		}
	}
}

func equalHeader(a, b nats.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}
