package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/featurestore/featureworker/internal/baseline"
	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/worker"
)

// TestNoCheck runs against the echo baseline, whose values are
// placeholders: a run fails on them, unless --no-check, whose report says
// the values went unchecked.
func TestNoCheck(t *testing.T) {
	ns := natstest.Start(t, nil)
	s, err := baseline.Start(context.Background(), natstest.Connect(t, ns), baseline.Echo, worker.Config{
		RedisAddrs: []string{"unused:1"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	js := filepath.Join(t.TempDir(), "r.json")
	run := func(extra ...string) (int, string) {
		var out bytes.Buffer
		l := &Loadgen{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
		args := append([]string{"run", "--nats-url", ns.ClientURL(), "--entities", "100", "--concurrency", "4",
			"--duration", "300ms", "--warmup", "0s", "--json", js}, extra...)
		code := l.Main(t.Context(), args)
		return code, out.String()
	}
	if code, out := run(); code != exitFailed || !strings.Contains(out, "wrong values") {
		t.Errorf("checked run against echo: exit %d, want %d and wrong values:\n%s", code, exitFailed, out)
	}
	code, out := run("--no-check")
	if code != exitOK || !strings.Contains(out, "not checked (--no-check)") {
		t.Fatalf("--no-check run: exit %d:\n%s", code, out)
	}
	if rep := readReport(t, js); !rep.Unchecked || rep.WrongValues != 0 || rep.Requests == 0 {
		t.Errorf("report: unchecked %v, wrong values %d, requests %d", rep.Unchecked, rep.WrongValues, rep.Requests)
	}
}
