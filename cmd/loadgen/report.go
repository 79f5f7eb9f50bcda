package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// errKind classifies a failed request. The first five are the error codes
// of the wire contract; the rest happen on the caller's side.
type errKind int

const (
	kind400 errKind = iota
	kind413
	kind500
	kind503
	kind504
	kindTimeout      // the loadgen's own deadline passed (--timeout)
	kindNoResponders // no worker subscribed to the subject
	kindOther        // anything else: NATS, decoding, unknown codes
	numKinds
)

var kindNames = [numKinds]string{"400", "413", "500", "503", "504", "timeout", "no_responders", "other"}

// maxSamples is how many distinct wrong values and error messages a report
// keeps.
const maxSamples = 5

// Report is the outcome of one run, as printed, written as JSON, and drawn.
// Latencies are in microseconds.
type Report struct {
	Label       string  `json:"label,omitempty"`
	Mode        string  `json:"mode"`
	Concurrency int     `json:"concurrency,omitempty"` // closed loop
	Rate        float64 `json:"rate,omitempty"`        // open loop, intended req/s
	NATSConns   int     `json:"nats_conns"`
	Shape       Shape   `json:"shape"`

	Start    time.Time `json:"start"`      // when measuring began
	Duration float64   `json:"duration_s"` // measured window; warmup excluded
	Warmup   float64   `json:"warmup_s"`

	// Requests counts every request sent in the measured window whatever
	// its outcome; Throughput is Requests over Duration.
	Requests   int64   `json:"requests"`
	Throughput float64 `json:"throughput"`
	// Latency covers replies that carried values. Errors are counted, not
	// timed, so that fast rejections (503) do not flatter it. In open loop
	// it runs from the intended send time.
	Latency Latency `json:"latency_us"`

	Errors       map[string]int64 `json:"errors"` // by kindNames, every key present
	ErrorTotal   int64            `json:"error_total"`
	ErrorSamples []string         `json:"error_samples,omitempty"` // the first distinct messages
	// Dropped counts open-loop sends skipped because --max-outstanding
	// requests were already in flight.
	Dropped int64 `json:"dropped"`
	// WrongValues counts replies in which featureset.Check found a wrong
	// value (it stops at the first, so this counts replies, not cells).
	WrongValues  int64    `json:"wrong_values"`
	WrongSamples []string `json:"wrong_samples,omitempty"`
	// Unchecked says values were not checked (--no-check): WrongValues is
	// then zero whatever the replies held.
	Unchecked bool `json:"unchecked,omitempty"`

	Budget      int         `json:"budget,omitempty"` // --budget, for the reader
	Connections []NodeConns `json:"connections"`      // sorted by address
	Seconds     []Second    `json:"seconds"`
}

// Shape is what the requests look like.
type Shape struct {
	Keys        string  `json:"keys"`
	ZipfS       float64 `json:"zipf_s,omitempty"`
	Entities    int     `json:"entities"`
	Features    int     `json:"features"`
	ValueSize   int     `json:"value_size"`
	ReqEntities int     `json:"req_entities"`
	ReqFeatures int     `json:"req_features"`
}

func (s Shape) String() string {
	keys := s.Keys
	if s.Keys == keysZipf {
		keys = fmt.Sprintf("zipf s=%g", s.ZipfS)
	}
	return fmt.Sprintf("%s × %s per request, %s over %d×%d (+%.0f%% missing entities)",
		plural(s.ReqEntities, "entity", "entities"), plural(s.ReqFeatures, "feature", "features"),
		keys, s.Entities, s.Features, missingShare*100)
}

// Latency percentiles, in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   int64   `json:"p50"`
	P90   int64   `json:"p90"`
	P99   int64   `json:"p99"`
	P999  int64   `json:"p99_9"`
	Max   int64   `json:"max"`
}

// NodeConns is what CLIENT LIST showed of the worker on one Redis master
// over the whole run, warmup included: the budget must hold then too.
type NodeConns struct {
	Addr    string `json:"addr"`
	Min     int    `json:"min"`
	Max     int    `json:"max"`
	Samples int    `json:"samples"`
	Errors  int    `json:"errors"`
}

// Second is one row of the time series: the requests that completed in
// (T-1s, T] (the last row also holds those that completed after the
// window closed), and the most connections each node showed in it.
type Second struct {
	T          float64 `json:"t"`
	Requests   int64   `json:"requests"`
	Throughput float64 `json:"throughput"`
	P50        int64   `json:"p50_us"`
	P99        int64   `json:"p99_us"`
	Errors     int64   `json:"errors"`
	// Conns is aligned with Report.Connections; -1 means no sample.
	Conns []int `json:"conns"`
}

// Failed reports why the run should exit non-zero, or "".
func (r *Report) Failed(failOnErrors bool) string {
	var why []string
	if r.WrongValues > 0 {
		why = append(why, fmt.Sprintf("%d replies with wrong values", r.WrongValues))
	}
	if r.Requests == 0 {
		why = append(why, "no request completed")
	}
	if failOnErrors && r.ErrorTotal > 0 {
		why = append(why, fmt.Sprintf("%d errors", r.ErrorTotal))
	}
	if failOnErrors && r.Dropped > 0 {
		why = append(why, fmt.Sprintf("%d dropped", r.Dropped))
	}
	return strings.Join(why, ", ")
}

// WriteText writes the report for a human: one aligned block.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, k+"\t"+format+"\n", args...) }
	if r.Label != "" {
		row("label", "%s", r.Label)
	}
	if r.Mode == modeOpen {
		row("mode", "open loop at %g req/s intended, %d NATS connections", r.Rate, r.NATSConns)
	} else {
		row("mode", "closed loop, %d in flight, %d NATS connections", r.Concurrency, r.NATSConns)
	}
	row("shape", "%s", r.Shape)
	row("duration", "%s measured after %s warmup", secs(r.Duration), secs(r.Warmup))
	row("requests", "%d (%.0f req/s)", r.Requests, r.Throughput)
	if l := r.Latency; l.Count > 0 {
		row("latency", "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%d replies)",
			micros(l.P50), micros(l.P90), micros(l.P99), micros(l.P999), micros(l.Max), l.Count)
	} else {
		row("latency", "none: no reply carried values")
	}
	var codes []string
	for _, k := range kindNames {
		if n := r.Errors[k]; n > 0 {
			codes = append(codes, fmt.Sprintf("%s %d", k, n))
		}
	}
	if len(codes) == 0 {
		row("errors", "0")
	} else {
		row("errors", "%d: %s", r.ErrorTotal, strings.Join(codes, ", "))
	}
	for _, s := range r.ErrorSamples {
		row("", "%s", s)
	}
	if r.Mode == modeOpen {
		row("dropped", "%d (--max-outstanding reached)", r.Dropped)
	}
	if r.Unchecked {
		row("wrong values", "not checked (--no-check)")
	} else {
		row("wrong values", "%d", r.WrongValues)
	}
	for _, s := range r.WrongSamples {
		row("", "%s", s)
	}
	if len(r.Connections) == 0 {
		row("connections", "not sampled (no --redis-addrs)")
	}
	for i, c := range r.Connections {
		k := ""
		if i == 0 {
			k = "connections"
		}
		over := ""
		if r.Budget > 0 && c.Max > r.Budget {
			over = fmt.Sprintf("  OVER BUDGET %d", r.Budget)
		}
		row(k, "%s\tmin %d  max %d  (%d samples, %d errors)%s", c.Addr, c.Min, c.Max, c.Samples, c.Errors, over)
	}
	return tw.Flush()
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteCSV writes the time series, one row per second. Latencies are in
// microseconds; a connection cell is empty when the node was not sampled
// in that second.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := []string{"t", "requests", "throughput", "p50_us", "p99_us", "errors"}
	for _, c := range r.Connections {
		head = append(head, "conns "+c.Addr)
	}
	cw.Write(head)
	for _, s := range r.Seconds {
		rec := []string{
			strconv.FormatFloat(s.T, 'f', 3, 64),
			strconv.FormatInt(s.Requests, 10),
			strconv.FormatFloat(s.Throughput, 'f', 1, 64),
			strconv.FormatInt(s.P50, 10),
			strconv.FormatInt(s.P99, 10),
			strconv.FormatInt(s.Errors, 10),
		}
		for _, n := range s.Conns {
			if n < 0 {
				rec = append(rec, "")
			} else {
				rec = append(rec, strconv.Itoa(n))
			}
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// micros formats a latency in microseconds with three significant digits,
// the precision the histogram keeps.
func micros(us int64) string {
	switch {
	case us < 1000:
		return strconv.FormatInt(us, 10) + "µs"
	case us < 999500:
		return sig3(float64(us)/1e3) + "ms"
	default:
		return sig3(float64(us)/1e6) + "s"
	}
}

// sig3 formats x ≥ 1 with three significant digits and no exponent.
func sig3(x float64) string {
	switch {
	case x >= 99.95:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x >= 9.995:
		return strconv.FormatFloat(x, 'f', 1, 64)
	default:
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

func secs(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) + "s" }
