package subjects

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultTimeout is how long Client.Lookup waits when its context has no
// deadline and Client.Timeout is zero.
const DefaultTimeout = time.Second

// Client calls the lookup service over a NATS connection. Its zero value is
// not usable; set Conn. A Client is safe for concurrent use.
type Client struct {
	// Conn is the NATS connection requests go through.
	Conn *nats.Conn
	// Subject is where requests are sent. Empty means Lookup.
	Subject string
	// Timeout bounds a call whose context has no deadline. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Inject, if set, adds the caller's trace context to the request headers.
	Inject func(ctx context.Context, h nats.Header)
}

// Lookup asks a worker for features of entities and returns one row per
// entity and one cell per feature, nil where the value does not exist.
//
// The context's deadline (or c.Timeout) is sent as the request's timeout, so
// the worker gives up when the caller does. Error replies are returned as
// *Error; a context that ends first gives an error that matches both
// ctx.Err() and ErrTimeout; no worker listening matches ErrUnavailable and
// nats.ErrNoResponders.
func (c *Client) Lookup(ctx context.Context, entities, features []string) ([][]*string, error) {
	body, err := json.Marshal(LookupRequest{Entities: entities, Features: features})
	if err != nil {
		return nil, err
	}
	msg, err := c.Request(ctx, body)
	if err != nil {
		return nil, err
	}
	return DecodeReply(msg)
}

// Request sends a raw request body and returns the raw reply, with the same
// deadline and error handling as Lookup except that error replies are not
// decoded. It is for callers that build bodies themselves, such as tests.
func (c *Client) Request(ctx context.Context, body []byte) (*nats.Msg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, orDefaultDuration(c.Timeout, DefaultTimeout))
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	subject := c.Subject
	if subject == "" {
		subject = Lookup
	}
	msg := nats.NewMsg(subject)
	msg.Data = body
	msg.Header.Set(HeaderRequestTimeout, time.Until(deadline).Round(time.Millisecond).String())
	if c.Inject != nil {
		c.Inject(ctx, msg.Header)
	}
	reply, err := c.Conn.RequestMsgWithContext(ctx, msg)
	switch {
	case err == nil:
		return reply, nil
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("%w: no worker serves %s: %w", ErrUnavailable, subject, err)
	case ctx.Err() != nil:
		return nil, fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	default:
		return nil, err
	}
}

// DecodeReply turns a reply message into values, or into the *Error it
// carries.
func DecodeReply(msg *nats.Msg) ([][]*string, error) {
	if err := ReplyError(msg); err != nil {
		return nil, err
	}
	var reply LookupReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return nil, fmt.Errorf("decoding lookup reply: %w", err)
	}
	return reply.Values, nil
}

// ReplyError returns the *Error an error reply carries, or nil for a
// successful reply.
func ReplyError(msg *nats.Msg) error {
	code := msg.Header.Get(HeaderErrorCode)
	if code == "" {
		return nil
	}
	n, err := strconv.Atoi(code)
	if err != nil {
		return fmt.Errorf("error reply with a malformed code %q: %s", code, msg.Header.Get(HeaderError))
	}
	return &Error{Code: n, Message: msg.Header.Get(HeaderError)}
}

func orDefaultDuration(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}
