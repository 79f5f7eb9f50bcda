package subjects

import (
	"encoding/json"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// Limits bounds what DecodeRequest accepts. A zero field means its default.
type Limits struct {
	// MaxEntities is the most entities in one request. Zero means 1000.
	MaxEntities int
	// MaxFeatures is the most features in one request. Zero means 1000.
	MaxFeatures int
}

// DefaultMaxItems is the default of both Limits fields.
const DefaultMaxItems = 1000

func (l Limits) maxEntities() int { return orDefault(l.MaxEntities, DefaultMaxItems) }
func (l Limits) maxFeatures() int { return orDefault(l.MaxFeatures, DefaultMaxItems) }

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// DecodeRequest parses and validates a request body. Its errors are *Error
// values with code CodeBadRequest or CodeTooLarge, ready to be sent back.
//
// A valid request has at least one entity and one feature, within lim; no
// duplicates in either list; and names that are non-empty, at most MaxNameLen
// bytes of UTF-8 without control characters or spaces. Entities may not hold
// the hash-tag braces '{' and '}': the worker, not its callers, decides where
// keys live in the cluster.
func DecodeRequest(data []byte, lim Limits) (*LookupRequest, error) {
	if !utf8.Valid(data) {
		return nil, Errorf(CodeBadRequest, "request body is not valid UTF-8")
	}
	req, ok := decodeFast(data)
	if !ok {
		req = new(LookupRequest)
		if err := json.Unmarshal(data, req); err != nil {
			return nil, Errorf(CodeBadRequest, "invalid JSON request: %v", err)
		}
	}
	if err := checkNames("entities", req.Entities, lim.maxEntities(), "{}"); err != nil {
		return nil, err
	}
	if err := checkNames("features", req.Features, lim.maxFeatures(), ""); err != nil {
		return nil, err
	}
	return req, nil
}

// decodeFast parses the form every well-behaved caller sends: one object
// whose keys are "entities" and "features" (each at most once, in either
// order), each an array of strings without escape sequences, with JSON
// whitespace anywhere between tokens. For anything else it returns false,
// and json.Unmarshal decodes the body or rejects it with its own error, so
// DecodeRequest behaves exactly as with json.Unmarshal alone: on what it
// accepts, decodeFast gives the same value json.Unmarshal would (data is
// valid UTF-8, so strings without escapes decode to their bytes). It exists
// because reflection made json.Unmarshal the largest cost of the worker's
// NATS handler, which runs on one goroutine per subscription.
//
// The names are substrings of one copy of data, and each list is counted
// before it is allocated: 4 allocations per request whatever its size.
func decodeFast(data []byte) (*LookupRequest, bool) {
	sc := scanner{s: string(data)}
	if !sc.token('{') || sc.token('}') {
		return nil, false
	}
	req := new(LookupRequest)
	for {
		var dst *[]string
		switch key, ok := sc.str(); {
		case !ok || !sc.token(':'):
			return nil, false
		case key == "entities" && req.Entities == nil:
			dst = &req.Entities
		case key == "features" && req.Features == nil:
			dst = &req.Features
		default: // another key, or a repeated one
			return nil, false
		}
		list, ok := sc.list()
		if !ok {
			return nil, false
		}
		*dst = list
		if sc.token('}') {
			break
		}
		if !sc.token(',') {
			return nil, false
		}
	}
	sc.space()
	return req, sc.i == len(sc.s)
}

// scanner reads the tokens of decodeFast's subset of JSON.
type scanner struct {
	s string
	i int
}

// space skips JSON whitespace.
func (sc *scanner) space() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// token skips whitespace and then c, if c is next.
func (sc *scanner) token(c byte) bool {
	sc.space()
	if sc.i < len(sc.s) && sc.s[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// str reads a string without escapes or control characters.
func (sc *scanner) str() (string, bool) {
	if !sc.token('"') {
		return "", false
	}
	for start := sc.i; sc.i < len(sc.s); sc.i++ {
		switch c := sc.s[sc.i]; {
		case c == '"':
			sc.i++
			return sc.s[start : sc.i-1], true
		case c == '\\' || c < 0x20:
			return "", false
		}
	}
	return "", false
}

// list reads an array of such strings. The result is never nil, as with
// json.Unmarshal: "[]" is an empty list.
func (sc *scanner) list() ([]string, bool) {
	if !sc.token('[') {
		return nil, false
	}
	if sc.token(']') {
		return []string{}, true
	}
	// A first pass checks and counts, so that the list is allocated once,
	// at its size, without a buffer on the stack.
	first := *sc
	n := 0
	for {
		if _, ok := sc.str(); !ok {
			return nil, false
		}
		n++
		if sc.token(']') {
			break
		}
		if !sc.token(',') {
			return nil, false
		}
	}
	out := make([]string, n)
	for k := range out {
		out[k], _ = first.str()
		first.token(',') // not after the last one
	}
	return out, true
}

func checkNames(field string, names []string, limit int, forbidden string) error {
	switch {
	case len(names) == 0:
		return Errorf(CodeBadRequest, "%s: missing or empty list", field)
	case len(names) > limit:
		return Errorf(CodeTooLarge, "%s: %d names, the limit is %d", field, len(names), limit)
	}
	for i, name := range names {
		if err := checkName(name, forbidden); err != "" {
			return Errorf(CodeBadRequest, "%s[%d]: %s", field, i, err)
		}
		if len(name) > MaxNameLen {
			return Errorf(CodeTooLarge, "%s[%d]: %d bytes long, the limit is %d", field, i, len(name), MaxNameLen)
		}
	}
	if i, j, dup := findDuplicate(names); dup {
		return Errorf(CodeBadRequest, "%s[%d] repeats %s[%d] (%q)", field, j, field, i, names[i])
	}
	return nil
}

// checkName returns why name is invalid, or "". Control characters and
// spaces are Unicode's, so C1 controls such as U+0085 and spaces such as
// U+00A0 and U+2028 are refused like their ASCII kin. forbidden holds ASCII
// characters only.
func checkName(name, forbidden string) string {
	if name == "" {
		return "empty or null name"
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(name[i:])
			if unicode.IsControl(r) {
				return "control character in name"
			}
			if unicode.IsSpace(r) {
				return "space in name"
			}
			i += size - 1
		case c < 0x20 || c == 0x7f:
			return "control character in name"
		case c == ' ':
			return "space in name"
		case strings.IndexByte(forbidden, c) >= 0:
			return "character " + string(c) + " is not allowed in this name"
		}
	}
	return ""
}

// findDuplicate returns the indexes of the first repeated name. Short lists
// are compared pairwise, which beats a map below a few dozen names.
func findDuplicate(names []string) (first, second int, found bool) {
	if len(names) <= 32 {
		for j := 1; j < len(names); j++ {
			for i := 0; i < j; i++ {
				if names[i] == names[j] {
					return i, j, true
				}
			}
		}
		return 0, 0, false
	}
	seen := make(map[string]int, len(names))
	for j, name := range names {
		if i, ok := seen[name]; ok {
			return i, j, true
		}
		seen[name] = j
	}
	return 0, 0, false
}

// RequestTimeout returns the timeout a request's headers ask for, or def when
// they ask for none. A header that is not a positive Go duration is a
// CodeBadRequest *Error.
func RequestTimeout(h nats.Header, def time.Duration) (time.Duration, error) {
	v := h.Get(HeaderRequestTimeout)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, Errorf(CodeBadRequest, "header %s: %q is not a positive duration such as 50ms", HeaderRequestTimeout, v)
	}
	return d, nil
}
