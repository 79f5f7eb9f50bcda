package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/featurestore/featureworker/internal/envflag"
	"io"
	"os"
	"strings"

	"github.com/featurestore/featureworker/subjects"
	"github.com/nats-io/nats.go"
)

// Exit codes of Main.
const (
	exitOK     = 0
	exitFailed = 1 // the run found wrong values (or errors, with --fail-on-errors), or could not run
	exitUsage  = 2
)

// defaultConnNamePrefix is worker.DefaultClientName, which names both the
// worker's data connections and its topology connection ("-topology"). It
// is not imported so that the loadgen binary does not carry the worker;
// the tests check that the two agree.
const defaultConnNamePrefix = "features-worker"

// Loadgen is the program: main only wires it to the process, so that tests
// run exactly what users run.
type Loadgen struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Terminal says stderr is a terminal, where the live progress line goes.
	Terminal bool
	// NATSOptions are added to the run's NATS options, for tests and auth.
	NATSOptions []nats.Option
}

const usage = `Usage: loadgen seed|run|table [flags]

  seed  writes the synthetic feature set into a Redis Cluster
  run   sends lookups to the workers and reports throughput, latency,
        errors, wrong values and the worker's Redis connections
  table turns the JSON reports of several runs into one markdown table

Every flag falls back to an environment variable, its name in upper case
with '_' for '-' (NATS_URL for --nats-url). "loadgen <command> -h" lists
a command's flags.
`

// Main runs the command in args and returns the exit code.
func (l *Loadgen) Main(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(l.Stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "seed":
		return l.seed(ctx, args[1:])
	case "run":
		return l.run(ctx, args[1:])
	case "table":
		return l.table(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(l.Stdout, usage)
		return exitOK
	}
	fmt.Fprintf(l.Stderr, "loadgen: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// setFlags binds the flags the two commands share.
type setFlags struct {
	redisAddrs string
	entities   int
	features   int
	valueSize  int
}

func (s *setFlags) bind(fs *flag.FlagSet, redisUsage string) {
	fs.StringVar(&s.redisAddrs, "redis-addrs", "", redisUsage)
	fs.IntVar(&s.entities, "entities", 100000, "entities in the feature set (e:0 .. e:<N-1>)")
	fs.IntVar(&s.features, "features", 8, "features per entity (f0 .. f<M-1>)")
	fs.IntVar(&s.valueSize, "value-size", 0, "pad every value to this many bytes (0: as short as they come)")
}

func (l *Loadgen) seed(ctx context.Context, args []string) int {
	fs := l.flagSet("seed", "writes the feature set into the cluster")
	var s setFlags
	var c SeedConfig
	s.bind(fs, "Redis Cluster seed nodes, comma-separated host:port (required)")
	fs.StringVar(&c.KeyPrefix, "key-prefix", "", "prefix of every key: the worker's --key-prefix")
	if code, ok := l.parse(fs, args); !ok {
		return code
	}
	c.RedisAddrs = envflag.List(s.redisAddrs)
	c.Set.Entities, c.Set.Features, c.Set.ValueSize = s.entities, s.features, s.valueSize
	took, err := Seed(ctx, c)
	if err != nil {
		fmt.Fprintln(l.Stderr, "loadgen seed:", err)
		return exitFailed
	}
	fmt.Fprintf(l.Stdout, "seeded %d entities × %d features in %v (%.0f entities/s)\n",
		c.Set.Entities, c.Set.Features, took.Round(1e6), float64(c.Set.Entities)/took.Seconds())
	return exitOK
}

func (l *Loadgen) run(ctx context.Context, args []string) int {
	fs := l.flagSet("run", "sends lookups and reports")
	var s setFlags
	c := RunConfig{NATSOptions: l.NATSOptions}
	var jsonOut, csvOut, plotOut string
	var failOnErrors bool
	fs.StringVar(&c.NATSURL, "nats-url", nats.DefaultURL, "NATS server URL(s), comma-separated")
	fs.IntVar(&c.NATSConns, "nats-conns", 4, "NATS connections, used round-robin")
	fs.StringVar(&c.Subject, "subject", subjects.Lookup, "NATS subject of the lookups")
	s.bind(fs, "Redis Cluster seed nodes, comma-separated host:port: every master found there is sampled with CLIENT LIST (empty: no sampling)")
	fs.StringVar(&c.ConnNamePrefix, "conn-name-prefix", defaultConnNamePrefix, "CLIENT LIST names that count as the worker's connections (prefix)")
	fs.DurationVar(&c.SampleInterval, "sample-interval", 0, "CLIENT LIST interval per node (0: the sampler's default, 100ms)")
	fs.IntVar(&c.ReqEntities, "req-entities", 1, "distinct entities per request")
	fs.IntVar(&c.ReqFeatures, "req-features", 4, "distinct features per request")
	fs.StringVar(&c.Keys, "keys", keysUniform, "entity distribution: uniform or zipf (5% of draws are missing entities either way)")
	fs.Float64Var(&c.ZipfS, "zipf-s", 1.1, "Zipf exponent, > 1 (higher: hotter keys)")
	fs.StringVar(&c.Mode, "mode", modeClosed, "closed (fixed concurrency) or open (fixed rate, latency from the intended send time)")
	fs.IntVar(&c.Concurrency, "concurrency", 64, "closed loop: requests in flight")
	fs.Float64Var(&c.Rate, "rate", 1000, "open loop: requests per second")
	fs.IntVar(&c.MaxOutstanding, "max-outstanding", 10000, "open loop: most requests in flight; sends beyond it are counted as dropped")
	fs.DurationVar(&c.Duration, "duration", 10e9, "measured time")
	fs.DurationVar(&c.Warmup, "warmup", 1e9, "time before measuring, not recorded")
	fs.DurationVar(&c.Timeout, "timeout", subjects.DefaultTimeout, "per-request timeout (sent to the worker too)")
	fs.IntVar(&c.Budget, "budget", 0, "expected connections per node, drawn as a dashed line and flagged when exceeded (0: none)")
	fs.StringVar(&c.Label, "label", "", "name of the run in the report, e.g. batched")
	fs.StringVar(&jsonOut, "json", "", `write the report as JSON to this file ("-": stdout, the text report then goes to stderr)`)
	fs.StringVar(&csvOut, "csv", "", "write one row per second to this CSV file")
	fs.StringVar(&plotOut, "plot", "", "draw latency and connections over time into this SVG file")
	fs.BoolVar(&c.NoCheck, "no-check", false, "do not check values (for workers that answer without Redis, such as --strategy echo)")
	fs.BoolVar(&failOnErrors, "fail-on-errors", false, "exit non-zero on any error or dropped request, not only on wrong values")
	if code, ok := l.parse(fs, args); !ok {
		return code
	}
	c.RedisAddrs = envflag.List(s.redisAddrs)
	c.Set.Entities, c.Set.Features, c.Set.ValueSize = s.entities, s.features, s.valueSize
	if err := c.Validate(); err != nil {
		fmt.Fprintln(l.Stderr, "loadgen run:", err)
		return exitUsage
	}
	if l.Terminal {
		c.Progress = l.Stderr
	}
	rep, err := Run(ctx, c)
	if err != nil {
		fmt.Fprintln(l.Stderr, "loadgen run:", err)
		return exitFailed
	}
	text := l.Stdout
	if jsonOut == "-" {
		text = l.Stderr
	}
	err = errors.Join(
		rep.WriteText(text),
		l.writeFile(jsonOut, rep.WriteJSON),
		l.writeFile(csvOut, rep.WriteCSV),
		l.writeFile(plotOut, rep.WritePlot),
	)
	if err != nil {
		fmt.Fprintln(l.Stderr, "loadgen run:", err)
		return exitFailed
	}
	if why := rep.Failed(failOnErrors); why != "" {
		fmt.Fprintln(l.Stderr, "loadgen run: FAILED:", why)
		return exitFailed
	}
	return exitOK
}

// writeFile writes through write into path; "" writes nothing, "-" writes
// to stdout.
func (l *Loadgen) writeFile(path string, write func(io.Writer) error) error {
	switch path {
	case "":
		return nil
	case "-":
		return write(l.Stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

func (l *Loadgen) flagSet(name, what string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(l.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: loadgen %s [flags]\n\n%s.\n\nFlags:\n", name, strings.ToUpper(what[:1])+what[1:])
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args and then the environment into fs. If it returns false,
// the command ends with the code it returns.
func (l *Loadgen) parse(fs *flag.FlagSet, args []string) (int, bool) {
	envflag.Document(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	err := envflag.Apply(fs, l.Getenv)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err != nil {
		fmt.Fprintf(l.Stderr, "loadgen %s: %v\n", fs.Name(), err)
		return exitUsage, false
	}
	return exitOK, true
}
