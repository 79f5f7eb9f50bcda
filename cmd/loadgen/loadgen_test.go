package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/internal/redistest"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats-server/v2/server"
)

func TestPickers(t *testing.T) {
	const entities, features = 1000, 8
	for _, tc := range []struct {
		name        string
		zipfS       float64
		reqEntities int
	}{
		{"uniform/1", 0, 1},
		{"uniform/5", 0, 5},
		{"zipf/5", 1.1, 5},
		{"zipf/40 (map)", 1.1, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPicker(7, entities, features, tc.zipfS)
			ids, fs := make([]int, tc.reqEntities), make([]int, 4)
			counts := map[int]int{}
			var missing, draws int
			for range 5000 {
				p.pick(ids, fs)
				for k, id := range ids {
					if id < 0 || id >= entities+missingRange(entities) {
						t.Fatalf("entity id %d out of range", id)
					}
					if id >= entities {
						missing++
					}
					counts[id]++
					draws++
					for _, prev := range ids[:k] {
						if prev == id {
							t.Fatalf("entity %d twice in %v", id, ids)
						}
					}
				}
				for k, f := range fs {
					if f < 0 || f >= features || slicesContains(fs[:k], f) {
						t.Fatalf("features %v: out of range or repeated", fs)
					}
				}
			}
			// Redrawn duplicates are mostly hot keys, so long Zipf
			// requests hold more missing ones than the share drawn.
			if share := float64(missing) / float64(draws); math.Abs(share-missingShare) > 0.02 && (tc.reqEntities <= 5 || share == 0) {
				t.Errorf("%.3f of entities missing, want about %.2f", share, missingShare)
			}
			if tc.zipfS > 0 && counts[0] < 5*counts[entities/2]+10 {
				t.Errorf("zipf: entity 0 drawn %d times, entity %d %d times: not skewed", counts[0], entities/2, counts[entities/2])
			}
		})
	}
	// Requests as large as the set must still be drawable.
	for _, n := range []int{1, 3} {
		p := newPicker(1, n, 2, 1.1)
		ids, fs := make([]int, n), make([]int, 2)
		p.pick(ids, fs)
	}
	if err := validatePick(3, 2, 4, 1); err == nil {
		t.Error("validatePick accepted 4 distinct entities of 3")
	}
}

// TestHotLoopAllocs checks that drawing a request and recording its
// outcome allocate nothing: the loadgen's own cost per request must stay
// small next to the client's.
func TestHotLoopAllocs(t *testing.T) {
	c := RunConfig{Set: featureset.Set{Entities: 1000, Features: 8}, ReqEntities: 3, ReqFeatures: 4, Keys: keysZipf, ZipfS: 1.1}
	r := newRunner(c, nil, nil)
	p, j := r.newPicker(1), r.newJob()
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() {
		r.fill(j, p)
		r.rec.record(0, now, now.Add(time.Millisecond), nil, nil)
	}); n != 0 {
		t.Errorf("%v allocations per request drawn and recorded, want 0", n)
	}
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestConnNamePrefixIsTheWorkers(t *testing.T) {
	if defaultConnNamePrefix != worker.DefaultClientName {
		t.Errorf("--conn-name-prefix defaults to %q, the worker names its connections %q", defaultConnNamePrefix, worker.DefaultClientName)
	}
}

// env is a Redis Cluster, a NATS server and a worker in this process.
type env struct {
	cluster *redistest.Cluster
	nats    *server.Server
}

func newEnv(t *testing.T) *env {
	e := &env{cluster: redistest.Start(t, redistest.Options{}), nats: natstest.Start(t, nil)}
	e.startWorker(t, worker.Config{})
	return e
}

// startWorker starts a worker with cfg on the env's cluster and NATS.
func (e *env) startWorker(t *testing.T, cfg worker.Config) {
	cfg.RedisAddrs = e.cluster.Addrs()[:1]
	cfg.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	w, err := worker.Start(ctx, natstest.Connect(t, e.nats), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Shutdown(context.Background()); err != nil {
			t.Errorf("worker shutdown: %v", err)
		}
	})
}

// loadgen runs the command with args and returns its exit code and output.
// NATS_URL and REDIS_ADDRS come from the environment, to use that path too.
func (e *env) loadgen(t *testing.T, args ...string) (int, string) {
	return e.loadgenOn(t, false, args...)
}

// loadgenOn is loadgen with stderr taken for a terminal or not.
func (e *env) loadgenOn(t *testing.T, terminal bool, args ...string) (int, string) {
	var out bytes.Buffer
	l := &Loadgen{Stdout: &out, Stderr: &out, Terminal: terminal, Getenv: func(k string) string {
		switch k {
		case "NATS_URL":
			return e.nats.ClientURL()
		case "REDIS_ADDRS":
			return e.cluster.Addrs()[0]
		}
		return ""
	}}
	code := l.Main(t.Context(), args)
	t.Logf("loadgen %s: exit %d\n%s", strings.Join(args, " "), code, out.String())
	return code, out.String()
}

func readReport(t *testing.T, path string) *Report {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("JSON report: %v", err)
	}
	return &rep
}

// TestRun seeds a cluster through the seed command, then drives a real
// worker in both loops and checks the report and every output file.
func TestRun(t *testing.T) {
	e := newEnv(t)
	set := []string{"--entities", "2000", "--features", "8"}
	if code, out := e.loadgen(t, append([]string{"seed"}, set...)...); code != 0 || !strings.Contains(out, "seeded 2000 entities") {
		t.Fatalf("seed: exit %d", code)
	}

	t.Run("closed", func(t *testing.T) {
		dir := t.TempDir()
		js, cs, svg := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.svg")
		code, out := e.loadgen(t, append([]string{"run", "--mode", "closed", "--concurrency", "16",
			"--duration", "2s", "--warmup", "500ms", "--req-entities", "3", "--keys", "zipf",
			"--label", "batched", "--budget", "3", "--sample-interval", "20ms",
			"--json", js, "--csv", cs, "--plot", svg}, set...)...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		for _, want := range []string{"label", "batched", "latency", "p99.9", "wrong values", "connections"} {
			if !strings.Contains(out, want) {
				t.Errorf("text report lacks %q", want)
			}
		}
		rep := readReport(t, js)
		if rep.Requests == 0 || rep.WrongValues != 0 || rep.ErrorTotal != 0 {
			t.Errorf("requests %d, wrong values %d, errors %d (%v); want requests, no wrong values, no errors",
				rep.Requests, rep.WrongValues, rep.ErrorTotal, rep.ErrorSamples)
		}
		if rep.Latency.Count == 0 || rep.Latency.P50 == 0 || rep.Latency.P99 < rep.Latency.P50 {
			t.Errorf("latency %+v", rep.Latency)
		}
		if len(rep.Connections) != 3 {
			t.Fatalf("%d nodes sampled, want the 3 masters: %+v", len(rep.Connections), rep.Connections)
		}
		for _, c := range rep.Connections {
			// Budget 2 data connections per node, plus the topology
			// connection on one of them.
			if c.Samples == 0 || c.Max < 1 || c.Max > 3 {
				t.Errorf("%s: %d samples, max %d connections; want 1..3", c.Addr, c.Samples, c.Max)
			}
		}
		if n := len(rep.Seconds); n < 2 || n > 3 {
			t.Errorf("%d seconds in the series, want 2", n)
		}
		checkCSV(t, cs, len(rep.Seconds), len(rep.Connections))
		checkSVG(t, svg, 2+len(rep.Connections))
	})

	t.Run("open", func(t *testing.T) {
		js := filepath.Join(t.TempDir(), "r.json")
		code, out := e.loadgenOn(t, true, append([]string{"run", "--mode", "open", "--rate", "500",
			"--duration", "2s", "--warmup", "500ms", "--json", js, "--fail-on-errors"}, set...)...)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		if n := strings.Count(out, "\r"); n < 2 || !strings.Contains(out, "req/s  p50") {
			t.Errorf("%d progress lines on a terminal, want one a second", n)
		}
		rep := readReport(t, js)
		if rep.Requests < 800 || rep.Requests > 1200 {
			t.Errorf("%d requests at 500/s for 2s, want 1000 ± 20%%", rep.Requests)
		}
		if rep.Latency.Count != rep.Requests || rep.Latency.P50 == 0 || rep.Latency.Max < rep.Latency.P99 {
			t.Errorf("latency %+v for %d requests", rep.Latency, rep.Requests)
		}
		if rep.Dropped != 0 || rep.WrongValues != 0 || rep.ErrorTotal != 0 {
			t.Errorf("dropped %d, wrong %d, errors %d", rep.Dropped, rep.WrongValues, rep.ErrorTotal)
		}
	})

	t.Run("wrong value", func(t *testing.T) {
		// A worker of its own, on its own subject and key prefix, so that
		// the set it serves is a single entity.
		e.startWorker(t, worker.Config{Subject: "features.wrong", KeyPrefix: "w:"})
		one := []string{"--entities", "1", "--features", "8", "--key-prefix", "w:"}
		if code, _ := e.loadgen(t, append([]string{"seed"}, one...)...); code != 0 {
			t.Fatalf("seed: exit %d", code)
		}
		if err := e.cluster.Client(t).HSet(t.Context(), "w:"+featureset.Entity(0), featureset.Feature(3), "tampered").Err(); err != nil {
			t.Fatal(err)
		}
		js := filepath.Join(t.TempDir(), "r.json")
		code, out := e.loadgen(t, "run", "--subject", "features.wrong", "--entities", "1", "--features", "8",
			"--req-features", "8", "--concurrency", "4", "--duration", "500ms", "--warmup", "0s", "--json", js)
		if code == 0 {
			t.Error("exit 0 with a wrong value")
		}
		rep := readReport(t, js)
		if rep.WrongValues == 0 || len(rep.WrongSamples) == 0 || !strings.Contains(rep.WrongSamples[0], `"tampered"`) {
			t.Errorf("wrong values %d, samples %q", rep.WrongValues, rep.WrongSamples)
		}
		if !strings.Contains(out, "FAILED") {
			t.Error("no FAILED line")
		}
	})

	t.Run("errors", func(t *testing.T) {
		js := filepath.Join(t.TempDir(), "r.json")
		args := []string{"run", "--subject", "features.nobody", "--redis-addrs", "", "--concurrency", "2",
			"--duration", "300ms", "--warmup", "0s", "--json", js}
		if code, _ := e.loadgen(t, args...); code != 0 {
			t.Errorf("exit %d: errors alone must not fail a run", code)
		}
		rep := readReport(t, js)
		if rep.Errors["no_responders"] == 0 || rep.ErrorTotal != rep.Requests || rep.Latency.Count != 0 {
			t.Errorf("errors %v of %d requests, latency count %d; want all no_responders, untimed",
				rep.Errors, rep.Requests, rep.Latency.Count)
		}
		if code, _ := e.loadgen(t, append(args, "--fail-on-errors")...); code == 0 {
			t.Error("exit 0 with --fail-on-errors")
		}
	})
}

func checkCSV(t *testing.T, path string, seconds, nodes int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v", err)
	}
	if len(recs) != 1+seconds || len(recs[0]) != 6+nodes || recs[0][0] != "t" {
		t.Errorf("CSV: %d records of %d fields (header %q), want %d of %d", len(recs), len(recs[0]), recs[0], 1+seconds, 6+nodes)
	}
}

func checkSVG(t *testing.T, path string, series int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	polylines, dashed := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if a.Name.Local == "stroke-dasharray" && se.Name.Local == "line" {
					dashed++
				}
				if a.Name.Local == "points" && se.Name.Local == "polyline" && strings.TrimSpace(a.Value) != "" {
					polylines++
				}
			}
		}
	}
	if polylines != series || dashed == 0 {
		t.Errorf("SVG: %d non-empty polylines (want %d), %d dashed lines (want the budget's)", polylines, series, dashed)
	}
}
