package jaegertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ErrTraceNotFound is returned by Trace when Jaeger has no span of the trace.
var ErrTraceNotFound = errors.New("jaegertest: trace not found")

// Trace is a trace as Jaeger's query API returns it.
type Trace struct {
	TraceID string // 32 lowercase hex digits, as trace.TraceID.String gives
	Spans   []Span
}

// Span is one span of a Trace. Identifiers are lowercase hex padded to full
// width (32 digits for trace ids, 16 for span ids), so that they compare
// equal to the String of the OpenTelemetry ids; Jaeger itself drops the high
// half of a trace id that is zero.
type Span struct {
	TraceID       string
	SpanID        string
	OperationName string
	// ParentSpanID is the span id of the first CHILD_OF reference, or ""
	// for a root span.
	ParentSpanID string
	References   []Reference
	StartTime    time.Time
	Duration     time.Duration
	// Tags are the span attributes plus what Jaeger derives from the span
	// (span.kind, otel.scope.name, otel.status_code, ...). Values are
	// string, bool, int64 or float64 according to the tag type (an int64 is
	// exact even beyond 2^53, which Jaeger sends as text); binary values and
	// slices are left as Jaeger sends them.
	Tags map[string]any
	// ServiceName and ProcessTags come from the span's resource.
	ServiceName string
	ProcessTags map[string]any
}

// Reference is a link from a span to another span.
type Reference struct {
	RefType string // "CHILD_OF" or "FOLLOWS_FROM"
	TraceID string
	SpanID  string
}

// Span returns the first span named operationName, or nil.
func (t *Trace) Span(operationName string) *Span {
	for i := range t.Spans {
		if t.Spans[i].OperationName == operationName {
			return &t.Spans[i]
		}
	}
	return nil
}

// Trace fetches the trace with the given id (hex, as trace.TraceID.String
// gives) from the query API (GET /api/traces/{id}). It returns
// ErrTraceNotFound, possibly wrapped, if Jaeger has stored none of its spans
// yet.
func (j *Jaeger) Trace(ctx context.Context, traceID string) (*Trace, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.QueryURL+"/api/traces/"+url.PathEscape(traceID), nil)
	if err != nil {
		return nil, err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	var body struct {
		Data   []apiTrace `json:"data"`
		Errors []struct {
			Code int    `json:"code"`
			Msg  string `json:"msg"`
		} `json:"errors"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber() // keep int64 tags exact
	decErr := dec.Decode(&body)
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%w: %s", ErrTraceNotFound, traceID)
	}
	if resp.StatusCode != http.StatusOK {
		if decErr == nil && len(body.Errors) > 0 {
			return nil, fmt.Errorf("jaegertest: GET /api/traces/%s: %s: %s", traceID, resp.Status, body.Errors[0].Msg)
		}
		return nil, fmt.Errorf("jaegertest: GET /api/traces/%s: %s", traceID, resp.Status)
	}
	if decErr != nil {
		return nil, fmt.Errorf("jaegertest: decoding trace %s: %v", traceID, decErr)
	}
	if len(body.Data) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrTraceNotFound, traceID)
	}
	return body.Data[0].convert(), nil
}

// WaitTrace polls Trace until Jaeger holds at least wantSpans spans of the
// trace, and returns it. It fails the test if that does not happen within
// timeout.
func (j *Jaeger) WaitTrace(tb testing.TB, traceID string, wantSpans int, timeout time.Duration) *Trace {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var (
		last    *Trace
		lastErr error
	)
	for {
		t, err := j.Trace(ctx, traceID)
		if err == nil {
			if len(t.Spans) >= wantSpans {
				return t
			}
			last = t
		} else if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				tb.Fatalf("jaegertest: trace %s has %d spans after %v, want %d: %s", traceID, len(last.Spans), timeout, wantSpans, describe(last))
			}
			tb.Fatalf("jaegertest: trace %s not available after %v: %v", traceID, timeout, lastErr)
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func describe(t *Trace) string {
	var b strings.Builder
	for _, s := range t.Spans {
		fmt.Fprintf(&b, "\n\t%s %s (%s) parent=%q", s.SpanID, s.OperationName, s.ServiceName, s.ParentSpanID)
	}
	return b.String()
}

// The JSON of the query API (Jaeger's internal/uimodel).
type apiTrace struct {
	TraceID   string                `json:"traceID"`
	Spans     []apiSpan             `json:"spans"`
	Processes map[string]apiProcess `json:"processes"`
}

type apiSpan struct {
	TraceID       string         `json:"traceID"`
	SpanID        string         `json:"spanID"`
	OperationName string         `json:"operationName"`
	References    []apiReference `json:"references"`
	StartTime     int64          `json:"startTime"` // µs since the epoch
	Duration      int64          `json:"duration"`  // µs
	Tags          []apiKeyValue  `json:"tags"`
	ProcessID     string         `json:"processID"`
}

type apiReference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

type apiProcess struct {
	ServiceName string        `json:"serviceName"`
	Tags        []apiKeyValue `json:"tags"`
}

type apiKeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

func (at apiTrace) convert() *Trace {
	t := &Trace{TraceID: padHex(at.TraceID, 32)}
	for _, as := range at.Spans {
		s := Span{
			TraceID:       padHex(as.TraceID, 32),
			SpanID:        padHex(as.SpanID, 16),
			OperationName: as.OperationName,
			StartTime:     time.UnixMicro(as.StartTime),
			Duration:      time.Duration(as.Duration) * time.Microsecond,
			Tags:          tagMap(as.Tags),
		}
		for _, r := range as.References {
			ref := Reference{RefType: r.RefType, TraceID: padHex(r.TraceID, 32), SpanID: padHex(r.SpanID, 16)}
			s.References = append(s.References, ref)
			if ref.RefType == "CHILD_OF" && s.ParentSpanID == "" {
				s.ParentSpanID = ref.SpanID
			}
		}
		if p, ok := at.Processes[as.ProcessID]; ok {
			s.ServiceName = p.ServiceName
			s.ProcessTags = tagMap(p.Tags)
		}
		t.Spans = append(t.Spans, s)
	}
	return t
}

func tagMap(kvs []apiKeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		v := kv.Value
		switch x := v.(type) {
		case json.Number:
			if kv.Type == "int64" {
				if i, err := x.Int64(); err == nil {
					v = i
				}
			} else if f, err := x.Float64(); err == nil {
				v = f
			}
		case string:
			// Jaeger sends an int64 beyond ±(2^53-1) as a string, since
			// JavaScript numbers cannot hold it.
			if kv.Type == "int64" {
				if i, err := strconv.ParseInt(x, 10, 64); err == nil {
					v = i
				}
			}
		}
		m[kv.Key] = v
	}
	return m
}

func padHex(s string, width int) string {
	s = strings.ToLower(s)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}
