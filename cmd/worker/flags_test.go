package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	env := map[string]string{
		"NATS_URL":       "nats://env:4222",
		"REDIS_ADDRS":    "a:1, b:2",
		"CONNS_PER_NODE": "5",
		"MAX_BATCH":      "7",
	}
	m := NewMain()
	err := m.ParseFlags([]string{"--max-batch", "9", "--request-timeout", "250ms", "--key-prefix", "fs:"},
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if m.NATSURL != "nats://env:4222" || strings.Join(c.RedisAddrs, "|") != "a:1|b:2" {
		t.Errorf("env fallbacks not applied: %q %q", m.NATSURL, c.RedisAddrs)
	}
	if c.ConnsPerNode != 5 || c.MaxBatch != 9 || c.RequestTimeout != 250*time.Millisecond || c.KeyPrefix != "fs:" {
		t.Errorf("flags: conns %d (env 5), batch %d (flag 9 beats env 7), timeout %v, prefix %q",
			c.ConnsPerNode, c.MaxBatch, c.RequestTimeout, c.KeyPrefix)
	}

	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "RedisAddrs"},
		{[]string{"--redis-addrs", "a:1", "--conns-per-node", "-1"}, nil, "ConnsPerNode"},
		{[]string{"--redis-addrs", "a:1"}, map[string]string{"MAX_PENDING": "lots"}, "MAX_PENDING"},
		{[]string{"--redis-addrs", "a:1", "extra"}, nil, "unexpected arguments"},
		{[]string{"--redis-addrs", "a:1", "--log-level", "loud"}, nil, "--log-level"},
	} {
		err := NewMain().ParseFlags(tc.args, func(k string) string { return tc.env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseFlags(%q, %v) = %v, want an error about %s", tc.args, tc.env, err, tc.want)
		}
	}
}
