// Package jaegertest runs a real Jaeger for tests: the v2 binary (an
// OpenTelemetry collector distribution) with in-memory storage, its OTLP
// receivers and its query API on free loopback ports.
//
// The binary is built from the separate tools module at the repository root
// (tools/go.mod tracks github.com/jaegertracing/jaeger/cmd/jaeger as a Go
// tool), so the main module does not depend on Jaeger. The first build takes
// minutes; the result is cached under os.UserCacheDir, keyed by the version
// pinned in tools/go.mod, and later test runs start Jaeger in well under a
// second.
package jaegertest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	mainModule  = "github.com/featurestore/featureworker"
	jaegerMod   = "github.com/jaegertracing/jaeger"
	jaegerPkg   = jaegerMod + "/cmd/jaeger"
	startTries  = 3
	readyWithin = 60 * time.Second
)

// Jaeger is a running Jaeger started by Start.
type Jaeger struct {
	// OTLPHTTPEndpoint and OTLPGRPCEndpoint are base URLs such as
	// "http://127.0.0.1:43123", in the form OTEL_EXPORTER_OTLP_ENDPOINT
	// takes; the http scheme tells the gRPC exporter to use plaintext.
	OTLPHTTPEndpoint string
	OTLPGRPCEndpoint string
	// QueryURL is the base URL of the query API and UI.
	QueryURL string

	client *http.Client
}

// Start starts a Jaeger with empty in-memory storage and returns once its
// query API answers and its OTLP receivers accept connections. The process
// is stopped when the test and its subtests finish.
//
// The first call in a test process builds the binary unless it is already
// cached; a failed build or start fails the test (it is never skipped).
func Start(tb testing.TB) *Jaeger {
	tb.Helper()
	bin, err := binary()
	if err != nil {
		tb.Fatalf("jaegertest: %v", err)
	}
	var lastErr error
	for range startTries {
		j, err := start(tb, bin)
		if err == nil {
			return j
		}
		// Most likely another process took one of the ports between our
		// choosing and Jaeger binding it; choose again.
		lastErr = err
	}
	tb.Fatalf("jaegertest: %v", lastErr)
	return nil
}

func start(tb testing.TB, bin string) (*Jaeger, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	otlpGRPC, otlpHTTP, queryHTTP, queryGRPC := ports[0], ports[1], ports[2], ports[3]

	dir := tb.TempDir()
	cfgPath := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(cfgPath, []byte(Config(otlpGRPC, otlpHTTP, queryHTTP, queryGRPC)), 0o644); err != nil {
		return nil, err
	}

	out := new(syncBuffer)
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Env = childEnv()
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	stop := func() {
		// SIGTERM lets the collector shut down cleanly; it takes milliseconds
		// with in-memory storage, so a kill after a few seconds is a backstop.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	j := &Jaeger{
		OTLPHTTPEndpoint: fmt.Sprintf("http://127.0.0.1:%d", otlpHTTP),
		OTLPGRPCEndpoint: fmt.Sprintf("http://127.0.0.1:%d", otlpGRPC),
		QueryURL:         fmt.Sprintf("http://127.0.0.1:%d", queryHTTP),
		client:           &http.Client{Timeout: 5 * time.Second},
	}
	if err := j.waitReady(exited, otlpGRPC, otlpHTTP); err != nil {
		stop()
		return nil, fmt.Errorf("%v\njaeger output:\n%s", err, out.String())
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			tb.Logf("jaeger output:\n%s", out.String())
		}
	})
	return j, nil
}

// waitReady polls until the query API answers and both OTLP ports accept
// connections. The collector starts its extensions (the query API among them)
// before its receivers, so the query API alone is not enough.
func (j *Jaeger) waitReady(exited <-chan error, otlpPorts ...int) error {
	deadline := time.Now().Add(readyWithin)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("jaeger exited before it was ready: %v", err)
		default:
		}
		if j.queryReady() && portsOpen(otlpPorts) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("jaeger not ready after %v", readyWithin)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (j *Jaeger) queryReady() bool {
	resp, err := j.client.Get(j.QueryURL + "/api/services")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func portsOpen(ports []int) bool {
	for _, p := range ports {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), time.Second)
		if err != nil {
			return false
		}
		c.Close()
	}
	return true
}

// Config returns the Jaeger configuration Start uses: the all-in-one
// configuration of cmd/jaeger (internal/all-in-one.yaml in the Jaeger module)
// cut down to what tests need, on the given loopback ports.
//
// Compared with all-in-one it keeps only the OTLP receivers (no Jaeger or
// Zipkin ones), drops the batch processor so that spans are stored as soon as
// they are received, drops remote sampling, health check, expvar and zpages,
// turns the collector's own metrics off (otherwise it serves Prometheus on the
// fixed port 8888), and turns off the query service's self-tracing (otherwise
// it exports its own spans over OTLP to localhost:4317, which may be another
// test's collector).
func Config(otlpGRPC, otlpHTTP, queryHTTP, queryGRPC int) string {
	return fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn

extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`, queryHTTP, queryGRPC, otlpGRPC, otlpHTTP)
}

// childEnv is the test's environment without OTEL_* variables: tests set
// those (with t.Setenv) to point their own SDK at this Jaeger, and Jaeger
// must not act on them.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// All listeners are open at once so that the ports differ.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// binary returns the path of the cached Jaeger binary, building it the first
// time. The result is computed once per test process.
var binary = sync.OnceValues(func() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	toolsDir := filepath.Join(root, "tools")
	version, err := requiredVersion(filepath.Join(toolsDir, "go.mod"), jaegerMod)
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "featureworker", "jaeger-"+version)
	bin := filepath.Join(dir, "jaeger")
	if fileExists(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}

	// go test runs the test binaries of several packages at once; the lock
	// makes the others wait for one build instead of each doing its own.
	unlock, err := lockFile(filepath.Join(dir, "build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if fileExists(bin) {
		return bin, nil
	}

	goCmd, err := goTool()
	if err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "jaegertest: building %s@%s into %s (once per machine; takes minutes)\n", jaegerPkg, version, bin)
	began := time.Now()
	tmp := bin + ".tmp"
	cmd := exec.Command(goCmd, "build", "-C", toolsDir, "-ldflags=-s -w", "-o", tmp, jaegerPkg)
	// GOWORK=off: a go.work above the repository must not pull the tools
	// module into a workspace with the main module. GOFLAGS is replaced so
	// that flags meant for the tests (-race, -mod=...) do not reach this
	// build, and VCS stamping, which needs a healthy git checkout, is off.
	// CGO_ENABLED=0 gives a static binary, as Jaeger releases are, and
	// needs no C toolchain.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("building %s in %s: %v\n%s", jaegerPkg, toolsDir, err, out)
	}
	// Rename last, so that a build cut short never leaves a binary behind.
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	fmt.Fprintf(os.Stderr, "jaegertest: built jaeger in %v\n", time.Since(began).Round(time.Second))
	return bin, nil
})

// repoRoot walks up from the working directory (the package directory under
// go test) to the directory whose go.mod declares the main module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if mod, err := modulePath(filepath.Join(dir, "go.mod")); err == nil && mod == mainModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod declaring module %s above the working directory", mainModule)
		}
		dir = parent
	}
}

func modulePath(gomod string) (string, error) {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", fmt.Errorf("%s: no module line", gomod)
}

// requiredVersion returns the version of module mod that gomod requires.
func requiredVersion(gomod, mod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		line = strings.TrimPrefix(line, "require ")
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == mod {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s does not require %s", gomod, mod)
}

// goTool finds the go command: on PATH, else in $GOROOT/bin.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p, nil
		}
	}
	return "", errors.New("go command not found on PATH or in GOROOT")
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// syncBuffer collects the process output, written by exec's copying
// goroutines while the test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
