// Package featureset is a synthetic feature set whose every value can be
// recomputed, so that tests and the load generator check every reply
// without keeping a copy of what they wrote.
package featureset

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Set describes the data: entities Prefix+"e:0".. Prefix+"e:<Entities-1>",
// each a hash with fields "f0".."f<Features-1>". A field is absent wherever
// (entity+feature)%7 == 0, and entities from Entities on do not exist, so
// that every reply also checks missing values.
type Set struct {
	Entities, Features int
	// ValueSize pads each value to at least this many bytes. Zero means
	// values as short as they come ("v12-3").
	ValueSize int
}

// Entity is the name callers send for entity i (the worker adds its prefix).
func Entity(i int) string { return "e:" + strconv.Itoa(i) }

// Feature is the name of feature j.
func Feature(j int) string { return "f" + strconv.Itoa(j) }

// Names maps ids to names with Entity or Feature.
func Names(name func(int) string, ids []int) []string {
	out := make([]string, len(ids))
	for k, i := range ids {
		out[k] = name(i)
	}
	return out
}

// Value is the stored value of entity i, feature j, or nil if there is none.
func (s Set) Value(i, j int) *string {
	if i >= s.Entities || j >= s.Features || (i+j)%7 == 0 {
		return nil
	}
	v := "v" + strconv.Itoa(i) + "-" + strconv.Itoa(j)
	if pad := s.ValueSize - len(v); pad > 0 {
		v += "-" + strings.Repeat(string(rune('a'+(i+j)%26)), pad-1)
	}
	return &v
}

// Seed writes the set under prefix through rdb, in pipelines of a few
// hundred hashes.
func (s Set) Seed(ctx context.Context, rdb redis.Cmdable, prefix string) error {
	const chunk = 500
	for start := 0; start < s.Entities; start += chunk {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := start; i < min(start+chunk, s.Entities); i++ {
				fields := make([]any, 0, 2*s.Features)
				for j := range s.Features {
					if v := s.Value(i, j); v != nil {
						fields = append(fields, Feature(j), *v)
					}
				}
				if len(fields) > 0 {
					p.HSet(ctx, prefix+Entity(i), fields...)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("seeding entities from %d: %w", start, err)
		}
	}
	return nil
}

// Check compares a reply for entities ids and features fs with the set.
func (s Set) Check(ids, fs []int, got [][]*string) error {
	if len(got) != len(ids) {
		return fmt.Errorf("%d rows, want %d", len(got), len(ids))
	}
	for r, i := range ids {
		if len(got[r]) != len(fs) {
			return fmt.Errorf("row %d: %d cells, want %d", r, len(got[r]), len(fs))
		}
		for c, j := range fs {
			w, g := s.Value(i, j), got[r][c]
			if (w == nil) != (g == nil) || (w != nil && *w != *g) {
				return fmt.Errorf("entity %d feature %d: got %s, want %s", i, j, show(g), show(w))
			}
		}
	}
	return nil
}

func show(s *string) string {
	if s == nil {
		return "null"
	}
	return strconv.Quote(*s)
}
