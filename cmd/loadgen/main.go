// Command loadgen seeds a synthetic feature set into a Redis Cluster and
// drives the feature lookup workers over NATS, in a closed loop (fixed
// concurrency) or an open loop (fixed rate, coordinated omission
// corrected). Its report gives throughput, HDR latency percentiles, errors
// by code, every value checked against the set, and the worker's Redis
// connections per node as CLIENT LIST shows them, so that a run proves the
// connection budget as well as measuring speed.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	l := &Loadgen{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, Terminal: isTerminal(os.Stderr)}
	code := l.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// isTerminal reports whether f is a terminal (a character device), where a
// progress line rewritten with \r is readable rather than noise in a log.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
