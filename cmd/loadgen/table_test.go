package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	dir := t.TempDir()
	conns := func(max ...int) []NodeConns {
		var out []NodeConns
		for _, m := range max {
			out = append(out, NodeConns{Max: m, Samples: 10})
		}
		return out
	}
	closed := func(label string, ents, c int, tput float64, p99 int64, peak []NodeConns) *Report {
		return &Report{Label: label, Mode: modeClosed, Concurrency: c, Shape: Shape{ReqEntities: ents, ReqFeatures: 4},
			Throughput: tput, Latency: Latency{Count: 1, P50: p99 / 2, P99: p99}, Connections: peak}
	}
	open := closed("batched", 1, 0, 500, 3000, conns(3))
	open.Mode, open.Concurrency, open.Rate = modeOpen, 0, 500
	echoOpen := closed("echo", 1, 0, 500, 2000, nil)
	echoOpen.Mode, echoOpen.Concurrency, echoOpen.Rate, echoOpen.Unchecked = modeOpen, 0, 500, true
	wrong := closed("naive", 1, 64, 100, 9000, conns(9, 10, 8))
	wrong.WrongValues, wrong.ErrorTotal, wrong.Dropped = 2, 3, 1
	reps := []*Report{
		closed("echo", 1, 64, 1500, 900, nil),
		closed("echo", 1, 256, 2000, 1000, nil),
		closed("batched", 1, 64, 1000, 1500, conns(2, 3, 2)),
		closed("batched", 1, 256, 1500, 2000, conns(3, 3, 2)),
		closed("batched", 10, 256, 600, 5000, conns(3)),
		closed("per-request", 10, 256, 200, 50000, conns(2)),
		wrong, echoOpen, open,
	}
	var files []string
	for i, r := range reps {
		path := filepath.Join(dir, strings.Repeat("r", i+1)+".json")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.WriteJSON(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		files = append(files, path)
	}
	var out bytes.Buffer
	l := &Loadgen{Stdout: &out, Stderr: &out}
	args := append([]string{"table",
		"--compare", "throughput batched/echo 1x4 closed",
		"--compare", "throughput batched/per-request 10x4",
		"--compare", "conns naive/batched",
		"--compare", "p99 batched/echo 1x4 open",
		"--compare", "p50 batched/naive 10x4",
	}, files...)
	if code := l.Main(t.Context(), args); code != exitOK {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	got := out.String()
	t.Logf("\n%s", got)
	for _, want := range []string{
		"| strategy | shape | load | throughput | p50 | p99 | peak conns/node | errors |",
		"| echo | 1x4 | 256 in flight | 2000/s | 500µs | 1.00ms | - | 0 |",
		"| batched | 1x4 | 256 in flight | 1500/s | 1.00ms | 2.00ms | 3 | 0 |",
		"| naive | 1x4 | 64 in flight | 100/s | 4.50ms | 9.00ms | 10 | 4 (+2 WRONG) |",
		"| echo | 1x4 | open 500/s | 500/s | 1.00ms | 2.00ms | - | 0 (values unchecked) |",
		// The highest concurrency both have, not the first pair.
		"throughput batched/echo at 1x4, 256 in flight: 1500 req/s / 2000 req/s = **0.75×**",
		"throughput batched/per-request at 10x4, 256 in flight: 600 req/s / 200 req/s = **3.00×**",
		"peak connections per node, naive vs batched (every run): 10 vs 3",
		"p99 batched/echo at 1x4, open 500/s: 3.00ms / 2.00ms = **1.50×**",
		"p50 batched/naive 10x4: no pair of runs to compare",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q", want)
		}
	}
	if strings.Index(got, "| echo | 1x4 | 64") > strings.Index(got, "| batched | 1x4 | 64") {
		t.Errorf("rows are not in the order of the files")
	}

	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"table"}, exitUsage},
		{[]string{"table", "--compare", "speed a/b", files[0]}, exitUsage},
		{[]string{"table", "--compare", "p99 ab", files[0]}, exitUsage},
		{[]string{"table", filepath.Join(dir, "none.json")}, exitFailed},
		{[]string{"table", os.Args[0]}, exitFailed}, // not JSON
	} {
		out.Reset()
		if code := l.Main(t.Context(), tc.args); code != tc.code {
			t.Errorf("loadgen %q: exit %d, want %d: %s", tc.args, code, tc.code, out.String())
		}
	}
}
