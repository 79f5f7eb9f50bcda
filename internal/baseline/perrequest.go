package baseline

import (
	"context"

	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/worker"
	"github.com/redis/go-redis/v9"
)

// perRequest sends each request as one go-redis pipeline, an HMGET per
// entity (go-redis splits it per master and follows MOVED and ASK), over
// the worker's connection budget: what a careful go-redis user writes
// without batching across requests.
type perRequest struct {
	rdb    *redis.ClusterClient
	prefix string
}

func openPerRequest(ctx context.Context, cfg worker.Config) (Strategy, error) {
	opt := clusterOptions(cfg)
	// Exactly ConnsPerNode connections per master, like the worker's data
	// connections. go-redis v9.23 also keeps a separate pipeline pool per
	// node (PipelinePoolSize, 10 by default) that adds to MaxActiveConns;
	// a negative size disables it, so pipelines share the capped main pool.
	opt.PoolSize = cfg.ConnsPerNode
	opt.MaxActiveConns = cfg.ConnsPerNode
	opt.PipelinePoolSize = -1
	// A request waits for a connection, and for Redis, no longer than its
	// deadline.
	opt.ContextTimeoutEnabled = true
	rdb, err := open(ctx, opt)
	if err != nil {
		return nil, err
	}
	return &perRequest{rdb: rdb, prefix: cfg.KeyPrefix}, nil
}

func (s *perRequest) Lookup(ctx context.Context, req *subjects.LookupRequest) ([][]*string, error) {
	cmds := make([]*redis.SliceCmd, len(req.Entities))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range req.Entities {
			cmds[i] = p.HMGet(ctx, s.prefix+e, req.Features...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rows := make([][]*string, len(cmds))
	for i, c := range cmds {
		vals := c.Val()
		rows[i] = make([]*string, len(vals))
		for j, v := range vals {
			rows[i][j] = cell(v)
		}
	}
	return rows, nil
}

func (s *perRequest) Close() error { return s.rdb.Close() }
