package baseline

import (
	"context"
	"fmt"
	"time"

	"github.com/featurestore/featureworker/worker"
	"github.com/redis/go-redis/v9"
)

// clusterOptions returns the go-redis options both Redis baselines start
// from: cfg's seeds, credentials, TLS and dial timeout, and its client name,
// so that CLIENT LIST sampling (loadgen, redisconns) counts the baselines'
// connections as the worker's. Everything else is go-redis's default.
func clusterOptions(cfg worker.Config) *redis.ClusterOptions {
	return &redis.ClusterOptions{
		Addrs:       cfg.RedisAddrs,
		Username:    cfg.Redis.Username,
		Password:    cfg.Redis.Password,
		TLSConfig:   cfg.Redis.TLS,
		DialTimeout: cfg.Redis.DialTimeout,
		ClientName:  cfg.Redis.ClientName,
	}
}

// connect waits until every master answers PING through rdb, retrying
// until ctx ends, so that the first requests do not pay for discovery.
func connect(ctx context.Context, rdb *redis.ClusterClient) error {
	for {
		err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connecting to the Redis Cluster: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// open builds a cluster client from opt and connects it.
func open(ctx context.Context, opt *redis.ClusterOptions) (*redis.ClusterClient, error) {
	rdb := redis.NewClusterClient(opt)
	if err := connect(ctx, rdb); err != nil {
		rdb.Close()
		return nil, err
	}
	return rdb, nil
}

// cell converts one value of a go-redis reply: a string, or nil when Redis
// has none.
func cell(v any) *string {
	if s, ok := v.(string); ok {
		return &s
	}
	return nil
}
