package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// This file runs workers the way they are deployed: as separate processes
// of the real binary, in one queue group, under load from many callers.

// workerBinDir is where buildWorker put the binary, once it has run.
var workerBinDir atomic.Pointer[string]

// buildWorker compiles this command, with the race detector, once per test
// binary; TestMain removes it at the end.
var buildWorker = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "worker-bin")
	if err != nil {
		return "", err
	}
	workerBinDir.Store(&dir)
	bin := filepath.Join(dir, "worker")
	out, err := exec.Command("go", "build", "-race", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", errors.New(string(out))
	}
	return bin, nil
})

// TestMain removes the worker binary, if a test built it, once every test
// is done with it.
func TestMain(m *testing.M) {
	code := m.Run()
	if dir := workerBinDir.Load(); dir != nil {
		os.RemoveAll(*dir)
	}
	os.Exit(code)
}

// logTimeout bounds every wait for a worker's log record: generous, since
// the machine is shared and the binary is built with -race.
const logTimeout = 30 * time.Second

// workerProcess is the worker binary running as a child process. Its JSON
// log records are collected as they arrive, so the process never blocks on
// a full stderr pipe however little the test reads.
type workerProcess struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd

	mu     sync.Mutex
	recs   []map[string]any
	more   chan struct{} // closed (and replaced) when a record arrives or the log ends
	ended  bool          // stderr reached EOF
	exited chan struct{} // closed once Wait has returned
	err    error         // Wait's result, read after exited is closed
}

// launchWorker starts the worker binary with args and returns without
// waiting for it to serve. The process is killed, if still running, when the
// test ends.
func launchWorker(t *testing.T, name string, args ...string) *workerProcess {
	t.Helper()
	bin, err := buildWorker()
	if err != nil {
		t.Fatalf("building the worker: %v", err)
	}
	p := &workerProcess{t: t, name: name, cmd: exec.Command(bin, args...), more: make(chan struct{}), exited: make(chan struct{})}
	// The race runtime sleeps a second before exiting unless told not to,
	// which would slow every stop down.
	p.cmd.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go p.collect(stderr)
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// startWorker starts the worker binary with args and waits for its
// "worker serving" log.
func startWorker(t *testing.T, name string, args ...string) *workerProcess {
	t.Helper()
	p := launchWorker(t, name, args...)
	p.waitLog("worker serving")
	return p
}

// collect reads the process's stderr until EOF, then reaps the process (Wait
// may only be called once every read from the pipe is done).
func (p *workerProcess) collect(stderr io.Reader) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			// Not a log record: a panic, or a report of the race detector.
			p.t.Logf("%s: %s", p.name, sc.Text())
			continue
		}
		if rec["level"] != "INFO" {
			p.t.Logf("%s: %v", p.name, rec)
		}
		p.mu.Lock()
		p.recs = append(p.recs, rec)
		close(p.more)
		p.more = make(chan struct{})
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.ended = true
	close(p.more)
	p.mu.Unlock()
	p.err = p.cmd.Wait()
	close(p.exited)
}

// waitLog returns the first log record with message msg, failing the test
// if the process ends its log without one or none comes within logTimeout.
func (p *workerProcess) waitLog(msg string) map[string]any {
	p.t.Helper()
	timeout := time.After(logTimeout)
	for seen := 0; ; {
		p.mu.Lock()
		recs, more, ended := p.recs, p.more, p.ended
		p.mu.Unlock()
		for ; seen < len(recs); seen++ {
			if recs[seen]["msg"] == msg {
				return recs[seen]
			}
		}
		if ended {
			p.t.Fatalf("%s exited before logging %q", p.name, msg)
		}
		select {
		case <-more:
		case <-timeout:
			p.t.Fatalf("%s: no %q log within %v", p.name, msg, logTimeout)
		}
	}
}

// stop sends SIGTERM and returns the "worker stopped" log record and the
// result of the process (nil for exit status 0).
func (p *workerProcess) stop() (stopped map[string]any, exit error) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM to %s: %v", p.name, err)
	}
	stopped = p.waitLog("worker stopped")
	return stopped, p.wait()
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *workerProcess) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatalf("SIGKILL to %s: %v", p.name, err)
	}
	p.wait()
}

func (p *workerProcess) wait() error {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.err
	case <-time.After(logTimeout):
		p.t.Fatalf("%s still running %v after it was stopped", p.name, logTimeout)
		return nil
	}
}

// stoppedCounts checks that a graceful stop went well: exit status 0 and
// every request received was replied to. It returns the number received.
func stoppedCounts(t *testing.T, name string, stopped map[string]any, exit error) int64 {
	t.Helper()
	if exit != nil {
		t.Errorf("%s exit: %v, want status 0", name, exit)
	}
	received, _ := stopped["received"].(float64)
	replied, _ := stopped["replied"].(float64)
	if received != replied {
		t.Errorf("%s received %v requests and replied to %v", name, stopped["received"], stopped["replied"])
	}
	return int64(received)
}

// procEnv is a Redis Cluster seeded with set, a NATS server, and a client to
// it: everything worker processes need.
type procEnv struct {
	cluster *redistest.Cluster
	nats    *server.Server
	set     featureset.Set
	client  *subjects.Client
}

func newProcEnv(t *testing.T, set featureset.Set) *procEnv {
	t.Helper()
	e := &procEnv{cluster: redistest.Start(t, redistest.Options{}), nats: natstest.Start(t, nil), set: set}
	if err := set.Seed(context.Background(), e.cluster.Client(t), ""); err != nil {
		t.Fatal(err)
	}
	e.client = &subjects.Client{Conn: natstest.Connect(t, e.nats)}
	return e
}

// args returns the worker flags that connect it to e, followed by extra.
func (e *procEnv) args(extra ...string) []string {
	return append([]string{"--nats-url", e.nats.ClientURL(), "--redis-addrs", e.cluster.Addrs()[0], "--shutdown-timeout", "10s"}, extra...)
}

// startWorkers starts n workers at once, named prefix1..prefixN, and waits
// until each serves.
func (e *procEnv) startWorkers(t *testing.T, n int, prefix string, extra ...string) []*workerProcess {
	t.Helper()
	ps := make([]*workerProcess, n)
	for i := range ps {
		ps[i] = launchWorker(t, fmt.Sprintf("%s%d", prefix, i+1), e.args(extra...)...)
	}
	for _, p := range ps {
		p.waitLog("worker serving")
	}
	return ps
}

// callers keeps a number of goroutines sending lookups back to back, each
// with one request in flight at a time, and sorts every outcome. Every reply
// is checked against the feature set.
type callers struct {
	cfg  callersConfig
	stop chan struct{}
	wg   sync.WaitGroup

	sent, ok, wrong, timeouts, noResponders, errReplies, other atomic.Int64
	reported                                                   atomic.Int64 // failures logged so far

	mu                  sync.Mutex
	firstLost, lastLost time.Time // when the requests that timed out were sent
}

type callersConfig struct {
	Client  *subjects.Client
	Set     featureset.Set
	Callers int
	// Entities per request, consecutive ids that run a tenth past the
	// seeded ones, so that replies hold missing entities too. Zero means 1.
	Entities int
	// Timeout of each request, sent to the worker too. Zero means 5s.
	Timeout time.Duration
	// Check, if set, replaces Set.Check.
	Check func(ids, fs []int, got [][]*string) error
}

// tally is a snapshot of the outcomes.
type tally struct {
	Sent, OK, Wrong, Timeouts, NoResponders, ErrReplies, Other int64
}

// Failed counts the requests that got anything but correct values.
func (c tally) Failed() int64 {
	return c.Wrong + c.Timeouts + c.NoResponders + c.ErrReplies + c.Other
}

func (c tally) String() string {
	return fmt.Sprintf("sent %d: ok %d, wrong %d, timeouts %d, no responders %d, error replies %d, other errors %d",
		c.Sent, c.OK, c.Wrong, c.Timeouts, c.NoResponders, c.ErrReplies, c.Other)
}

func startCallers(t *testing.T, cfg callersConfig) *callers {
	t.Helper()
	if cfg.Entities == 0 {
		cfg.Entities = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Check == nil {
		cfg.Check = cfg.Set.Check
	}
	l := &callers{cfg: cfg, stop: make(chan struct{})}
	for g := range cfg.Callers {
		l.wg.Go(func() { l.run(t, g) })
	}
	t.Cleanup(func() { l.finish() })
	return l
}

func (l *callers) run(t *testing.T, g int) {
	c := l.cfg
	span := c.Set.Entities + c.Set.Entities/10 + c.Entities
	fs := make([]int, c.Set.Features)
	for j := range fs {
		fs[j] = j
	}
	features := featureset.Names(featureset.Feature, fs)
	ids := make([]int, c.Entities)
	for k := g * 7919; ; k += c.Entities * 31 {
		select {
		case <-l.stop:
			return
		default:
		}
		for i := range ids {
			ids[i] = (k + i) % span
		}
		sentAt := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
		l.sent.Add(1)
		got, err := c.Client.Lookup(ctx, featureset.Names(featureset.Entity, ids), features)
		cancel()
		var replyErr *subjects.Error
		switch {
		case err == nil:
			if werr := c.Check(ids, fs, got); werr != nil {
				l.wrong.Add(1)
				l.report(t, "wrong values for %v: %v", ids, werr)
				continue
			}
			l.ok.Add(1)
			continue
		// Before errors.As: a caller-side timeout also wraps ErrTimeout.
		case errors.Is(err, context.DeadlineExceeded):
			l.timeouts.Add(1)
			l.mu.Lock()
			if l.firstLost.IsZero() || sentAt.Before(l.firstLost) {
				l.firstLost = sentAt
			}
			if sentAt.After(l.lastLost) {
				l.lastLost = sentAt
			}
			l.mu.Unlock()
		case errors.Is(err, nats.ErrNoResponders):
			l.noResponders.Add(1)
		case errors.As(err, &replyErr):
			l.errReplies.Add(1)
		default:
			l.other.Add(1)
		}
		l.report(t, "lookup %v: %v", ids[0], err)
	}
}

// report logs the first few failures, for diagnosis; the counts are the
// assertions.
func (l *callers) report(t *testing.T, format string, args ...any) {
	if l.reported.Add(1) <= 5 {
		t.Logf(format, args...)
	}
}

// lostBetween returns when the first and the last of the requests that
// timed out were sent (zero times if none did).
func (l *callers) lostBetween() (first, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstLost, l.lastLost
}

// snapshot returns the outcomes so far.
func (l *callers) snapshot() tally {
	return tally{
		Sent: l.sent.Load(), OK: l.ok.Load(), Wrong: l.wrong.Load(), Timeouts: l.timeouts.Load(),
		NoResponders: l.noResponders.Load(), ErrReplies: l.errReplies.Load(), Other: l.other.Load(),
	}
}

// finish stops the callers, waits for the requests in flight to end, and
// returns the final outcomes. It may be called more than once.
func (l *callers) finish() tally {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	return l.snapshot()
}
