// Command worker answers feature lookups on NATS from a Redis Cluster. See
// the README for the wire contract and every flag.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck(os.Args[2]))
	}
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:], os.Getenv); err != nil {
		if err == errHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		m.Logger.Error("worker cannot start", "err", err)
		os.Exit(1)
	}
	<-ctx.Done()
	stop() // a second signal kills the process the default way
	m.Logger.Info("signal received, draining")
	if err := m.Close(); err != nil {
		m.Logger.Error("unclean shutdown", "err", err)
		os.Exit(1)
	}
}
