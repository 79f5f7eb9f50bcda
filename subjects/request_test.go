package subjects_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featureworker/subjects"
	"github.com/nats-io/nats.go"
)

// list returns a JSON array of n distinct names "x0".."x<n-1>".
func list(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = strconv.Quote("x" + strconv.Itoa(i))
	}
	return "[" + strings.Join(s, ",") + "]"
}

// TestDecodeRequest pins the decisions DecodeRequest makes on edge cases;
// the worker's bad input test checks the same codes end to end.
func TestDecodeRequest(t *testing.T) {
	long := strings.Repeat("x", subjects.MaxNameLen)
	lim := subjects.Limits{MaxEntities: 40, MaxFeatures: 3}
	for _, tc := range []struct {
		name, body string
		code       int    // 0: accepted
		msg        string // in the error message
		entities   []string
	}{
		{"valid", `{"entities":["e:1","e:2"],"features":["f0"]}`, 0, "", []string{"e:1", "e:2"}},
		{"unknown fields are ignored", `{"entities":["e:1"],"features":["f0"],"v":2,"opts":{"x":[1]}}`, 0, "", []string{"e:1"}},
		{"keys match case-insensitively", `{"Entities":["e:1"],"FEATURES":["f0"]}`, 0, "", []string{"e:1"}},
		{"the last of repeated keys wins", `{"entities":["a"],"entities":["b"],"features":["f0"]}`, 0, "", []string{"b"}},
		{"escapes are decoded", `{"entities":["e\u003a1","\u00e9t\u00e9"],"features":["f0"]}`, 0, "", []string{"e:1", "été"}},
		{"name of MaxNameLen bytes", `{"entities":["` + long + `"],"features":["f0"]}`, 0, "", []string{long}},
		{"trailing data", `{"entities":["e:1"],"features":["f0"]} {}`, 400, "invalid JSON", nil},
		{"top-level array", `[["e:1"],["f0"]]`, 400, "invalid JSON", nil},
		{"null body", `null`, 400, "entities: missing or empty list", nil},
		{"empty body", ``, 400, "invalid JSON", nil},
		{"name over MaxNameLen", `{"entities":["` + long + `x"],"features":["f0"]}`, 413, "entities[0]: 1025 bytes long, the limit is 1024", nil},
		{"too many features", `{"entities":["e:1"],"features":` + list(4) + `}`, 413, "features: 4 names, the limit is 3", nil},
		{"duplicate in a long list", `{"entities":` + strings.Replace(list(40), `"x39"`, `"x3"`, 1) + `,"features":["f0"]}`, 400, "entities[39] repeats entities[3]", nil},
		{"duplicate feature", `{"entities":["e:1"],"features":["f0","f1","f0"]}`, 400, "features[2] repeats features[0]", nil},
		{"escaped NUL", `{"entities":["e\u0000"],"features":["f0"]}`, 400, "entities[0]: control character", nil},
		{"DEL", "{\"entities\":[\"e\x7f\"],\"features\":[\"f0\"]}", 400, "entities[0]: control character", nil},
		{"C1 control", `{"entities":["e\u0085x"],"features":["f0"]}`, 400, "entities[0]: control character", nil},
		{"no-break space", `{"entities":["e:1"],"features":["f\u00a00"]}`, 400, "features[0]: space", nil},
		{"line separator", `{"entities":["e\u2028"],"features":["f0"]}`, 400, "entities[0]: space", nil},
		{"tab", `{"entities":["e\t1"],"features":["f0"]}`, 400, "entities[0]: control character", nil},
		{"brace in a feature is allowed", `{"entities":["e:1"],"features":["{f}"]}`, 0, "", []string{"e:1"}},
		{"lone surrogate becomes U+FFFD", `{"entities":["\ud800"],"features":["f0"]}`, 0, "", []string{"\ufffd"}},
	} {
		req, err := subjects.DecodeRequest([]byte(tc.body), lim)
		if tc.code == 0 {
			if err != nil || !slices.Equal(req.Entities, tc.entities) {
				t.Errorf("%s: got %v, %v; want entities %q", tc.name, req, err, tc.entities)
			}
			continue
		}
		se, ok := err.(*subjects.Error)
		if !ok || se.Code != tc.code || !strings.Contains(se.Message, tc.msg) {
			t.Errorf("%s: got %v, want %d %q", tc.name, err, tc.code, tc.msg)
		}
	}
}

func TestRequestTimeout(t *testing.T) {
	const def = time.Second
	for _, tc := range []struct {
		header string
		want   time.Duration // 0: a 400
	}{
		{"", def},
		{"50ms", 50 * time.Millisecond},
		{"1h2m", time.Hour + 2*time.Minute},
		{"1ns", time.Nanosecond},
		{"0", 0},
		{"0s", 0},
		{"-5ms", 0},
		{"50", 0}, // a duration needs a unit
		{"soon", 0},
		{" 50ms", 0},
		{"9999999999h", 0}, // overflows
	} {
		h := nats.Header{}
		if tc.header != "" {
			h.Set(subjects.HeaderRequestTimeout, tc.header)
		}
		d, err := subjects.RequestTimeout(h, def)
		if tc.want != 0 {
			if err != nil || d != tc.want {
				t.Errorf("%q: %v, %v; want %v", tc.header, d, err, tc.want)
			}
			continue
		}
		se, ok := err.(*subjects.Error)
		if !ok || se.Code != subjects.CodeBadRequest || !strings.Contains(se.Message, subjects.HeaderRequestTimeout) {
			t.Errorf("%q: %v, %v; want a 400 naming the header", tc.header, d, err)
		}
	}
}
