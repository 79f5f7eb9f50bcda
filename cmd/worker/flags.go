package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/featurestore/featureworker/internal/envflag"
	"log/slog"
	"os"

	"github.com/featurestore/featureworker/subjects"
)

var errHelp = errors.New("help requested")

// ParseFlags fills m from command-line flags. Every flag falls back to an
// environment variable, its name in upper case with '_' for '-' (NATS_URL
// for --nats-url); a flag on the command line wins.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	c := &m.Config
	var redisAddrs, logLevel string
	fs.StringVar(&m.NATSURL, "nats-url", m.NATSURL, "NATS server URL(s), comma-separated")
	fs.StringVar(&redisAddrs, "redis-addrs", "", "Redis Cluster seed nodes, comma-separated host:port (required)")
	fs.StringVar(&c.Subject, "subject", subjects.Lookup, "NATS subject to serve")
	fs.StringVar(&c.QueueGroup, "queue-group", subjects.QueueGroup, "NATS queue group shared by the workers")
	fs.IntVar(&c.ConnsPerNode, "conns-per-node", 2, "data connections to each Redis master: the connection budget")
	fs.IntVar(&c.MaxBatch, "max-batch", 1024, "most commands in one pipeline")
	fs.StringVar(&c.KeyPrefix, "key-prefix", "", "prefix prepended to every entity; callers cannot read outside it")
	fs.IntVar(&c.Limits.MaxEntities, "max-entities", subjects.DefaultMaxItems, "most entities in one request (more: 413)")
	fs.IntVar(&c.Limits.MaxFeatures, "max-features", subjects.DefaultMaxItems, "most features in one request (more: 413)")
	fs.IntVar(&c.MaxPending, "max-pending", 10000, "most requests accepted and not yet answered (more: 503 at once)")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", subjects.DefaultTimeout, "deadline of a request without a Request-Timeout header")
	fs.DurationVar(&c.TopologyInterval, "topology-interval", 10e9, "how often the cluster slot map is refreshed when nothing asks sooner")
	fs.DurationVar(&m.StartupTimeout, "startup-timeout", m.StartupTimeout, "how long to retry NATS and Redis at start-up before exiting non-zero")
	fs.DurationVar(&m.ShutdownTimeout, "shutdown-timeout", m.ShutdownTimeout, "how long draining may take on SIGTERM/SIGINT")
	fs.StringVar(&c.Redis.ClientName, "redis-client-name", "features-worker", "name of the worker's connections in Redis CLIENT LIST")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&m.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics (empty: off)")
	fs.StringVar(&m.PprofAddr, "pprof-addr", "", "serve Go profiles at http://ADDR/debug/pprof/ (empty: off)")
	fs.Var(strategyFlag{&m.Strategy}, "strategy", strategyUsage)
	var a authFlags
	fs.StringVar(&a.natsUser, "nats-user", "", "NATS user name")
	fs.StringVar(&a.natsPassword, "nats-password", "", "NATS password (prefer the environment)")
	fs.StringVar(&a.natsToken, "nats-token", "", "NATS token (prefer the environment)")
	fs.StringVar(&a.natsNKey, "nats-nkey", "", "file holding a NATS NKey seed")
	fs.StringVar(&a.natsCreds, "nats-creds", "", "NATS credentials file (JWT and NKey seed)")
	fs.StringVar(&a.natsCA, "nats-tls-ca", "", "CA certificate (PEM) that signed the NATS server's certificate")
	fs.StringVar(&a.natsCert, "nats-tls-cert", "", "client certificate (PEM) for NATS mutual TLS")
	fs.StringVar(&a.natsKey, "nats-tls-key", "", "client key (PEM) for NATS mutual TLS")
	fs.StringVar(&a.redisUser, "redis-username", "", "Redis ACL user (empty: the default user)")
	fs.StringVar(&a.redisPassword, "redis-password", "", "Redis password (prefer the environment)")
	fs.BoolVar(&a.redisTLS, "redis-tls", false, "connect to Redis with TLS (implied by the other --redis-tls-* flags)")
	fs.StringVar(&a.redisCA, "redis-tls-ca", "", "CA certificate (PEM) that signed the Redis servers' certificates")
	fs.StringVar(&a.redisCert, "redis-tls-cert", "", "client certificate (PEM) for Redis mutual TLS")
	fs.StringVar(&a.redisKey, "redis-tls-key", "", "client key (PEM) for Redis mutual TLS")
	fs.StringVar(&a.redisServerName, "redis-tls-server-name", "", "name to verify in the Redis certificates (empty: the host dialed)")
	envflag.Document(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: worker [flags]\n       worker healthcheck URL   (exit 0 if URL, e.g. http://127.0.0.1:9464/healthz, answers 200)\n\nAnswers %s requests on NATS from a Redis Cluster.\n\nFlags:\n", subjects.Lookup)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := envflag.Apply(fs, getenv); err != nil {
		return err
	}
	c.RedisAddrs = envflag.List(redisAddrs)
	natsOpts, err := a.natsOptions()
	if err != nil {
		return err
	}
	m.NATSOptions = append(m.NATSOptions, natsOpts...)
	if c.Redis.TLS, err = a.redisTLSConfig(); err != nil {
		return err
	}
	c.Redis.Username, c.Redis.Password = a.redisUser, a.redisPassword
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	m.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return m.Config.Validate()
}
