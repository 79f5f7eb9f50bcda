// Package redisconns counts the connections open on Redis nodes, as Redis
// itself reports them in CLIENT LIST.
//
// It exists to prove a connection budget (for example, "the worker never
// holds more than N connections per node"), so it never consults the
// counters of the client being measured: a pool's own statistics can only
// report what the pool believes it did, and the point is to catch the cases
// where that belief is wrong (leaked connections, hidden side pools, dials
// that outlive their pool). Connections are told apart by client name
// (CLIENT SETNAME, go-redis Options.ClientName), so the code being measured
// must name its connections.
//
// Three kinds of connection are never counted, whatever the name prefix:
// the connection asking (Count) or sampling (Sampler), the connections of
// every Sampler (named SamplerClientName), and replication links (flags S
// and M), which belong to Redis rather than to any client.
package redisconns

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// SamplerClientName is the client name of a Sampler's connections. Count and
// Sampler never count connections with this name, so samplers do not disturb
// each other's measurements or their own.
const SamplerClientName = "redisconns-sampler"

// Client is one connection as reported by CLIENT LIST. Fields missing from a
// line are left zero.
type Client struct {
	ID    int64  // id: unique, never reused by the server
	Addr  string // addr: the client's address, "ip:port"
	LAddr string // laddr: the server address the client connected to
	Name  string // name: set by CLIENT SETNAME; "" if none
	Cmd   string // cmd: last command run, e.g. "client|list"
	Age   int64  // age: seconds since the connection was accepted
	Idle  int64  // idle: seconds since the last command
	Flags string // flags: e.g. "N" for none, "S" for a replica, "P" for pub/sub
}

// Parse parses CLIENT LIST output into one Client per non-empty line. Each
// line is a space-separated list of key=value fields; unknown fields are
// ignored, so output of newer servers parses. Values cannot contain spaces
// (Redis rejects client names with spaces), so splitting on spaces is exact.
// Parse fails on a line with a field that has no '=', without an id field,
// or with an id, age or idle that is not an integer.
func Parse(s string) ([]Client, error) {
	var clients []Client
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var c Client
		hasID := false
		for _, field := range strings.Fields(line) {
			key, value, ok := strings.Cut(field, "=")
			if !ok {
				return nil, fmt.Errorf("redisconns: CLIENT LIST line %d: field %q is not key=value", i+1, field)
			}
			var err error
			switch key {
			case "id":
				c.ID, err = strconv.ParseInt(value, 10, 64)
				hasID = true
			case "addr":
				c.Addr = value
			case "laddr":
				c.LAddr = value
			case "name":
				c.Name = value
			case "cmd":
				c.Cmd = value
			case "age":
				c.Age, err = strconv.ParseInt(value, 10, 64)
			case "idle":
				c.Idle, err = strconv.ParseInt(value, 10, 64)
			case "flags":
				c.Flags = value
			}
			if err != nil {
				return nil, fmt.Errorf("redisconns: CLIENT LIST line %d: field %s: %w", i+1, key, err)
			}
		}
		if !hasID {
			return nil, fmt.Errorf("redisconns: CLIENT LIST line %d has no id field: %q", i+1, line)
		}
		clients = append(clients, c)
	}
	return clients, nil
}

// Count returns the number of connections on rdb's server whose client name
// starts with namePrefix ("" counts every connection), not counting the
// connection that asks, samplers' connections, or replication links. It runs
// CLIENT ID and CLIENT LIST on one connection taken from rdb's pool (the
// rest of rdb's pool, if it has idle connections, is counted like any other
// client's).
//
// The count is a snapshot: connections being opened or closed at that moment
// may or may not be in it. Redis closes a connection asynchronously after
// the client does, so wait for a drop rather than asserting it at once.
func Count(ctx context.Context, rdb *redis.Client, namePrefix string) (int, error) {
	conn := rdb.Conn()
	defer conn.Close()
	self, err := conn.ClientID(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("redisconns: CLIENT ID: %w", err)
	}
	list, err := conn.ClientList(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("redisconns: CLIENT LIST: %w", err)
	}
	clients, err := Parse(list)
	if err != nil {
		return 0, err
	}
	return countMatching(clients, namePrefix, self), nil
}

// countMatching counts the clients whose name starts with prefix, except the
// one with ID self, samplers and replication links.
func countMatching(clients []Client, prefix string, self int64) int {
	n := 0
	for _, c := range clients {
		if c.ID == self || c.Name == SamplerClientName || strings.ContainsAny(c.Flags, "SM") {
			continue
		}
		if strings.HasPrefix(c.Name, prefix) {
			n++
		}
	}
	return n
}
