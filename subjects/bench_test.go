package subjects_test

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/subjects"
)

// BenchmarkDecodeRequest decodes and validates request bodies of the
// benchmark's shapes, as the worker does for every message.
func BenchmarkDecodeRequest(b *testing.B) {
	for _, shape := range []struct{ entities, features int }{{1, 4}, {10, 4}} {
		ids := make([]int, shape.entities)
		for i := range ids {
			ids[i] = 12345 + 1000*i
		}
		fs := make([]int, shape.features)
		for j := range fs {
			fs[j] = j
		}
		body, err := json.Marshal(subjects.LookupRequest{
			Entities: featureset.Names(featureset.Entity, ids),
			Features: featureset.Names(featureset.Feature, fs),
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strconv.Itoa(shape.entities)+"x"+strconv.Itoa(shape.features), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				req, err := subjects.DecodeRequest(body, subjects.Limits{})
				if err != nil || len(req.Entities) != shape.entities {
					b.Fatalf("DecodeRequest: %v, %v", req, err)
				}
			}
		})
	}
}
