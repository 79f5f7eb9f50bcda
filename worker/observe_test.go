package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats.go/micro"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestDiscovery runs two workers and reads the NATS service API the way
// `nats micro stats features` does: every instance answers, with counts
// that match what was sent to it.
func TestDiscovery(t *testing.T) {
	e := newEnv(t, worker.Config{})
	e.startWorker(t) // a second instance in the same queue group
	const good, bad = 40, 6
	for i := range good + bad {
		ents := []string{entity(i)}
		if i >= good {
			ents = []string{""} // 400
		}
		e.client.Lookup(context.Background(), ents, []string{feature(1)})
	}
	for _, verb := range []string{"PING", "INFO", "STATS"} {
		replies := natstest.Gather(t, e.client.Conn, "$SRV."+verb+"."+worker.ServiceName, time.Second)
		if len(replies) != 2 {
			t.Fatalf("%s: %d instances answered, want 2", verb, len(replies))
		}
		if verb != "STATS" {
			continue
		}
		var requests, errs int
		for _, r := range replies {
			var s micro.Stats
			if err := json.Unmarshal(r.Data, &s); err != nil || s.Name != worker.ServiceName || len(s.Endpoints) != 1 {
				t.Fatalf("STATS reply %s: %v", r.Data, err)
			}
			ep := s.Endpoints[0]
			requests += ep.NumRequests
			errs += ep.NumErrors
			if ep.NumRequests > 0 && ep.AverageProcessingTime <= 0 {
				t.Errorf("instance %s: %d requests but no processing time", s.ID, ep.NumRequests)
			}
			if ep.Subject != subjects.Lookup || ep.QueueGroup != subjects.QueueGroup {
				t.Errorf("endpoint %+v", ep)
			}
		}
		if requests != good+bad || errs != bad {
			t.Errorf("instances report %d requests and %d errors, want %d and %d", requests, errs, good+bad, bad)
		}
	}
}

// TestBatchSpanLinks checks, with an in-memory exporter, that a pipeline
// serving several sampled requests has one batch span linked to each, and
// that each request's pipeline span links back to it.
func TestBatchSpanLinks(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := newEnv(t, worker.Config{TracerProvider: tp, ConnsPerNode: 1})
	// Hold the single connection of every node, so that the requests
	// below queue up and go out together.
	for _, n := range e.cluster.Masters() {
		n.Client().Do(context.Background(), "CLIENT", "PAUSE", "300", "ALL")
	}
	done := make(chan error, 8)
	for i := range 8 {
		go func() {
			_, err := e.client.Lookup(context.Background(), []string{entity(i)}, []string{feature(1)})
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// A request's span ends just after its reply is published.
	for deadline := time.Now().Add(5 * time.Second); countEnded(rec, worker.SpanProcess+subjects.Lookup) < 8 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	processes := map[string]bool{}
	var batches []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case worker.SpanProcess + subjects.Lookup:
			processes[s.SpanContext().SpanID().String()] = true
		case worker.SpanBatch:
			batches = append(batches, s)
		}
	}
	if len(processes) != 8 {
		t.Fatalf("%d process spans, want 8", len(processes))
	}
	linked := 0
	for _, b := range batches {
		for _, l := range b.Links() {
			if !processes[l.SpanContext.SpanID().String()] {
				t.Errorf("batch span links to %s, not a request", l.SpanContext.SpanID())
			}
			linked++
		}
	}
	if linked != 8 || len(batches) >= 8 {
		t.Errorf("%d batch spans with %d links: want fewer batches than requests and one link per request", len(batches), linked)
	}
}

func countEnded(rec *tracetest.SpanRecorder, name string) int {
	n := 0
	for _, s := range rec.Ended() {
		if s.Name() == name {
			n++
		}
	}
	return n
}

// TestHealth: ready while serving, not ready once draining.
func TestHealth(t *testing.T) {
	e := newEnv(t, worker.Config{})
	if err := e.worker.Health(); err != nil {
		t.Fatalf("serving worker: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.worker.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.worker.Health(); err == nil {
		t.Fatal("a stopped worker reports healthy")
	}
}
