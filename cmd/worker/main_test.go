package main

import (
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/featureset"
)

// TestSIGTERMUnderLoad stops a worker process with SIGTERM while 64
// callers keep it busy: every request it accepted must be answered, none
// may time out, and the process must exit 0.
func TestSIGTERMUnderLoad(t *testing.T) {
	e := newProcEnv(t, featureset.Set{Entities: 1000, Features: 4})
	w := startWorker(t, "worker", e.args()...)

	load := startCallers(t, callersConfig{Client: e.client, Set: e.set, Callers: 64, Timeout: 3 * time.Second})
	time.Sleep(time.Second)
	sentSIGTERM := time.Now()
	stopped, exit := w.stop()
	took := time.Since(sentSIGTERM)
	got := load.finish()
	t.Logf("%v; exit after %v: %v", got, took, exit)
	stoppedCounts(t, "worker", stopped, exit)
	// No responders is fine: those requests were sent after the worker
	// stopped listening, and no other worker is there to take them.
	if got.OK < 1000 || got.Failed()-got.NoResponders > 0 {
		t.Errorf("want ≥1000 answered and no failures or timeouts")
	}
	if took > 5*time.Second {
		t.Errorf("shutdown took %v", took)
	}
}
