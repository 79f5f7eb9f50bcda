# The two commands of the README: `make demo` and `make test`.
GO ?= go
BIN := bin

.PHONY: demo test deps build vet

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

# Every test, with the race detector, against real redis-server and NATS.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...
