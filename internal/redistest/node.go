package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	readyTimeout  = 10 * time.Second // process start to first PONG
	startAttempts = 5                // ports tried per node when one turns out taken
	logTailLines  = 30
	logName       = "redis.log"
)

var sigterm os.Signal = syscall.SIGTERM

// errPortInUse means redis-server could not bind its client or bus port.
var errPortInUse = errors.New("port already in use")

// Node is one redis-server process of a Cluster.
type Node struct {
	Addr string // "127.0.0.1:port"
	Port int    // client port; the cluster bus listens on Port+10000
	ID   string // cluster node ID, as in CLUSTER NODES; stable across Kill and Restart
	Dir  string // working directory: nodes.conf and redis.log

	c         *Cluster
	extraArgs []string      // everything but --port and --dir
	client    *redis.Client // fixed once Start returns

	mu sync.Mutex
	p  *process // nil before the first launch
}

// process is one run of redis-server.
type process struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when Wait has returned
	err    error         // Wait's result; read only after done is closed
	killed bool          // stopped on purpose by Kill; guarded by Node.mu
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// LogPath returns the path of the file that receives the node's stdout and
// stderr, across restarts.
func (n *Node) LogPath() string { return filepath.Join(n.Dir, logName) }

// Running reports whether the node's process is running (started and not
// exited, whether by Kill or on its own).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.p != nil && !n.p.exited()
}

// Client returns a plain (non-cluster) go-redis client to this node, closed
// by the cleanup registered in Start. Commands on keys of slots the node does
// not own fail with MOVED or ASK errors, which is what a test inspecting one
// node wants.
func (n *Node) Client() *redis.Client { return n.client }

// launch starts redis-server for n, on a newly picked port if newPort (which
// also replaces n's client). It does not wait for the process to answer.
func (n *Node) launch(tb testing.TB, newPort bool) error {
	if newPort {
		port, err := freePort()
		if err != nil {
			return err
		}
		n.Port = port
		n.Addr = "127.0.0.1:" + strconv.Itoa(port)
		if n.client != nil {
			n.client.Close()
		}
		n.client = redis.NewClient(&redis.Options{
			Addr:       n.Addr,
			Password:   n.c.password,
			ClientName: ClientName,
		})
	}
	log, err := os.OpenFile(n.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close() // the child has its own copy of the descriptor
	args := append([]string{"--port", strconv.Itoa(n.Port), "--dir", n.Dir}, n.extraArgs...)
	cmd := exec.Command("redis-server", args...)
	cmd.Dir = n.Dir
	cmd.Stdout = log
	cmd.Stderr = log
	if err := startProcess(cmd); err != nil {
		return fmt.Errorf("start redis-server for %s: %w", n.Addr, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	n.mu.Lock()
	n.p = p
	n.mu.Unlock()
	tb.Logf("redistest: started redis-server pid %d on %s in %s", cmd.Process.Pid, n.Addr, n.Dir)
	return nil
}

// startWithRetries waits for n's freshly launched process to answer, and
// while it fails because its port was taken in the meantime, launches it
// again as a new node on another port.
func (n *Node) startWithRetries(tb testing.TB) {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		err := n.waitReady()
		if err == nil {
			return
		}
		if !errors.Is(err, errPortInUse) || attempt == startAttempts {
			tb.Fatalf("redistest: %v", err)
		}
		tb.Logf("redistest: %v; trying another port", err)
		// A fresh node: forget any identity written under the old port.
		os.Remove(filepath.Join(n.Dir, "nodes.conf"))
		if err := n.launch(tb, true); err != nil {
			tb.Fatalf("redistest: %v", err)
		}
	}
}

// waitReady waits until n's current process answers PING, and reports why
// not if it exits or does not within readyTimeout.
func (n *Node) waitReady() error {
	n.mu.Lock()
	p := n.p
	n.mu.Unlock()
	rdb := redis.NewClient(&redis.Options{
		Addr:            n.Addr,
		Password:        n.c.password,
		ClientName:      ClientName,
		PoolSize:        1,
		MaxRetries:      -1,
		DialTimeout:     500 * time.Millisecond,
		DisableIdentity: true,
	})
	defer rdb.Close()
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-p.done:
			log := tail(n.LogPath(), logTailLines)
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("redis-server on %s: %w", n.Addr, errPortInUse)
			}
			return fmt.Errorf("redis-server pid %d on %s exited during startup (%v); last lines of %s:\n%s",
				p.cmd.Process.Pid, n.Addr, p.err, n.LogPath(), log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server pid %d on %s did not answer PING within %v: %v; last lines of %s:\n%s",
				p.cmd.Process.Pid, n.Addr, readyTimeout, err, n.LogPath(), tail(n.LogPath(), logTailLines))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill sends SIGKILL to the node's process and waits for it to exit. It
// fails the test if the node is not running. The rest of the cluster notices
// only after the node timeout (Options.NodeTimeout).
func (n *Node) Kill(tb testing.TB) {
	tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.p
	if p == nil || p.exited() {
		tb.Fatalf("redistest: Kill %s: not running", n.Addr)
	}
	p.killed = true
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Fatalf("redistest: Kill %s (pid %d): %v", n.Addr, p.cmd.Process.Pid, err)
	}
	<-p.done
	tb.Logf("redistest: killed redis-server pid %d on %s", p.cmd.Process.Pid, n.Addr)
}

// Restart starts the node again, after Kill (or a crash), on the same port
// and in the same directory, and returns once it answers PING. The node
// rejoins the cluster with its old identity from nodes.conf but, with no
// persistence, an empty dataset. Restart does not wait for the cluster to
// settle; call WaitOK for that. It fails the test if the node is running,
// or if the port has been taken by another process in the meantime.
func (n *Node) Restart(tb testing.TB) {
	tb.Helper()
	if n.Running() {
		tb.Fatalf("redistest: Restart %s: still running; Kill it first", n.Addr)
	}
	if err := n.launch(tb, false); err != nil {
		tb.Fatalf("redistest: Restart: %v", err)
	}
	if err := n.waitReady(); err != nil {
		tb.Fatalf("redistest: Restart: %v", err)
	}
}

// Master returns the master n replicates from, read now from n's INFO
// replication, or nil if n is itself a master.
func (n *Node) Master(tb testing.TB) *Node {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	info, err := n.client.Info(ctx, "replication").Result()
	if err != nil {
		tb.Fatalf("redistest: INFO replication on %s: %v", n.Addr, err)
	}
	var host, port string
	for line := range strings.Lines(info) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "role:"); ok && v == "master" {
			return nil
		}
		if v, ok := strings.CutPrefix(line, "master_host:"); ok {
			host = v
		}
		if v, ok := strings.CutPrefix(line, "master_port:"); ok {
			port = v
		}
	}
	m := n.c.node(host + ":" + port)
	if m == nil {
		tb.Fatalf("redistest: %s replicates from %s:%s, which is not a node of this cluster", n.Addr, host, port)
	}
	return m
}

// tail returns the last n lines of the file at path, or a note saying why it
// cannot.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
