// Package subjects is the wire contract of the feature lookup service: the
// NATS subject and queue group, the request and reply bodies, the headers and
// the error codes. Workers and callers (see Client) both build on it, so a
// change here is a change of the protocol.
package subjects

// Subject and queue group the workers serve by default.
const (
	Lookup     = "features.lookup"
	QueueGroup = "features-workers"
)

// Headers of the contract.
const (
	// HeaderRequestTimeout optionally carries how long the caller will wait,
	// as a Go duration ("50ms"). Workers use their default when it is absent.
	HeaderRequestTimeout = "Request-Timeout"
	// HeaderErrorCode and HeaderError mark an error reply, as in the NATS
	// micro convention: the code as decimal text and a human message.
	HeaderErrorCode = "Nats-Service-Error-Code"
	HeaderError     = "Nats-Service-Error"
)

// Limits that hold whatever the worker's flags say.
const (
	// MaxNameLen is the longest entity or feature name, in bytes.
	MaxNameLen = 1024
)

// LookupRequest is the body of a request on the Lookup subject.
//
// Entities are Redis keys (the worker prepends its key prefix) and Features
// are hash fields; the worker reads them with HMGET <entity> <features...>.
type LookupRequest struct {
	Entities []string `json:"entities"`
	Features []string `json:"features"`
}

// LookupReply is the body of a successful reply: one row per entity in
// request order, one cell per feature in request order. A cell is nil when
// the hash or the field does not exist.
type LookupReply struct {
	Values [][]*string `json:"values"`
}

// ErrorReply is the body of an error reply. The same code and message are in
// the HeaderErrorCode and HeaderError headers.
type ErrorReply struct {
	Error *Error `json:"error"`
}
