package subjects

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeFast checks decodeFast against json.Unmarshal, which
// DecodeRequest used alone before: whatever decodeFast accepts, json.Unmarshal
// must accept too and decode to the same value. What it declines goes to
// json.Unmarshal anyway, so DecodeRequest's behaviour is unchanged.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range []string{
		`{"entities":["e:1"],"features":["f0","f1","f2","f3"]}`,
		` { "features" : [ "a" , "b" ] , "entities" : [ "é€😀" ] } `,
		"{\n\t\"entities\":[\"a\"]\r}",
		`{"entities":[],"features":["a"]}`,
		`{"entities":["a"]}`,
		`{}`, `[]`, `""`, `null`, ``, `{`, `{"entities":["a"]`, `{"entities":["a"],}`,
		`{"entities":["a"]}{}`, `{"entities":["a"]} x`, `{"entities":["a"],"entities":["b"]}`,
		`{"Entities":["a"]}`, `{"entities":["a\"b"]}`, `{"entities":["a\u0041"]}`, "{\"entities\":[\"a\tb\"]}",
		`{"entities":[null]}`, `{"entities":null}`, `{"entities":"a"}`, `{"entities":[1]}`, `{"other":1}`,
		`{"entities":["a" "b"]}`, `{"entities":["a",]}`, `{"entities" ["a"]}`, "\ufeff{}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return // DecodeRequest rejects it before decoding
		}
		got, ok := decodeFast(data)
		if !ok {
			return
		}
		var want LookupRequest
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("decodeFast accepted %q, which json.Unmarshal rejects: %v", data, err)
		}
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("decodeFast(%q) = %#v, json.Unmarshal gives %#v", data, *got, want)
		}
	})
}

// TestDecodeFastTakesPlainBodies: the bodies callers send (subjects.Client
// marshals them with encoding/json) take the fast path, or it is dead code.
func TestDecodeFastTakesPlainBodies(t *testing.T) {
	for _, req := range []LookupRequest{
		{Entities: []string{"e:1"}, Features: []string{"f0", "f1", "f2", "f3"}},
		{Entities: make([]string, 100), Features: []string{"ü", "😀", "a.b:c"}},
	} {
		for i := range req.Entities {
			if req.Entities[i] == "" {
				req.Entities[i] = "user:" + string(rune('a'+i%26))
			}
		}
		body, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeFast(body)
		if !ok || !reflect.DeepEqual(*got, req) {
			t.Errorf("decodeFast(%s) = %v, %v; want the request on the fast path", body, got, ok)
		}
	}
}
