package worker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/featurestore/featureworker/subjects"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ErrInvalidConfig wraps every error Config.Validate returns.
var ErrInvalidConfig = errors.New("invalid worker config")

// Config configures a Worker. Only RedisAddrs is required; every other zero
// field means the default its comment gives.
type Config struct {
	// Subject is the NATS subject served. Empty means subjects.Lookup.
	Subject string
	// QueueGroup spreads requests over the workers that share it. Empty
	// means subjects.QueueGroup.
	QueueGroup string

	// RedisAddrs are seed nodes of the Redis Cluster ("host:port"); the rest
	// of the cluster is discovered from them.
	RedisAddrs []string
	// Redis says how to dial and authenticate Redis connections. Its
	// ClientName, when empty, is DefaultClientName.
	Redis RedisOptions
	// ConnsPerNode is the fixed number of data connections to each master:
	// the connection budget. Zero means 2.
	ConnsPerNode int
	// MaxBatch is the most commands one pipeline carries. Zero means 1024.
	MaxBatch int
	// TopologyInterval is how often the slot map is refreshed when nothing
	// asks for it sooner. Zero means 10s.
	TopologyInterval time.Duration

	// KeyPrefix is prepended to every entity, so callers stay inside it.
	KeyPrefix string
	// Limits bounds the size of one request; zero fields mean their defaults.
	Limits subjects.Limits
	// MaxPending is the most requests accepted and not yet replied to. A
	// request beyond it gets a 503 at once. Zero means 10000.
	MaxPending int
	// RequestTimeout is the deadline of a request without a Request-Timeout
	// header. Zero means 1s.
	RequestTimeout time.Duration

	// PendingMsgsLimit and PendingBytesLimit bound messages received from
	// NATS and not yet handled; NATS drops what is beyond them (a slow
	// consumer, and the caller times out). Zero means 4×MaxPending but at
	// least 65536 messages, and 64 MiB: room for bursts far above
	// MaxPending, since the handler answers the excess with a fast 503
	// instead of letting NATS drop it silently. The bytes bound is what
	// keeps memory bounded.
	PendingMsgsLimit  int
	PendingBytesLimit int

	// Logger receives the worker's logs. Nil means slog.Default().
	Logger *slog.Logger
	// TracerProvider and MeterProvider receive the worker's spans and
	// metrics. Nil means the global providers of go.opentelemetry.io/otel,
	// which are no-ops until a program installs real ones.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

// RedisOptions says how to reach Redis. The zero value is plain TCP without
// authentication.
type RedisOptions struct {
	// Username and Password are sent with AUTH; an empty Password skips it.
	Username, Password string
	// TLS, if not nil, enables TLS with this configuration.
	TLS *tls.Config
	// ClientName names the worker's connections in CLIENT LIST. Data
	// connections get this name and the topology connection this name with
	// "-topology" appended. Empty means DefaultClientName.
	ClientName string
	// DialTimeout bounds one dial and handshake. Zero means 2s.
	DialTimeout time.Duration
}

// DefaultClientName is the default RedisOptions.ClientName.
const DefaultClientName = "features-worker"

// WithDefaults returns c with every zero field set to the default its
// comment gives. Start and NewPool apply it themselves.
func (c Config) WithDefaults() Config {
	setDefault(&c.Subject, subjects.Lookup)
	setDefault(&c.QueueGroup, subjects.QueueGroup)
	setDefault(&c.Redis.ClientName, DefaultClientName)
	setDefault(&c.Redis.DialTimeout, 2*time.Second)
	setDefault(&c.ConnsPerNode, 2)
	setDefault(&c.MaxBatch, 1024)
	setDefault(&c.TopologyInterval, 10*time.Second)
	setDefault(&c.MaxPending, 10000)
	setDefault(&c.RequestTimeout, time.Second)
	setDefault(&c.PendingMsgsLimit, max(4*c.MaxPending, 65536))
	setDefault(&c.PendingBytesLimit, 64<<20)
	setDefault(&c.Limits.MaxEntities, subjects.DefaultMaxItems)
	setDefault(&c.Limits.MaxFeatures, subjects.DefaultMaxItems)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate reports the first problem with c, wrapped around ErrInvalidConfig.
func (c Config) Validate() error {
	var problem string
	switch {
	case len(c.RedisAddrs) == 0:
		problem = "RedisAddrs: at least one seed node is required"
	case c.ConnsPerNode < 0:
		problem = "ConnsPerNode must not be negative"
	case c.MaxBatch < 0:
		problem = "MaxBatch must not be negative"
	case c.MaxPending < 0:
		problem = "MaxPending must not be negative"
	case c.RequestTimeout < 0, c.TopologyInterval < 0, c.Redis.DialTimeout < 0:
		problem = "durations must not be negative"
	case c.Limits.MaxEntities < 0, c.Limits.MaxFeatures < 0:
		problem = "Limits must not be negative"
	}
	for _, addr := range c.RedisAddrs {
		if addr == "" {
			problem = "RedisAddrs: empty address"
		}
	}
	if problem != "" {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, problem)
	}
	return nil
}
