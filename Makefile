# The two commands of the README: `make demo` and `make test`.
GO ?= go
BIN := bin

.PHONY: demo test bench bench-go deps build vet

deps:
	./scripts/install-deps.sh

build:
	mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/worker ./cmd/loadgen
	$(GO) build -o $(BIN)/nats-server github.com/nats-io/nats-server/v2

# A local 3-master Redis Cluster, NATS, one worker and the load generator,
# with a printed report; everything started is stopped at the end.
demo: deps build
	./scripts/demo.sh

# Every test, with the race detector, against real redis-server and NATS,
# then a short run of the request decoder's fuzz test.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 25m ./...
	$(GO) test -run '^$$' -fuzz FuzzDecodeRequest -fuzztime 10s -fuzzminimizetime 2s ./subjects

# The batched worker beside its baselines (echo, naive, per-request): a
# markdown table and every JSON report in out/bench/ (about 3 minutes).
bench:
	./scripts/bench.sh

# The hot path's Go benchmarks, with allocations.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./subjects ./worker

vet:
	$(GO) vet ./...
