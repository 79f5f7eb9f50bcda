package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/internal/redistest"
	"github.com/featurestore/featureworker/subjects"
	"github.com/nats-io/nats.go"
)

// buildWorker compiles this command once per test binary.
var buildWorker = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "worker-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "worker")
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

// TestSIGTERMUnderLoad stops a worker process with SIGTERM while 64
// callers keep it busy: every request it accepted must be answered, none
// may time out, and the process must exit 0.
func TestSIGTERMUnderLoad(t *testing.T) {
	bin, err := buildWorker()
	if err != nil {
		t.Fatalf("building the worker: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })
	cluster := redistest.Start(t, redistest.Options{})
	set := featureset.Set{Entities: 1000, Features: 4}
	if err := set.Seed(context.Background(), cluster.Client(t), ""); err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t, nil)

	cmd := exec.Command(bin, "--nats-url", ns.ClientURL(), "--redis-addrs", cluster.Addrs()[0], "--shutdown-timeout", "10s")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				logs <- rec
			} else {
				t.Logf("worker: %s", sc.Text())
			}
		}
		close(logs)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitLog(t, logs, "worker serving")

	client := &subjects.Client{Conn: natstest.Connect(t, ns), Timeout: 3 * time.Second}
	var ok, noResponders, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := g; ; k += 64 {
				select {
				case <-stop:
					return
				default:
				}
				ids, fs := []int{k % 1100}, []int{0, 1, 2, 3}
				got, err := client.Lookup(context.Background(), featureset.Names(featureset.Entity, ids), featureset.Names(featureset.Feature, fs))
				switch {
				case err == nil && set.Check(ids, fs, got) == nil:
					ok.Add(1)
				case errors.Is(err, nats.ErrNoResponders):
					noResponders.Add(1) // sent after the worker stopped listening
				default:
					if failed.Add(1) <= 5 {
						t.Errorf("lookup %v: %v %v", ids, got, err)
					}
				}
			}
		}()
	}
	time.Sleep(time.Second)
	sentSIGTERM := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := waitLog(t, logs, "worker stopped")
	err = cmd.Wait()
	took := time.Since(sentSIGTERM)
	close(stop)
	wg.Wait()
	t.Logf("ok %d, no responders %d, failed %d; exit after %v: %v", ok.Load(), noResponders.Load(), failed.Load(), took, err)
	if err != nil {
		t.Errorf("worker exit: %v, want status 0", err)
	}
	if stopped["received"] != stopped["replied"] {
		t.Errorf("worker received %v requests and replied to %v", stopped["received"], stopped["replied"])
	}
	if ok.Load() < 1000 || failed.Load() > 0 {
		t.Errorf("want ≥1000 answered and no failures or timeouts")
	}
	if took > 5*time.Second {
		t.Errorf("shutdown took %v", took)
	}
}

// waitLog returns the first log record with message msg.
func waitLog(t *testing.T, logs <-chan map[string]any, msg string) map[string]any {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case rec, ok := <-logs:
			if !ok {
				t.Fatalf("worker exited before logging %q", msg)
			}
			if rec["msg"] == msg {
				return rec
			}
			if rec["level"] != "INFO" {
				t.Logf("worker: %v", rec)
			}
		case <-timeout:
			t.Fatalf("no %q log within 30s", msg)
		}
	}
}
