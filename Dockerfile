# syntax=docker/dockerfile:1
# The worker and the load generator, as static binaries in an otherwise empty
# image. The worker is the entrypoint; run the load generator with
#   docker run --entrypoint /loadgen IMAGE run --help

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/worker ./cmd/loadgen

FROM scratch
# For TLS to NATS and Redis (--nats-tls-ca and --redis-tls-ca add private CAs).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/worker /worker
COPY --from=build /out/loadgen /loadgen
# Not root: the usual "nonroot" uid and gid of minimal images.
USER 65532:65532
# Prometheus /metrics when METRICS_ADDR=:9464.
EXPOSE 9464
ENTRYPOINT ["/worker"]
