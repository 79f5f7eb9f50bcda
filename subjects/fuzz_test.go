package subjects_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/featurestore/featureworker/subjects"
	"github.com/nats-io/nats.go"
)

// fuzzLimits are the limits every input is decoded under: the defaults, and
// limits small enough for the fuzzer to cross them often.
var fuzzLimits = []subjects.Limits{{}, {MaxEntities: 3, MaxFeatures: 2}}

// FuzzDecodeRequest checks DecodeRequest and RequestTimeout on any body and
// Request-Timeout header: they never panic, every error is a 400 or 413
// *subjects.Error whose message can travel in a NATS header, and whatever
// is accepted satisfies the documented contract, reads as encoding/json
// reads it, and survives a round trip through encoding/json. The seed corpus is in testdata/fuzz.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"entities":["e:1","e:2"],"features":["f0"]}`), "50ms")
	f.Fuzz(func(t *testing.T, body []byte, timeout string) {
		checkTimeout(t, timeout)
		for _, lim := range fuzzLimits {
			checkDecode(t, body, lim)
		}
	})
}

func checkTimeout(t *testing.T, v string) {
	const def = 7 * time.Second
	h := nats.Header{}
	if v != "" {
		h.Set(subjects.HeaderRequestTimeout, v)
	}
	d, err := subjects.RequestTimeout(h, def)
	if err != nil {
		checkError(t, err, "timeout "+v)
		if code := err.(*subjects.Error).Code; code != subjects.CodeBadRequest {
			t.Fatalf("timeout %q: code %d, want 400", v, code)
		}
		return
	}
	want, perr := time.ParseDuration(v)
	switch {
	case v == "" && d != def:
		t.Fatalf("no header: %v, want the default %v", d, def)
	case v != "" && (perr != nil || want <= 0 || d != want):
		t.Fatalf("timeout %q accepted as %v; only a positive Go duration may be", v, d)
	}
}

func checkDecode(t *testing.T, body []byte, lim subjects.Limits) {
	req, err := subjects.DecodeRequest(body, lim)
	if err != nil {
		checkError(t, err, "body")
		if se := err.(*subjects.Error); strings.HasPrefix(se.Message, "invalid JSON") && json.Unmarshal(body, new(subjects.LookupRequest)) == nil {
			t.Fatalf("%q: %s, but encoding/json reads it", body, se.Message)
		}
		if se := err.(*subjects.Error); se.Code == subjects.CodeTooLarge && !overLimit(body, lim) {
			t.Fatalf("413 %q for a request within limits %+v: %q", se.Message, lim, body)
		}
		return
	}
	// DecodeRequest must read exactly what encoding/json reads, whichever
	// parser it uses inside.
	var plain subjects.LookupRequest
	if err := json.Unmarshal(body, &plain); err != nil {
		t.Fatalf("accepted %q, which encoding/json rejects: %v", body, err)
	}
	if !slices.Equal(req.Entities, plain.Entities) || !slices.Equal(req.Features, plain.Features) {
		t.Fatalf("%q decoded as %q %q; encoding/json reads %q %q", body, req.Entities, req.Features, plain.Entities, plain.Features)
	}
	if msg := violation(req, lim); msg != "" {
		t.Fatalf("accepted %q under %+v: %s", body, lim, msg)
	}
	again, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	req2, err := subjects.DecodeRequest(again, lim)
	if err != nil {
		t.Fatalf("re-encoded request %s rejected: %v", again, err)
	}
	if !slices.Equal(req.Entities, req2.Entities) || !slices.Equal(req.Features, req2.Features) {
		t.Fatalf("round trip changed the request: %q %q became %q %q", req.Entities, req.Features, req2.Entities, req2.Features)
	}
}

// checkError checks that err is a *subjects.Error of a client-side code
// whose message is non-empty and fits in a NATS header.
func checkError(t *testing.T, err error, what string) {
	t.Helper()
	se, ok := err.(*subjects.Error)
	if !ok {
		t.Fatalf("%s: error %T %v, want a *subjects.Error", what, err, err)
	}
	if se.Code != subjects.CodeBadRequest && se.Code != subjects.CodeTooLarge {
		t.Fatalf("%s: code %d, want 400 or 413", what, se.Code)
	}
	if strings.TrimSpace(se.Message) == "" || strings.ContainsAny(se.Message, "\r\n") {
		t.Fatalf("%s: message %q: want a non-empty single line", what, se.Message)
	}
	if !errors.Is(err, subjects.ErrBadRequest) && !errors.Is(err, subjects.ErrTooLarge) {
		t.Fatalf("%s: %v matches neither sentinel", what, err)
	}
}

// overLimit reports whether body, decoded as plain JSON, has a list or a
// name over a limit: the only reasons for a 413.
func overLimit(body []byte, lim subjects.Limits) bool {
	var r subjects.LookupRequest
	if json.Unmarshal(body, &r) != nil {
		return false
	}
	over := func(names []string, max int) bool {
		return len(names) > max || slices.ContainsFunc(names, func(s string) bool { return len(s) > subjects.MaxNameLen })
	}
	return over(r.Entities, orDefault(lim.MaxEntities)) || over(r.Features, orDefault(lim.MaxFeatures))
}

func orDefault(n int) int {
	if n > 0 {
		return n
	}
	return subjects.DefaultMaxItems
}

// violation returns which documented invariant of an accepted request req
// breaks, or "".
func violation(req *subjects.LookupRequest, lim subjects.Limits) string {
	if req == nil {
		return "nil request without an error"
	}
	if msg := listViolation(req.Entities, orDefault(lim.MaxEntities), "{}"); msg != "" {
		return "entities: " + msg
	}
	if msg := listViolation(req.Features, orDefault(lim.MaxFeatures), ""); msg != "" {
		return "features: " + msg
	}
	return ""
}

func listViolation(names []string, max int, forbidden string) string {
	if len(names) == 0 || len(names) > max {
		return "list length out of [1, limit]"
	}
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		switch {
		case name == "":
			return "empty name"
		case len(name) > subjects.MaxNameLen:
			return "name over MaxNameLen"
		case !utf8.ValidString(name):
			return "name is not valid UTF-8"
		case strings.ContainsAny(name, forbidden):
			return "forbidden character in " + name
		case strings.ContainsFunc(name, unicode.IsControl):
			return "control character in " + name
		case strings.ContainsFunc(name, unicode.IsSpace):
			return "space in " + name
		case seen[name]:
			return "duplicate " + name
		}
		seen[name] = true
	}
	return ""
}
