package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/worker"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"
)

// There is no Docker engine where the tests run, so these tests check
// docker-compose.yml, the Dockerfile and their support files against the
// programs they configure, and run the compose Redis Cluster bootstrap with
// local redis-server processes.

// repoRoot is the repository, seen from this package's directory.
const repoRoot = "../.."

// composeFile is what the tests read of docker-compose.yml.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

// composeService is one service. Fields that compose accepts in several
// shapes are kept as decoded and read through the methods below.
type composeService struct {
	Image       string   `yaml:"image"`
	Build       any      `yaml:"build"`
	Command     any      `yaml:"command"`
	Entrypoint  any      `yaml:"entrypoint"`
	Environment any      `yaml:"environment"`
	DependsOn   any      `yaml:"depends_on"`
	Volumes     []string `yaml:"volumes"`
	Healthcheck *struct {
		Test any `yaml:"test"`
	} `yaml:"healthcheck"`
	StopGracePeriod string `yaml:"stop_grace_period"`
	Deploy          struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("docker-compose.yml has no services")
	}
	return c
}

// service returns the service called name, failing the test if there is none.
func (c composeFile) service(t *testing.T, name string) composeService {
	t.Helper()
	s, ok := c.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no %s service", name)
	}
	return s
}

// words returns a command or entrypoint as a list: compose splits a string
// on spaces.
func words(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, len(v))
		for i, w := range v {
			out[i] = fmt.Sprint(w)
		}
		return out
	}
	return nil
}

// env returns the service's environment, given as a map or as a list of
// NAME=value.
func (s composeService) env() map[string]string {
	out := map[string]string{}
	switch v := s.Environment.(type) {
	case map[string]any:
		for k, val := range v {
			out[k] = fmt.Sprint(val)
		}
	case []any:
		for _, kv := range v {
			k, val, _ := strings.Cut(fmt.Sprint(kv), "=")
			out[k] = val
		}
	}
	return out
}

// dependsOn returns each dependency with its condition; the list form means
// service_started.
func (s composeService) dependsOn() map[string]string {
	out := map[string]string{}
	switch v := s.DependsOn.(type) {
	case []any:
		for _, name := range v {
			out[fmt.Sprint(name)] = "service_started"
		}
	case map[string]any:
		for name, spec := range v {
			cond := "service_started"
			if m, ok := spec.(map[string]any); ok && m["condition"] != nil {
				cond = fmt.Sprint(m["condition"])
			}
			out[name] = cond
		}
	}
	return out
}

// mountSource returns the file of the repository (a path from repoRoot)
// mounted at target in the container, or "".
func (s composeService) mountSource(target string) string {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			return filepath.Join(repoRoot, parts[0])
		}
	}
	return ""
}

// redisNodes returns the services that run redis-server, sorted by name.
func (c composeFile) redisNodes() []string {
	var names []string
	for name, s := range c.Services {
		if cmd := words(s.Command); len(cmd) > 0 && cmd[0] == "redis-server" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// TestComposeServices checks the wiring of docker-compose.yml: images,
// dependencies, the addresses each program is given, the cluster bootstrap
// and the NATS configuration.
func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		for dep, cond := range s.dependsOn() {
			d, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
			case cond == "service_healthy" && d.Healthcheck == nil:
				t.Errorf("service %s waits for %s to be healthy, which has no health check", name, dep)
			case !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, cond):
				t.Errorf("service %s: unknown depends_on condition %q", name, cond)
			}
		}
		// Every address a program is given must be a service of the file.
		env := s.env()
		for _, addr := range strings.Split(env["REDIS_ADDRS"], ",") {
			if addr == "" {
				continue
			}
			if host, _, err := net.SplitHostPort(addr); err != nil || c.Services[host].Image == "" {
				t.Errorf("service %s: REDIS_ADDRS names %q, not a host:port of a service", name, addr)
			}
		}
		for _, key := range []string{"NATS_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
			if env[key] == "" {
				continue
			}
			u, err := url.Parse(env[key])
			if err != nil || u.Port() == "" || c.Services[u.Hostname()].Image == "" {
				t.Errorf("service %s: %s=%q does not point to a port of a service", name, key, env[key])
			}
		}
	}

	w := c.service(t, "worker")
	if w.Deploy.Replicas != 3 {
		t.Errorf("worker: deploy.replicas %d, want 3", w.Deploy.Replicas)
	}
	// Docker SIGKILLs a container still running stop_grace_period after
	// SIGTERM (10s by default): that must not cut a drain short.
	grace, err := time.ParseDuration(w.StopGracePeriod)
	m := NewMain()
	m.ParseFlags(nil, func(k string) string { return w.env()[k] })
	if err != nil || grace <= m.ShutdownTimeout {
		t.Errorf("worker: stop_grace_period %q, want longer than its shutdown timeout (%v)", w.StopGracePeriod, m.ShutdownTimeout)
	}

	t.Run("redis-init", func(t *testing.T) {
		bootstrap := c.service(t, "redis-init")
		cmd := words(bootstrap.Command)
		i := slices.IndexFunc(cmd, func(w string) bool { return strings.HasSuffix(w, "redis-cluster.sh") })
		if i < 0 || len(cmd) < i+3 || cmd[i+1] != "create" {
			t.Fatalf("redis-init runs %q, want redis-cluster.sh create REPLICAS HOST:PORT...", cmd)
		}
		script := bootstrap.mountSource(cmd[i])
		if script != filepath.Join(repoRoot, "scripts/redis-cluster.sh") {
			t.Errorf("redis-init: %s is mounted from %q, want scripts/redis-cluster.sh", cmd[i], script)
		}
		if _, err := os.Stat(script); err != nil {
			t.Error(err)
		}
		var hosts []string
		for _, addr := range cmd[i+3:] {
			host, _, _ := net.SplitHostPort(addr)
			hosts = append(hosts, host)
		}
		slices.Sort(hosts)
		if nodes := c.redisNodes(); !slices.Equal(hosts, nodes) {
			t.Errorf("redis-init creates the cluster of %q, but the Redis nodes are %q", hosts, nodes)
		}
		if replicas, _ := strconv.Atoi(cmd[i+2]); len(hosts) != 3*(1+replicas) {
			t.Errorf("%d nodes with %s replicas each: want 3 masters", len(hosts), cmd[i+2])
		}
		for _, node := range c.redisNodes() {
			if cond := bootstrap.dependsOn()[node]; cond != "service_healthy" {
				t.Errorf("redis-init: depends on %s with %q, want service_healthy", node, cond)
			}
		}
		if cond := w.dependsOn()["redis-init"]; cond != "service_completed_successfully" {
			t.Errorf("worker: depends on redis-init with %q, want service_completed_successfully", cond)
		}
	})

	t.Run("nats", func(t *testing.T) {
		n := c.service(t, "nats")
		cmd := words(n.Command)
		i := slices.Index(cmd, "--config")
		if i < 0 || i+1 >= len(cmd) {
			t.Fatalf("nats runs %q, want --config FILE", cmd)
		}
		opts, err := server.ProcessConfigFile(n.mountSource(cmd[i+1]))
		if err != nil {
			t.Fatalf("NATS configuration %s mounted from %q: %v", cmd[i+1], n.mountSource(cmd[i+1]), err)
		}
		if n.Healthcheck == nil {
			t.Fatal("nats has no health check")
		}
		if health := strings.Join(words(n.Healthcheck.Test), " "); opts.HTTPPort == 0 || !strings.Contains(health, ":"+strconv.Itoa(opts.HTTPPort)+"/healthz") {
			t.Errorf("nats health check %q does not use the monitoring port %d", health, opts.HTTPPort)
		}
		// A worker whose host vanished gets requests, all lost, until the
		// server gives up pinging it: docs/deployment.md promises 20s.
		if dead := opts.PingInterval * time.Duration(opts.MaxPingsOut); dead == 0 || dead > 20*time.Second {
			t.Errorf("NATS notices a vanished client after %v × %d, want at most 20s", opts.PingInterval, opts.MaxPingsOut)
		}
		if u, _ := url.Parse(w.env()["NATS_URL"]); u.Port() != strconv.Itoa(opts.Port) {
			t.Errorf("worker: NATS_URL %q, but NATS listens on port %d", w.env()["NATS_URL"], opts.Port)
		}
	})
}

// TestComposeWorkerConfig parses the worker service's command and
// environment exactly as the worker does: every variable must be the
// variable of a flag (or one of OpenTelemetry's), and parse.
func TestComposeWorkerConfig(t *testing.T) {
	w := loadCompose(t).service(t, "worker")
	if ep := words(w.Entrypoint); ep != nil && !slices.Equal(ep, []string{"/worker"}) {
		t.Errorf("worker: entrypoint %q, want the image's /worker", ep)
	}
	env := w.env()
	// ParseFlags asks getenv for the variable of every flag it has.
	flagVars := map[string]bool{}
	err := NewMain().ParseFlags(words(w.Command), func(k string) string {
		flagVars[k] = true
		return env[k]
	})
	if err != nil {
		t.Errorf("worker: its command %q and environment do not parse: %v", words(w.Command), err)
	}
	if !flagVars["REDIS_ADDRS"] {
		t.Fatalf("ParseFlags did not look up REDIS_ADDRS: the check below would be empty")
	}
	for k := range env {
		// The OpenTelemetry SDK reads the OTEL_* variables itself.
		if !flagVars[k] && !strings.HasPrefix(k, "OTEL_") {
			t.Errorf("worker: environment %s is not the variable of any flag", k)
		}
	}
}

// TestComposeLoadgenConfig runs the load generator binary with the command
// and environment of each service that uses it: every variable must be one
// its -h lists, and with a stray argument appended, the only complaint must
// be that argument (so every flag and variable parsed).
func TestComposeLoadgenConfig(t *testing.T) {
	c := loadCompose(t)
	bin := filepath.Join(t.TempDir(), "loadgen")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/featurestore/featureworker/cmd/loadgen").CombinedOutput(); err != nil {
		t.Fatalf("building loadgen: %v\n%s", err, out)
	}
	varName := regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`)
	checked := 0
	for name, s := range c.Services {
		if !slices.Equal(words(s.Entrypoint), []string{"/loadgen"}) {
			continue
		}
		checked++
		cmd := words(s.Command)
		if len(cmd) == 0 {
			t.Errorf("service %s: no loadgen command", name)
			continue
		}
		help, _ := exec.Command(bin, cmd[0], "-h").CombinedOutput()
		vars := map[string]bool{}
		for _, m := range varName.FindAllStringSubmatch(string(help), -1) {
			vars[m[1]] = true
		}
		if !vars["REDIS_ADDRS"] {
			t.Fatalf("service %s: loadgen %s -h lists no REDIS_ADDRS:\n%s", name, cmd[0], help)
		}
		var env []string
		for k, v := range s.env() {
			if !vars[k] {
				t.Errorf("service %s: environment %s is not a variable of loadgen %s", name, k, cmd[0])
			}
			env = append(env, k+"="+v)
		}
		run := exec.Command(bin, append(cmd, "stray-argument")...)
		run.Env = env
		out, _ := run.CombinedOutput()
		if !strings.Contains(string(out), `unexpected arguments: ["stray-argument"]`) {
			t.Errorf("service %s: loadgen %q with its environment: %s", name, cmd, out)
		}
	}
	if checked < 2 {
		t.Errorf("%d services run /loadgen, want the seed and loadgen services", checked)
	}
}

// TestDockerfile checks that the image has what compose expects of it.
func TestDockerfile(t *testing.T) {
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(repoRoot, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	df, mod := read("Dockerfile"), read("go.mod")
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(mod)
	if goVersion == nil || !strings.Contains(df, "FROM golang:"+goVersion[1]+" ") {
		t.Errorf("the Dockerfile does not build with the Go of go.mod (%v)", goVersion)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/worker", "./cmd/loadgen", " /worker\n", " /loadgen\n", "USER 65532:65532", `ENTRYPOINT ["/worker"]`} {
		if !strings.Contains(df, want) {
			t.Errorf("the Dockerfile has no %q", want)
		}
	}
	// The build copies the module: nothing it compiles may be ignored.
	sc := bufio.NewScanner(strings.NewReader(read(".dockerignore")))
	for sc.Scan() {
		pattern := strings.TrimSpace(sc.Text())
		if pattern == "" || strings.HasPrefix(pattern, "#") {
			continue
		}
		for _, path := range []string{"go.mod", "go.sum", "cmd", "worker", "subjects", "internal", "tracing"} {
			if ok, _ := filepath.Match(pattern, path); ok {
				t.Errorf(".dockerignore pattern %q excludes %s, which the build needs", pattern, path)
			}
		}
	}
}

// TestComposeRedisCluster starts the compose Redis nodes as local
// processes, with their configuration file and command line (each on its
// own port, announcing "localhost" rather than its service name), runs the
// redis-init command on them, and looks features up through a worker: the
// script resolves host names, and the worker follows the host names the
// nodes announce.
func TestComposeRedisCluster(t *testing.T) {
	c := loadCompose(t)
	nodes := c.redisNodes()
	ports := freePorts(t, 2*len(nodes))
	addrs := map[string]string{} // service name → local address
	for i, name := range nodes {
		s := c.Services[name]
		cmd := words(s.Command)
		if len(cmd) < 2 || s.mountSource(cmd[1]) == "" {
			t.Fatalf("%s runs %q, want redis-server CONFIG-FILE, with the file mounted", name, cmd)
		}
		args := append([]string{s.mountSource(cmd[1])}, cmd[2:]...)
		if j := slices.Index(args, "--cluster-announce-hostname"); j < 0 || j+1 >= len(args) || args[j+1] != name {
			t.Errorf("%s does not announce its service name: %q", name, args)
		} else {
			args[j+1] = "localhost"
		}
		args = append(args, "--port", strconv.Itoa(ports[2*i]), "--cluster-port", strconv.Itoa(ports[2*i+1]),
			"--bind", "127.0.0.1", "--dir", t.TempDir())
		startRedis(t, name, args)
		addrs[name] = "localhost:" + strconv.Itoa(ports[2*i])
	}

	bootstrap := words(c.service(t, "redis-init").Command)
	i := slices.IndexFunc(bootstrap, func(w string) bool { return strings.HasSuffix(w, "redis-cluster.sh") })
	if i < 0 {
		t.Fatalf("redis-init runs %q", bootstrap)
	}
	args := []string{c.service(t, "redis-init").mountSource(bootstrap[i])}
	for _, a := range bootstrap[i+1:] {
		host, port, err := net.SplitHostPort(a)
		if err == nil && addrs[host] != "" {
			if port != "6379" {
				t.Errorf("redis-init: %s, but the nodes listen on 6379 (deploy/redis.conf)", a)
			}
			a = addrs[host]
		}
		args = append(args, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cluster.sh %q: %v\n%s", args[1:], err, out)
	}

	// The cluster names its nodes by host name, has 3 masters, and serves
	// the worker.
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{addrs[nodes[0]]}})
	defer rdb.Close()
	slots, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if host, _, _ := net.SplitHostPort(s.Nodes[0].Addr); host != "localhost" {
			t.Errorf("CLUSTER SLOTS gives %s for slots %d-%d, want the announced host name", s.Nodes[0].Addr, s.Start, s.End)
		}
	}
	if len(slots) != 3 {
		t.Errorf("%d slot ranges, want one per master (3)", len(slots))
	}
	set := featureset.Set{Entities: 100, Features: 2}
	if err := set.Seed(ctx, rdb, ""); err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t, nil)
	w, err := worker.Start(ctx, natstest.Connect(t, ns), worker.Config{
		RedisAddrs: []string{addrs[nodes[0]]},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Shutdown(context.Background()) })
	ids, fs := []int{0, 1, 2, 3, 50, 99, 100}, []int{0, 1}
	got, err := (&subjects.Client{Conn: natstest.Connect(t, ns)}).Lookup(ctx, featureset.Names(featureset.Entity, ids), featureset.Names(featureset.Feature, fs))
	if err == nil {
		err = set.Check(ids, fs, got)
	}
	if err != nil {
		t.Errorf("lookup through the compose cluster: %v", err)
	}
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// startRedis starts redis-server with args until the test ends.
func startRedis(t *testing.T, name string, args []string) {
	t.Helper()
	cmd := exec.Command("redis-server", args...)
	log, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
		if t.Failed() {
			data, _ := os.ReadFile(log.Name())
			t.Logf("%s log:\n%s", name, data)
		}
	})
}
