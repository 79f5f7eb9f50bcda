package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// table is `loadgen table`: it reads the JSON reports of several runs and
// writes one markdown table of them, in the order given, followed by the
// comparisons asked for with --compare.
func (l *Loadgen) table(args []string) int {
	fs := l.flagSet("table", "turns JSON reports (loadgen run --json) into one markdown table")
	var compares stringList
	fs.Var(&compares, "compare", `a ratio to print after the table, repeatable: "METRIC A/B [SHAPE] [closed|open]", `+
		`METRIC one of throughput, p50, p99, conns; A and B run labels; SHAPE such as 1x4. `+
		`Runs are paired at the highest concurrency (or rate) both have; conns compares the peak over every matching run`)
	// Not l.parse: the reports are positional arguments, and no flag
	// needs the environment.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	var cmps []comparison
	for _, s := range compares {
		c, err := parseComparison(s)
		if err != nil {
			fmt.Fprintln(l.Stderr, "loadgen table:", err)
			return exitUsage
		}
		cmps = append(cmps, c)
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(l.Stderr, "loadgen table: no report files given")
		return exitUsage
	}
	var reps []*Report
	for _, path := range fs.Args() {
		r, err := loadReport(path)
		if err != nil {
			fmt.Fprintln(l.Stderr, "loadgen table:", err)
			return exitFailed
		}
		reps = append(reps, r)
	}
	if err := writeTable(l.Stdout, reps, cmps); err != nil {
		fmt.Fprintln(l.Stderr, "loadgen table:", err)
		return exitFailed
	}
	return exitOK
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, "; ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func loadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: not a loadgen report: %w", path, err)
	}
	return &r, nil
}

// writeTable writes the table of reps, then one line per comparison.
func writeTable(w io.Writer, reps []*Report, cmps []comparison) error {
	var b strings.Builder
	b.WriteString("| strategy | shape | load | throughput | p50 | p99 | peak conns/node | errors |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range reps {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n",
			orDash(r.Label), shapeKey(r), loadOf(r), strconv.FormatFloat(r.Throughput, 'f', 0, 64)+"/s",
			latencyOf(r, r.Latency.P50), latencyOf(r, r.Latency.P99), connsOf(r), errorsOf(r))
	}
	if len(cmps) > 0 {
		b.WriteString("\n")
	}
	for _, c := range cmps {
		b.WriteString("- " + c.evaluate(reps) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shapeKey is a run's request shape as --compare names it: "1x4".
func shapeKey(r *Report) string {
	return strconv.Itoa(r.Shape.ReqEntities) + "x" + strconv.Itoa(r.Shape.ReqFeatures)
}

func loadOf(r *Report) string {
	if r.Mode == modeOpen {
		return "open " + strconv.FormatFloat(r.Rate, 'f', -1, 64) + "/s"
	}
	return strconv.Itoa(r.Concurrency) + " in flight"
}

func latencyOf(r *Report, us int64) string {
	if r.Latency.Count == 0 {
		return "-"
	}
	return micros(us)
}

// peakConns is the most connections any node showed, or -1 if none was
// sampled.
func peakConns(r *Report) int {
	peak := -1
	for _, c := range r.Connections {
		if c.Samples > 0 {
			peak = max(peak, c.Max)
		}
	}
	return peak
}

func connsOf(r *Report) string {
	if p := peakConns(r); p >= 0 {
		return strconv.Itoa(p)
	}
	return "-"
}

func errorsOf(r *Report) string {
	s := strconv.FormatInt(r.ErrorTotal+r.Dropped, 10)
	switch {
	case r.Unchecked:
		s += " (values unchecked)"
	case r.WrongValues > 0:
		s += fmt.Sprintf(" (+%d WRONG)", r.WrongValues)
	}
	return s
}

// comparison is one --compare: metric of run a over run b.
type comparison struct {
	spec, metric, a, b, shape, mode string
}

func parseComparison(spec string) (comparison, error) {
	f := strings.Fields(spec)
	bad := fmt.Errorf(`--compare %q: want "METRIC A/B [SHAPE] [closed|open]"`, spec)
	if len(f) < 2 || len(f) > 4 {
		return comparison{}, bad
	}
	c := comparison{spec: spec, metric: f[0]}
	switch c.metric {
	case "throughput", "p50", "p99", "conns":
	default:
		return comparison{}, fmt.Errorf("--compare %q: unknown metric %q", spec, c.metric)
	}
	var ok bool
	if c.a, c.b, ok = strings.Cut(f[1], "/"); !ok || c.a == "" || c.b == "" {
		return comparison{}, bad
	}
	for _, x := range f[2:] {
		switch {
		case x == modeClosed || x == modeOpen:
			c.mode = x
		case strings.Contains(x, "x"):
			c.shape = x
		default:
			return comparison{}, bad
		}
	}
	return c, nil
}

// matches reports whether r is a run of label that c is about.
func (c comparison) matches(r *Report, label string) bool {
	return r.Label == label && (c.shape == "" || shapeKey(r) == c.shape) && (c.mode == "" || r.Mode == c.mode)
}

// point is where a run sits on its load axis, to pair runs of a and b.
func point(r *Report) string { return r.Mode + " " + loadOf(r) }

func level(r *Report) float64 {
	if r.Mode == modeOpen {
		return r.Rate
	}
	return float64(r.Concurrency)
}

// evaluate returns the comparison as one line of text.
func (c comparison) evaluate(reps []*Report) string {
	if c.metric == "conns" {
		pa, pb := -1, -1
		for _, r := range reps {
			if c.matches(r, c.a) {
				pa = max(pa, peakConns(r))
			}
			if c.matches(r, c.b) {
				pb = max(pb, peakConns(r))
			}
		}
		if pa < 0 || pb < 0 {
			return fmt.Sprintf("%s: no connections sampled for both", c.spec)
		}
		return fmt.Sprintf("peak connections per node, %s vs %s (every run): %d vs %d", c.a, c.b, pa, pb)
	}
	var ra, rb *Report
	for _, a := range reps {
		if !c.matches(a, c.a) {
			continue
		}
		for _, b := range reps {
			if c.matches(b, c.b) && point(a) == point(b) && (ra == nil || level(a) > level(ra)) {
				ra, rb = a, b
			}
		}
	}
	if ra == nil {
		return fmt.Sprintf("%s: no pair of runs to compare", c.spec)
	}
	va, vb := c.value(ra), c.value(rb)
	format := func(v float64) string { return micros(int64(v)) }
	if c.metric == "throughput" {
		format = func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + " req/s" }
	}
	ratio := "n/a"
	if vb > 0 {
		ratio = strconv.FormatFloat(va/vb, 'f', 2, 64) + "×"
	}
	return fmt.Sprintf("%s %s/%s at %s, %s: %s / %s = **%s**",
		c.metric, c.a, c.b, shapeKey(ra), loadOf(ra), format(va), format(vb), ratio)
}

func (c comparison) value(r *Report) float64 {
	switch c.metric {
	case "p50":
		return float64(r.Latency.P50)
	case "p99":
		return float64(r.Latency.P99)
	}
	return r.Throughput
}
