package main

import (
	"context"
	"sync"
	"testing"

	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/internal/redistest"
	"github.com/nats-io/nats-server/v2/server"
)

// testSet is what startMain seeds.
var testSet = featureset.Set{Entities: 100, Features: 4}

// startMain runs the whole program in-process against a new 3-master
// cluster seeded with testSet and an embedded NATS server; configure sets
// up m before Run. stop closes m once (later calls return the first
// result); it also runs when the test ends.
func startMain(t *testing.T, configure func(*Main)) (m *Main, ns *server.Server, stop func() error) {
	t.Helper()
	cluster := redistest.Start(t, redistest.Options{})
	if err := testSet.Seed(context.Background(), cluster.Client(t), ""); err != nil {
		t.Fatal(err)
	}
	ns = natstest.Start(t, nil)
	m = NewMain()
	m.NATSURL = ns.ClientURL()
	m.Config.RedisAddrs = cluster.Addrs()[:1]
	if configure != nil {
		configure(m)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop = sync.OnceValue(m.Close)
	t.Cleanup(func() { stop() })
	return m, ns, stop
}
