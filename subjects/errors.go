package subjects

import (
	"errors"
	"fmt"
	"strconv"
)

// Error codes carried in error replies. They follow HTTP status codes so that
// callers in any language know what to do with them.
const (
	CodeBadRequest  = 400 // malformed or invalid request: do not retry
	CodeTooLarge    = 413 // over a worker limit: split the request
	CodeInternal    = 500 // a bug in the worker: report it
	CodeUnavailable = 503 // overloaded or Redis unavailable: retry with backoff
	CodeTimeout     = 504 // the request's deadline passed: retry if still useful
)

// Sentinels for errors.Is. An *Error matches the sentinel of its code.
var (
	ErrBadRequest  = &Error{Code: CodeBadRequest, Message: "bad request"}
	ErrTooLarge    = &Error{Code: CodeTooLarge, Message: "request too large"}
	ErrInternal    = &Error{Code: CodeInternal, Message: "internal error"}
	ErrUnavailable = &Error{Code: CodeUnavailable, Message: "unavailable"}
	ErrTimeout     = &Error{Code: CodeTimeout, Message: "deadline exceeded"}
)

// Error is an error reply: a code from the list above and a message.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	return strconv.Itoa(e.Code) + " " + e.Message
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, ErrTimeout) holds for every 504 whatever its message.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// Retryable reports whether a caller may retry the request unchanged.
func (e *Error) Retryable() bool {
	return e.Code == CodeUnavailable || e.Code == CodeTimeout
}
