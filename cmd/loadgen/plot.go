package main

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// The chart's geometry, in SVG user units.
const (
	plotWidth   = 960
	plotLeft    = 70  // room for the y tick labels
	plotRight   = 200 // room for the legend
	plotTop     = 56  // room for the title
	panelHeight = 220
	panelGap    = 70 // room for the x axis label between panels
	plotBottom  = 50
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// series is one line of a panel; NaN values are gaps (no sample).
type series struct {
	name  string
	color string
	ys    []float64 // one per Report.Seconds row
}

// panel is one chart: its series over the run's seconds and an optional
// dashed horizontal reference line.
type panel struct {
	title, unit string
	series      []series
	integer     bool    // integer y ticks (connections)
	ref         float64 // dashed line at this value if > 0
	refName     string
}

// WritePlot draws the time series as an SVG: p50/p99 latency over time in
// one panel, and connections per Redis node in the other with a dashed line
// at the budget, so that a flat connection line under load shows at a
// glance. It is drawn by hand: the chart is two sets of polylines, not
// worth a plotting dependency.
func (r *Report) WritePlot(w io.Writer) error {
	ts := make([]float64, len(r.Seconds))
	p50 := make([]float64, len(r.Seconds))
	p99 := make([]float64, len(r.Seconds))
	for i, s := range r.Seconds {
		ts[i], p50[i], p99[i] = s.T, float64(s.P50)/1e3, float64(s.P99)/1e3
	}
	latency := panel{title: "latency (ms)", unit: "ms", series: []series{
		{name: "p50", color: palette[0], ys: p50},
		{name: "p99", color: palette[1], ys: p99},
	}}
	conns := panel{title: "worker connections per Redis node (CLIENT LIST, max per second)", integer: true,
		ref: float64(r.Budget), refName: fmt.Sprintf("budget %d", r.Budget)}
	for n, c := range r.Connections {
		ys := make([]float64, len(r.Seconds))
		for i, s := range r.Seconds {
			ys[i] = math.NaN()
			if n < len(s.Conns) && s.Conns[n] >= 0 {
				ys[i] = float64(s.Conns[n])
			}
		}
		conns.series = append(conns.series, series{name: c.Addr, color: palette[(n+2)%len(palette)], ys: ys})
	}

	bw := bufio.NewWriter(w)
	height := plotTop + 2*panelHeight + panelGap + plotBottom
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	title := fmt.Sprintf("%s loop, %.0f req/s, p99 %s, %d errors, %d wrong values",
		r.Mode, r.Throughput, micros(r.Latency.P99), r.ErrorTotal, r.WrongValues)
	if r.Label != "" {
		title = r.Label + ": " + title
	}
	fmt.Fprintf(bw, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", plotLeft, esc(title))
	xMax := 1.0
	if len(ts) > 0 {
		xMax = max(ts[len(ts)-1], xMax)
	}
	latency.draw(bw, ts, xMax, plotTop)
	conns.draw(bw, ts, xMax, plotTop+panelHeight+panelGap)
	fmt.Fprintln(bw, `</svg>`)
	return bw.Flush()
}

// draw writes the panel with its top edge at y0.
func (p *panel) draw(w io.Writer, ts []float64, xMax float64, y0 int) {
	x0, pw, ph := plotLeft, plotWidth-plotLeft-plotRight, panelHeight
	yMax := p.ref
	for _, s := range p.series {
		for _, y := range s.ys {
			if !math.IsNaN(y) {
				yMax = max(yMax, y)
			}
		}
	}
	var yStep float64
	if p.integer {
		yMax = math.Floor(yMax) + 1 // a flat line at the top edge would hide
		yStep = max(1, niceStep(yMax, 6))
	} else {
		yMax = max(yMax*1.1, 0.001)
		yStep = niceStep(yMax, 6)
	}
	yMax = math.Ceil(yMax/yStep) * yStep
	xStep := max(1, niceStep(xMax, 10))
	px := func(t float64) float64 { return float64(x0) + t/xMax*float64(pw) }
	py := func(v float64) float64 { return float64(y0+ph) - v/yMax*float64(ph) }

	fmt.Fprintf(w, `<g class="panel"><text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0, y0-8, esc(p.title))
	for i := 0; float64(i)*yStep <= yMax*1.0001; i++ {
		v := float64(i) * yStep
		fmt.Fprintf(w, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e0e0e0"/><text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n",
			x0, x0+pw, py(v), py(v), x0-6, py(v), tickLabel(v, yStep))
	}
	for i := 0; float64(i)*xStep <= xMax*1.0001; i++ {
		t := float64(i) * xStep
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", px(t), y0+ph+16, tickLabel(t, xStep))
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">seconds</text>`+"\n", x0+pw/2, y0+ph+34)
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", x0, y0, pw, ph)
	legend := func(i int, color, dash, name string) {
		ly := y0 + 12 + 18*i
		fmt.Fprintf(w, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n",
			x0+pw+12, x0+pw+36, ly, ly, color, dash, x0+pw+42, ly, esc(name))
	}
	const dashed = ` stroke-dasharray="6 4"`
	for i, s := range p.series {
		// Equal connection counts would hide one another (every node at
		// the budget is the point of the chart), so earlier series are
		// drawn wider underneath.
		width := 2.0
		if p.integer {
			width += 2.5 * float64(len(p.series)-1-i)
		}
		var pts strings.Builder
		for k, y := range s.ys {
			if !math.IsNaN(y) {
				fmt.Fprintf(&pts, "%.1f,%.1f ", px(ts[k]), py(y))
			}
		}
		fmt.Fprintf(w, `<polyline fill="none" stroke="%s" stroke-width="%g" stroke-linejoin="round" points="%s"><title>%s</title></polyline>`+"\n",
			s.color, width, strings.TrimSpace(pts.String()), esc(s.name))
		legend(i, s.color, "", s.name)
	}
	if p.ref > 0 { // on top, so that it shows across a series at the budget
		fmt.Fprintf(w, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#222" stroke-width="1.5"%s/>`+"\n", x0, x0+pw, py(p.ref), py(p.ref), dashed)
		legend(len(p.series), "#222", dashed, p.refName)
	}
	fmt.Fprintln(w, `</g>`)
}

// niceStep returns a step of 1, 2 or 5 times a power of ten that divides
// [0, span] into at most n intervals.
func niceStep(span float64, n int) float64 {
	raw := span / float64(n)
	if raw <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// tickLabel formats v with as many decimals as step needs.
func tickLabel(v, step float64) string {
	return strconv.FormatFloat(v, 'f', max(0, int(-math.Floor(math.Log10(step)))), 64)
}

// esc escapes s for XML text and attribute values.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
