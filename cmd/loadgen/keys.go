package main

import (
	"fmt"
	"math/rand/v2"
)

// missingShare is the share of entity draws that name an entity the set
// does not hold, so that every run also checks that the worker answers
// missing hashes with nulls rather than errors or stale values.
const missingShare = 0.05

// Key distributions of --keys.
const (
	keysUniform = "uniform"
	keysZipf    = "zipf"
)

// picker draws the entity and feature ids of one request. Ids are distinct
// within a request because the worker rejects duplicates with a 400. It is
// not safe for concurrent use: every sender owns one, so the hot loop takes
// no lock and allocates nothing.
type picker struct {
	rng      *rand.Rand
	zipf     *rand.Zipf // nil for uniform keys
	entities int        // ids [0, entities) exist
	missing  int        // ids [entities, entities+missing) do not
	perm     []int      // feature ids, partially shuffled by every pick
	seen     map[int]struct{}
}

// newPicker returns a picker over set-sized id spaces. zipfS > 1 selects a
// Zipf distribution over the existing entities (id 0 the most popular);
// zero selects uniform.
func newPicker(seed uint64, entities, features int, zipfS float64) *picker {
	p := &picker{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		entities: entities,
		missing:  missingRange(entities),
		perm:     make([]int, features),
	}
	for j := range p.perm {
		p.perm[j] = j
	}
	if zipfS > 0 {
		p.zipf = rand.NewZipf(p.rng, zipfS, 1, uint64(entities-1))
	}
	return p
}

// missingRange is how many ids past the set are drawn as missing entities:
// enough that they repeat about as rarely as existing ones.
func missingRange(entities int) int { return max(entities/20, 16) }

// validatePick reports whether requests of reqEntities × reqFeatures can be
// drawn from a set of entities × features.
func validatePick(entities, features, reqEntities, reqFeatures int) error {
	switch {
	case entities < 1 || features < 1:
		return fmt.Errorf("--entities and --features must be at least 1")
	case reqEntities < 1 || reqEntities > entities:
		return fmt.Errorf("--req-entities must be between 1 and --entities (%d): requests hold distinct entities", entities)
	case reqFeatures < 1 || reqFeatures > features:
		return fmt.Errorf("--req-features must be between 1 and --features (%d): requests hold distinct features", features)
	}
	return nil
}

// pick fills ids with distinct entity ids and fs with distinct feature ids.
func (p *picker) pick(ids, fs []int) {
	// Distinct entities by rejection: requests are small next to the id
	// space, so a redraw is rare. Long requests use a map rather than an
	// O(n²) scan.
	useMap := len(ids) > 32
	if useMap {
		if p.seen == nil {
			p.seen = make(map[int]struct{}, len(ids))
		}
		clear(p.seen)
	}
	for k := range ids {
		for {
			id := p.entity()
			if !p.has(ids[:k], id, useMap) {
				ids[k] = id
				break
			}
		}
	}
	// Distinct features by a partial Fisher–Yates shuffle: any starting
	// order gives a uniform sample, so perm carries over between picks.
	for k := range fs {
		r := k + p.rng.IntN(len(p.perm)-k)
		p.perm[k], p.perm[r] = p.perm[r], p.perm[k]
		fs[k] = p.perm[k]
	}
}

// has reports whether id is among prev; with useMap it looks in (and adds
// to) p.seen instead of scanning prev.
func (p *picker) has(prev []int, id int, useMap bool) bool {
	if useMap {
		if _, ok := p.seen[id]; ok {
			return true
		}
		p.seen[id] = struct{}{}
		return false
	}
	for _, q := range prev {
		if q == id {
			return true
		}
	}
	return false
}

func (p *picker) entity() int {
	switch {
	case p.rng.Float64() < missingShare:
		return p.entities + p.rng.IntN(p.missing)
	case p.zipf != nil:
		return int(p.zipf.Uint64())
	default:
		return p.rng.IntN(p.entities)
	}
}

// nameTable maps every id a picker can draw to its name once, so that
// building a request allocates no strings.
func nameTable(name func(int) string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = name(i)
	}
	return out
}
