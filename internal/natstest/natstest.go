// Package natstest runs a real, embedded NATS server for tests.
package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Start runs a NATS server on a random loopback port until the test ends.
// opts may be nil; its Host and Port are overridden.
func Start(tb testing.TB, opts *server.Options) *server.Server {
	tb.Helper()
	if opts == nil {
		opts = &server.Options{}
	}
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		tb.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		tb.Fatal("nats server not ready within 10s")
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a client connection to s that is closed when the test ends.
func Connect(tb testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL(), opts...)
	if err != nil {
		tb.Fatalf("connecting to nats: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// Gather publishes one request with an empty body on subject and returns
// every reply that arrives until wait passes without one: how the NATS
// service API ($SRV.PING, INFO, STATS) hears from every instance.
func Gather(tb testing.TB, nc *nats.Conn, subject string, wait time.Duration) []*nats.Msg {
	tb.Helper()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		tb.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject, inbox, nil); err != nil {
		tb.Fatal(err)
	}
	var out []*nats.Msg
	for {
		msg, err := sub.NextMsg(wait)
		if err != nil {
			return out
		}
		out = append(out, msg)
	}
}
