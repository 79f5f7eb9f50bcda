package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/baseline"
	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/subjects"
)

func TestStrategyFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string // "" means an error
	}{
		{nil, nil, ""},
		{[]string{"--strategy", "naive"}, nil, baseline.Naive},
		{nil, map[string]string{"STRATEGY": "echo"}, baseline.Echo},
		{[]string{"--strategy", "batched"}, map[string]string{"STRATEGY": "echo"}, strategyBatched},
	} {
		m := NewMain()
		args := append([]string{"--redis-addrs", "a:1"}, tc.args...)
		if err := m.ParseFlags(args, func(k string) string { return tc.env[k] }); err != nil {
			t.Errorf("ParseFlags(%q, %v): %v", tc.args, tc.env, err)
			continue
		}
		if m.Strategy != tc.want {
			t.Errorf("ParseFlags(%q, %v): strategy %q, want %q", tc.args, tc.env, m.Strategy, tc.want)
		}
	}
	for _, args := range [][]string{{"--strategy", "batch"}, {"--strategy", ""}} {
		err := NewMain().ParseFlags(append([]string{"--redis-addrs", "a:1"}, args...), nil)
		if err == nil || !strings.Contains(err.Error(), "unknown strategy") {
			t.Errorf("ParseFlags(%q) = %v, want an unknown strategy error", args, err)
		}
	}
}

// TestRunBaseline runs Main with a baseline strategy: it serves right
// values, and Close drains it.
func TestRunBaseline(t *testing.T) {
	m, ns, stop := startMain(t, func(m *Main) {
		m.Strategy = baseline.PerRequest
		m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	set := testSet
	if m.Worker() != nil {
		t.Errorf("a baseline strategy started the batched worker too")
	}
	client := &subjects.Client{Conn: natstest.Connect(t, ns), Timeout: 5 * time.Second}
	ids, fs := []int{3, 50, 150}, []int{0, 2}
	got, err := client.Lookup(context.Background(), featureset.Names(featureset.Entity, ids), featureset.Names(featureset.Feature, fs))
	if err == nil {
		err = set.Check(ids, fs, got)
	}
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := client.Lookup(context.Background(), []string{"e:1"}, []string{"f0"}); err == nil {
		t.Fatalf("a lookup succeeded after Close")
	}
}
