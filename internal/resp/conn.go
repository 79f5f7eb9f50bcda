// Package resp is the small part of the Redis protocol (RESP2) the worker
// speaks: HMGET pipelines on data connections and a few control commands
// (AUTH, CLIENT SETNAME, ASKING, CLUSTER SLOTS). It exists so that the
// worker, not a client library's hidden pools, decides how many connections
// are open, and so that replies are parsed straight into reply bytes.
//
// A Conn is owned by one goroutine: none of its methods are safe for
// concurrent use.
package resp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"
)

// Options says how to dial and authenticate a connection. The zero value
// dials plain TCP without authentication.
type Options struct {
	// Username and Password authenticate with AUTH. An empty Password means
	// no AUTH; an empty Username with a Password is the legacy default user.
	Username, Password string
	// ClientName is set with CLIENT SETNAME so that CLIENT LIST shows whose
	// connection this is. Empty means no name.
	ClientName string
	// TLS, if not nil, wraps the connection in TLS with this configuration.
	TLS *tls.Config
	// DialTimeout bounds connecting and the handshake when the context has
	// no earlier deadline. Zero means 5s.
	DialTimeout time.Duration
}

// Conn is one RESP2 connection.
type Conn struct {
	nc  net.Conn
	w   *bufio.Writer
	r   *bufio.Reader
	num []byte // scratch for integer formatting
}

const bufSize = 64 << 10

// Dial connects to addr and runs the handshake (AUTH, CLIENT SETNAME).
func Dial(ctx context.Context, addr string, opt Options) (*Conn, error) {
	timeout := opt.DialTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if opt.TLS != nil {
		cfg := opt.TLS
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	c := &Conn{nc: nc, w: bufio.NewWriterSize(nc, bufSize), r: bufio.NewReaderSize(nc, bufSize)}
	if err := c.handshake(ctx, opt); err != nil {
		nc.Close()
		if opt.TLS != nil && closedByPeer(err) {
			// Under TLS 1.3 a server that rejects the client's certificate
			// does so after the client's side of the handshake is done: its
			// alert often loses the race with the first write and all that
			// is left is a reset connection. Say what it most likely means.
			err = fmt.Errorf("%w (the server closed the connection right after the TLS handshake: it may require a client certificate it trusts)", err)
		}
		return nil, fmt.Errorf("handshake with %s: %w", addr, err)
	}
	return c, nil
}

// closedByPeer reports whether err means the other end closed or reset the
// connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (c *Conn) handshake(ctx context.Context, opt Options) error {
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
		defer c.nc.SetDeadline(time.Time{})
	}
	var cmds [][]string
	switch {
	case opt.Password != "" && opt.Username != "":
		cmds = append(cmds, []string{"AUTH", opt.Username, opt.Password})
	case opt.Password != "":
		cmds = append(cmds, []string{"AUTH", opt.Password})
	}
	if opt.ClientName != "" {
		cmds = append(cmds, []string{"CLIENT", "SETNAME", opt.ClientName})
	}
	for _, cmd := range cmds {
		c.WriteCommand(cmd...)
	}
	if err := c.Flush(); err != nil {
		return err
	}
	for _, cmd := range cmds {
		v, err := c.ReadValue()
		if err != nil {
			return err
		}
		if e, ok := v.(Error); ok {
			return fmt.Errorf("%s: %w", cmd[0], e)
		}
	}
	return nil
}

// Close closes the network connection. Reads and writes in progress fail.
func (c *Conn) Close() error { return c.nc.Close() }

// SetDeadline bounds every read and write until it is changed. The zero
// time means no bound.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// RemoteAddr is the address of the Redis node.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Flush sends everything written so far.
func (c *Conn) Flush() error { return c.w.Flush() }

// WriteCommand buffers one command. Write errors surface at Flush.
func (c *Conn) WriteCommand(args ...string) {
	c.writeHeader('*', len(args))
	for _, a := range args {
		c.writeBulk(a)
	}
}

// WriteHMGET buffers HMGET <prefix+key> <fields...> without building the key.
func (c *Conn) WriteHMGET(prefix, key string, fields []string) {
	c.writeHeader('*', 2+len(fields))
	c.writeBulk("HMGET")
	c.writeHeader('$', len(prefix)+len(key))
	c.w.WriteString(prefix)
	c.w.WriteString(key)
	c.w.WriteString("\r\n")
	for _, f := range fields {
		c.writeBulk(f)
	}
}

func (c *Conn) writeBulk(s string) {
	c.writeHeader('$', len(s))
	c.w.WriteString(s)
	c.w.WriteString("\r\n")
}

func (c *Conn) writeHeader(kind byte, n int) {
	c.num = append(c.num[:0], kind)
	c.num = strconv.AppendInt(c.num, int64(n), 10)
	c.num = append(c.num, '\r', '\n')
	c.w.Write(c.num)
}

// Error is an error reply from Redis, such as "MOVED 3999 127.0.0.1:6381".
// The connection stays usable after one.
type Error string

func (e Error) Error() string { return string(e) }

// ErrProtocol means the peer sent something that is not RESP2. The
// connection is unusable after it.
var ErrProtocol = errors.New("resp: protocol error")
