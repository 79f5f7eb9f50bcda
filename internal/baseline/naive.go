package baseline

import (
	"context"
	"errors"

	"github.com/featurestore/featureworker/subjects"
	"github.com/featurestore/featureworker/worker"
	"github.com/redis/go-redis/v9"
)

// naive sends one HGET per entity and feature, each its own round trip, on
// a go-redis cluster client with default options: a pool of 5×GOMAXPROCS
// connections per node, whatever the worker's budget says. It is the
// pattern the worker exists to prevent.
type naive struct {
	rdb    *redis.ClusterClient
	prefix string
}

func openNaive(ctx context.Context, cfg worker.Config) (Strategy, error) {
	rdb, err := open(ctx, clusterOptions(cfg))
	if err != nil {
		return nil, err
	}
	return &naive{rdb: rdb, prefix: cfg.KeyPrefix}, nil
}

func (s *naive) Lookup(ctx context.Context, req *subjects.LookupRequest) ([][]*string, error) {
	rows := make([][]*string, len(req.Entities))
	for i, e := range req.Entities {
		rows[i] = make([]*string, len(req.Features))
		for j, f := range req.Features {
			v, err := s.rdb.HGet(ctx, s.prefix+e, f).Result()
			switch {
			case errors.Is(err, redis.Nil):
			case err != nil:
				return nil, err
			default:
				rows[i][j] = &v
			}
		}
	}
	return rows, nil
}

func (s *naive) Close() error { return s.rdb.Close() }
