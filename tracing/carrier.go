package tracing

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// HeaderCarrier adapts a nats.Header to propagation.TextMapCarrier and
// propagation.ValuesGetter.
//
// nats.Header is a plain map and, unlike http.Header, its keys are
// case-sensitive and never canonicalised. The W3C propagators use the
// lowercase names "traceparent", "tracestate" and "baggage", which is also what
// most non-Go clients send, but a Go caller that built its headers through
// http.Header sends "Traceparent". HeaderCarrier therefore matches keys
// without regard to case, so that both spellings work and a header never ends
// up holding the same field twice.
type HeaderCarrier nats.Header

var (
	_ propagation.TextMapCarrier = HeaderCarrier(nil)
	_ propagation.ValuesGetter   = HeaderCarrier(nil)
)

// Get returns the first value of key. A key of exactly that spelling is
// preferred; otherwise the first value of any key equal to it under Unicode
// case folding is returned (if several such keys exist, which one is used is
// unspecified). Get returns "" if no key matches or the matching key holds no
// values. Get on a nil HeaderCarrier returns "".
func (c HeaderCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

// Values returns the values of every key equal to key under case folding:
// those of the exact spelling first, then those of the other spellings (in
// unspecified order). The result may share storage with c and must not be
// modified.
//
// The baggage propagator prefers Values to Get, so that a message carrying
// "baggage" and "Baggage" from two hops keeps the members of both.
func (c HeaderCarrier) Values(key string) []string {
	vals := c[key]
	shared := true
	for k, v := range c {
		if k == key || len(v) == 0 || !strings.EqualFold(k, key) {
			continue
		}
		if shared {
			// Copy before appending so that c[key] is never extended in place.
			vals = append(vals[:len(vals):len(vals)], v...)
			shared = false
			continue
		}
		vals = append(vals, v...)
	}
	return vals
}

// Set sets key to the single value value, first deleting every other key
// that is equal to key under case folding, so that afterwards key is the only
// spelling present. Set panics if c is nil, like any write to a nil map.
func (c HeaderCarrier) Set(key, value string) {
	for k := range c {
		if k != key && strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
	c[key] = []string{value}
}

// Keys returns the keys of c as stored, in unspecified order.
func (c HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace context and baggage of ctx into h through the
// global TextMapPropagator, replacing any field of the same name in any case.
//
// When ctx carries neither a valid span context nor baggage there is nothing
// to propagate, and Inject returns at once without calling the propagator;
// this keeps the common untraced path free of work. A nil h is treated the
// same way, since fields cannot be added to a nil map through a copy of it:
// callers that want propagation must give messages a header first (for
// example msg.Header = nats.Header{}).
func Inject(ctx context.Context, h nats.Header) {
	if h == nil {
		return
	}
	if !trace.SpanContextFromContext(ctx).IsValid() && baggage.FromContext(ctx).Len() == 0 {
		return
	}
	otel.GetTextMapPropagator().Inject(ctx, HeaderCarrier(h))
}

// Extract returns a copy of ctx carrying the remote span context and baggage
// that the global TextMapPropagator finds in h, matching field names in any
// case. If h holds no (valid) fields, the result carries what ctx carried.
// Extract never modifies h.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, HeaderCarrier(h))
}
