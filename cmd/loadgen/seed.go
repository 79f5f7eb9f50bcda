package main

import (
	"context"
	"errors"
	"time"

	"github.com/featurestore/featureworker/internal/featureset"
)

// SeedConfig configures Seed; the flags of `loadgen seed` fill it.
type SeedConfig struct {
	RedisAddrs []string // seed nodes of the cluster
	Set        featureset.Set
	KeyPrefix  string // the worker's --key-prefix
}

// Seed writes c.Set into the cluster and returns how long that took. It
// goes through a go-redis cluster client, whose pipelines are split per
// master, so the data lands where the worker will look for it.
func Seed(ctx context.Context, c SeedConfig) (time.Duration, error) {
	if len(c.RedisAddrs) == 0 {
		return 0, errors.New("--redis-addrs is required")
	}
	if c.Set.Entities < 1 || c.Set.Features < 1 || c.Set.ValueSize < 0 {
		return 0, errors.New("--entities and --features must be at least 1, --value-size not negative")
	}
	rdb := newClusterClient(c.RedisAddrs)
	defer rdb.Close()
	begin := time.Now()
	err := c.Set.Seed(ctx, rdb, c.KeyPrefix)
	return time.Since(begin), err
}
