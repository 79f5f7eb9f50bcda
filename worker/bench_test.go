package worker

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/internal/redistest"
	"github.com/featurestore/featureworker/subjects"
)

// benchShapes are the request shapes of `make bench`.
var benchShapes = []struct{ entities, features int }{{1, 4}, {10, 4}}

func shapeName(entities, features int) string {
	return strconv.Itoa(entities) + "x" + strconv.Itoa(features)
}

// BenchmarkEncodeReply encodes one success reply the way the worker does:
// each entity's row as rowReader builds it (a fresh row, one appendCell per
// cell, every fourth cell null), then the body with appendValues into a
// reused buffer, as Worker.send does with its pooled buffers.
func BenchmarkEncodeReply(b *testing.B) {
	value := []byte("v12345-6")
	for _, shape := range benchShapes {
		b.Run(shapeName(shape.entities, shape.features), func(b *testing.B) {
			b.ReportAllocs()
			rows := make([][]byte, shape.entities)
			var buf []byte
			for b.Loop() {
				for i := range rows {
					row := make([]byte, 1, 2+shape.features*8)
					row[0] = '['
					for j := range shape.features {
						row = appendCell(row, j, value, (i+j)%4 == 0)
					}
					rows[i] = append(row, ']')
				}
				buf = appendValues(buf[:0], rows)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// BenchmarkPool drives the batching core directly, without NATS: lookups
// built with newLookup go to Pool.do on a loopback 3-master cluster with
// the default budget of 2 connections per master. One op is one request;
// besides -benchmem's figures (which count every goroutine's allocations,
// the pool's included) it reports req/s, allocs/req from the runtime's own
// count, and the commands per pipeline that batching achieved.
func BenchmarkPool(b *testing.B) {
	cluster := redistest.Start(b, redistest.Options{})
	set := featureset.Set{Entities: 10000, Features: 8}
	if err := set.Seed(context.Background(), cluster.Client(b), ""); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := NewPool(ctx, Config{RedisAddrs: cluster.Addrs()[:1], Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	// Names made once, so that the harness allocates nothing per request.
	names := make([]string, set.Entities)
	for i := range names {
		names[i] = featureset.Entity(i)
	}
	for _, shape := range benchShapes {
		for _, inflight := range []int{1, 256} {
			b.Run(shapeName(shape.entities, shape.features)+"/inflight="+strconv.Itoa(inflight), func(b *testing.B) {
				benchPool(b, p, names, shape.entities, shape.features, inflight)
			})
		}
	}
}

func benchPool(b *testing.B, p *Pool, names []string, entities, features, inflight int) {
	var next atomic.Int64 // spreads the requests over the set
	// caller returns a function that sends one caller's next request and
	// waits for its reply.
	caller := func() func() {
		req := &subjects.LookupRequest{Entities: make([]string, entities), Features: make([]string, features)}
		for j := range req.Features {
			req.Features[j] = featureset.Feature(j)
		}
		done := make(chan *subjects.Error, 1)
		finish := func(_ *lookup, e *subjects.Error) { done <- e }
		return func() {
			base := int(next.Add(int64(entities)))
			for i := range req.Entities {
				req.Entities[i] = names[(base+i)%len(names)]
			}
			l := newLookup("", req, time.Now().Add(10*time.Second), finish)
			p.do(l)
			if e := <-done; e != nil {
				b.Errorf("lookup: %v", e)
			} else if len(l.rows) != entities || l.rows[0][0] != '[' {
				b.Errorf("lookup: %d rows %q", len(l.rows), l.rows)
			}
		}
	}
	pipelines, commands := p.stats.pipelines.Load(), p.stats.commands.Load()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if inflight == 1 {
		do := caller()
		for range b.N {
			do()
		}
	} else {
		b.SetParallelism(max(1, inflight/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			do := caller()
			for pb.Next() {
				do()
			}
		})
	}
	took := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(b.N)/took.Seconds(), "req/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/req")
	if n := p.stats.pipelines.Load() - pipelines; n > 0 {
		b.ReportMetric(float64(p.stats.commands.Load()-commands)/float64(n), "cmds/pipeline")
	}
}
