package resp

import (
	"fmt"
	"io"
	"strconv"
)

// ReadArray reads one reply that must be an array of bulk strings, such as
// HMGET's, and calls cell for each element in order: b is the value, or nil
// with null true for a missing value. b is only valid during the call.
//
// An error reply is returned as Error after the whole reply is consumed, and
// the connection stays usable. Any other error leaves it unusable.
func (c *Conn) ReadArray(cell func(i int, b []byte, null bool)) error {
	kind, line, err := c.readLine()
	if err != nil {
		return err
	}
	switch kind {
	case '-':
		return Error(line)
	case '*':
	default:
		return fmt.Errorf("%w: want an array, got %q", ErrProtocol, kind)
	}
	n, err := parseInt(line)
	if err != nil {
		return err
	}
	for i := 0; i < int(n); i++ {
		b, null, err := c.readBulk()
		if err != nil {
			return err
		}
		cell(i, b, null)
	}
	return nil
}

// readBulk reads one bulk string. Short strings are returned from the read
// buffer without copying.
func (c *Conn) readBulk() (b []byte, null bool, err error) {
	kind, line, err := c.readLine()
	if err != nil {
		return nil, false, err
	}
	if kind != '$' {
		return nil, false, fmt.Errorf("%w: want a bulk string, got %q", ErrProtocol, kind)
	}
	n, err := parseInt(line)
	if err != nil {
		return nil, false, err
	}
	if n < 0 {
		return nil, true, nil
	}
	if int(n)+2 <= c.r.Size() {
		b, err = c.r.Peek(int(n) + 2)
		if err != nil {
			return nil, false, err
		}
		c.r.Discard(int(n) + 2)
	} else {
		b = make([]byte, n+2)
		if _, err := io.ReadFull(c.r, b); err != nil {
			return nil, false, err
		}
	}
	if b[n] != '\r' || b[n+1] != '\n' {
		return nil, false, fmt.Errorf("%w: bulk string without CRLF", ErrProtocol)
	}
	return b[:n], false, nil
}

// ReadValue reads any reply, for control commands: string (simple or bulk),
// int64, []any, nil (null) or Error. It allocates; keep it off hot paths.
func (c *Conn) ReadValue() (any, error) {
	kind, line, err := c.readLine()
	if err != nil {
		return nil, err
	}
	switch kind {
	case '+':
		return string(line), nil
	case '-':
		return Error(line), nil
	case ':':
		return parseInt(line)
	case '$':
		n, err := parseInt(line)
		if err != nil || n < 0 {
			return nil, err
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(c.r, b); err != nil {
			return nil, err
		}
		return string(b[:n]), nil
	case '*':
		n, err := parseInt(line)
		if err != nil || n < 0 {
			return nil, err
		}
		arr := make([]any, n)
		for i := range arr {
			if arr[i], err = c.ReadValue(); err != nil {
				return nil, err
			}
		}
		return arr, nil
	}
	return nil, fmt.Errorf("%w: unknown reply type %q", ErrProtocol, kind)
}

// readLine returns a reply's type byte and the rest of its first line,
// without CRLF. The line is only valid until the next read.
func (c *Conn) readLine() (byte, []byte, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, nil, fmt.Errorf("%w: malformed line %q", ErrProtocol, line)
	}
	return line[0], line[1 : len(line)-2], nil
}

func parseInt(b []byte) (int64, error) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad integer %q", ErrProtocol, b)
	}
	return n, nil
}
