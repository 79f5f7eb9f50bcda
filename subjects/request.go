package subjects

import (
	"encoding/json"
	"strings"
	"time"
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
	var req LookupRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, Errorf(CodeBadRequest, "invalid JSON request: %v", err)
	}
	if err := checkNames("entities", req.Entities, lim.maxEntities(), "{}"); err != nil {
		return nil, err
	}
	if err := checkNames("features", req.Features, lim.maxFeatures(), ""); err != nil {
		return nil, err
	}
	return &req, nil
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

// checkName returns why name is invalid, or "".
func checkName(name, forbidden string) string {
	if name == "" {
		return "empty or null name"
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
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
