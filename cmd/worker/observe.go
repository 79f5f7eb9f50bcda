package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/featurestore/featureworker/tracing"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// startObservability sets up tracing from the OTEL_* environment, the
// Prometheus /metrics endpoint at MetricsAddr and pprof at PprofAddr (each
// only if set). Everything it starts is stopped by the returned function.
func (m *Main) startObservability(ctx context.Context) (stop func(context.Context) error, err error) {
	var stops []func(context.Context) error
	stop = func(ctx context.Context) error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i](ctx))
		}
		return errors.Join(errs...)
	}
	shutdownTracing, err := tracing.Setup(ctx, "features-worker")
	if err != nil {
		return stop, err
	}
	stops = append(stops, shutdownTracing)

	if m.MetricsAddr != "" {
		// A registry of its own, so that several Mains in one test process
		// do not collide in the global one.
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
		if err != nil {
			return stop, fmt.Errorf("metrics exporter: %w", err)
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
		stops = append(stops, mp.Shutdown)
		m.Config.MeterProvider = mp
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", m.serveHealth)
		srv, err := m.serve(m.MetricsAddr, mux)
		if err != nil {
			return stop, fmt.Errorf("--metrics-addr: %w", err)
		}
		m.metricsURL = "http://" + srv.Addr + "/metrics"
		stops = append(stops, srv.Shutdown)
	}
	if m.PprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		srv, err := m.serve(m.PprofAddr, mux)
		if err != nil {
			return stop, fmt.Errorf("--pprof-addr: %w", err)
		}
		stops = append(stops, srv.Shutdown)
	}
	return stop, nil
}

// serve listens on addr and serves h until the returned server shuts
// down; srv.Addr is the address actually bound (addr may end in ":0").
func (m *Main) serve(addr string, h http.Handler) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("http server stopped", "addr", srv.Addr, "err", err)
		}
	}()
	return srv, nil
}

// serveHealth answers 200 "ok" while the worker can serve, and 503 with the
// reason while it starts, drains, or has lost NATS or a Redis master.
func (m *Main) serveHealth(w http.ResponseWriter, _ *http.Request) {
	err := errors.New("starting")
	if h := m.health.Load(); h != nil {
		err = (*h)()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// healthcheck is `worker healthcheck URL`: it exits 0 if URL answers 200
// within 2s. It lets a container without a shell check the worker's
// /healthz.
func healthcheck(url string) int {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "healthcheck: %s: %s", resp.Status, body)
		return 1
	}
	return 0
}
