package resp

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"testing"
)

// pipeConn returns a Conn whose peer is a script of raw replies.
func pipeConn(t *testing.T, replies string) (*Conn, <-chan string) {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	written := make(chan string, 1)
	go func() {
		server.Write([]byte(replies))
	}()
	go func() {
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := server.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				written <- sb.String()
				return
			}
		}
	}()
	return &Conn{nc: client, w: bufio.NewWriter(client), r: bufio.NewReaderSize(client, 64)}, written
}

func TestWriteHMGET(t *testing.T) {
	c, written := pipeConn(t, "")
	c.WriteHMGET("pre:", "user:1", []string{"age", ""})
	c.WriteCommand("ASKING")
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	want := "*4\r\n$5\r\nHMGET\r\n$10\r\npre:user:1\r\n$3\r\nage\r\n$0\r\n\r\n*1\r\n$6\r\nASKING\r\n"
	if got := <-written; got != want {
		t.Fatalf("wrote %q, want %q", got, want)
	}
}

func TestReadArray(t *testing.T) {
	long := strings.Repeat("x", 100) // longer than the 64-byte read buffer
	c, _ := pipeConn(t, "*3\r\n$2\r\n31\r\n$-1\r\n$100\r\n"+long+"\r\n"+
		"-MOVED 3999 127.0.0.1:6381\r\n"+
		"*1\r\n$0\r\n\r\n"+
		"+OK\r\n")
	var cells []string
	err := c.ReadArray(func(i int, b []byte, null bool) {
		if null {
			cells = append(cells, "<nil>")
		} else {
			cells = append(cells, string(b))
		}
	})
	if err != nil || strings.Join(cells, ",") != "31,<nil>,"+long {
		t.Fatalf("first reply: %q, %v", cells, err)
	}
	var redisErr Error
	if err := c.ReadArray(func(int, []byte, bool) {}); !errors.As(err, &redisErr) || redisErr != "MOVED 3999 127.0.0.1:6381" {
		t.Fatalf("error reply: %v", err)
	}
	n := 0
	if err := c.ReadArray(func(_ int, b []byte, null bool) { n++ }); err != nil || n != 1 {
		t.Fatalf("empty string reply: %d cells, %v", n, err)
	}
	if err := c.ReadArray(func(int, []byte, bool) {}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("simple string where an array is due: %v, want ErrProtocol", err)
	}
}

func TestReadValue(t *testing.T) {
	c, _ := pipeConn(t, "*2\r\n*3\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$3\r\nabc\r\n-ERR x\r\n")
	v, err := c.ReadValue()
	if err != nil {
		t.Fatal(err)
	}
	arr := v.([]any)
	entry := arr[0].([]any)
	if entry[0] != int64(0) || entry[1] != int64(5460) || entry[2].([]any)[0] != "127.0.0.1" || arr[1] != Error("ERR x") {
		t.Fatalf("got %#v", v)
	}
}
