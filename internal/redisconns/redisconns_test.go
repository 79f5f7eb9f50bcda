package redisconns

import (
	"context"
	"errors"
	"net"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// A CLIENT LIST reply from Redis 7.0: a named client, the asking client, an
// unnamed one, and a replica's replication link.
const sample = "id=3 addr=127.0.0.1:52555 laddr=127.0.0.1:6379 fd=8 name=budget-test age=12 idle=3 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=0 omem=0 tot-mem=1800 events=r cmd=hmget user=default redir=-1 resp=3\n" +
	"id=7 addr=127.0.0.1:52560 laddr=127.0.0.1:6379 fd=9 name= age=0 idle=0 flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=26 qbuf-free=20448 argv-mem=10 multi-mem=0 rbs=16384 rbp=16384 obl=0 oll=0 omem=0 tot-mem=37658 events=r cmd=client|list user=default redir=-1 resp=2\n" +
	"id=9 addr=127.0.0.1:40022 laddr=127.0.0.1:6379 fd=11 name= age=300 idle=1 flags=S db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=1024 rbp=0 obl=0 oll=0 omem=0 tot-mem=1800 events=r cmd=replconf user=default redir=-1 resp=2\n"

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Client
		wantErr bool
	}{
		{
			name: "redis 7.0",
			in:   sample,
			want: []Client{
				{ID: 3, Addr: "127.0.0.1:52555", LAddr: "127.0.0.1:6379", Name: "budget-test", Cmd: "hmget", Age: 12, Idle: 3, Flags: "N"},
				{ID: 7, Addr: "127.0.0.1:52560", LAddr: "127.0.0.1:6379", Name: "", Cmd: "client|list", Age: 0, Idle: 0, Flags: "N"},
				{ID: 9, Addr: "127.0.0.1:40022", LAddr: "127.0.0.1:6379", Name: "", Cmd: "replconf", Age: 300, Idle: 1, Flags: "S"},
			},
		},
		{name: "empty", in: "", want: nil},
		{
			name: "CRLF, blank lines, unknown and missing fields",
			in:   "\r\nid=1 name=a lib-name=go-redis(,go1.26) future=x\r\n\r\nid=2 flags=P\r\n",
			want: []Client{{ID: 1, Name: "a"}, {ID: 2, Flags: "P"}},
		},
		{name: "field without =", in: "id=1 name=a oops\n", wantErr: true},
		{name: "no id", in: "addr=127.0.0.1:1 name=a\n", wantErr: true},
		{name: "bad id", in: "id=x name=a\n", wantErr: true},
		{name: "bad age", in: "id=1 age=-\n", wantErr: true},
		{name: "bad idle", in: "id=1 idle=1.5\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse: err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestCountMatching(t *testing.T) {
	clients := []Client{
		{ID: 1, Name: "budget-test", Flags: "N"},
		{ID: 2, Name: "budget-test", Flags: "N"},
		{ID: 3, Name: "budget-other", Flags: "P"},
		{ID: 4, Name: "", Flags: "N"},
		{ID: 5, Name: "", Flags: "S"}, // replica link on a master
		{ID: 6, Name: "", Flags: "M"}, // master link on a replica
		{ID: 7, Name: SamplerClientName, Flags: "N"},
		{ID: 8, Name: "budget-test", Flags: "N"}, // the one asking
	}
	tests := []struct {
		prefix string
		self   int64
		want   int
	}{
		{"budget-test", 8, 2},
		{"budget-test", -1, 3},
		{"budget", 8, 3},
		{"", 8, 4},
		{"", -1, 5},
		{"redisconns", -1, 0},
		{"nobody", -1, 0},
	}
	for _, tt := range tests {
		if got := countMatching(clients, tt.prefix, tt.self); got != tt.want {
			t.Errorf("countMatching(prefix %q, self %d) = %d, want %d", tt.prefix, tt.self, got, tt.want)
		}
	}
}

// TestBudget opens exactly K named connections on one node of a real cluster
// and checks that Count and a Sampler see K, then see them go; then that the
// Sampler counts errors for a dead address and for the node while it is
// killed, and resumes when it is back.
func TestBudget(t *testing.T) {
	const K = 5
	c := redistest.Start(t, redistest.Options{})
	node := c.Nodes[0]
	addr := node.Addr
	dead := deadAddr(t)
	ctx := context.Background()

	var mu sync.Mutex
	onSample := make(map[string]int)
	s := NewSampler(SamplerConfig{
		Addrs:      []string{addr, dead, addr},
		NamePrefix: "budget-test",
		Interval:   10 * time.Millisecond,
		OnSample: func(a string, n int) {
			mu.Lock()
			onSample[a]++
			mu.Unlock()
		},
	})
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(runCtx) }()
	stopRun := sync.OnceValue(func() error { stop(); return <-runErr })
	defer func() {
		if err := stopRun(); err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
		if err := s.Run(ctx); !errors.Is(err, ErrClosed) {
			t.Errorf("Run after Close = %v, want ErrClosed", err)
		}
	}()

	asker := redis.NewClient(&redis.Options{Addr: addr, ClientName: "asker"})
	defer asker.Close()
	if n, err := Count(ctx, asker, "budget-test"); err != nil || n != 0 {
		t.Fatalf("Count before = %d, %v; want 0", n, err)
	}
	waitFor(t, "the sampler to see 0 on "+addr, func() bool { st := s.Snapshot()[addr]; return st.Samples > 0 && st.Last == 0 })

	rdb := redis.NewClient(&redis.Options{Addr: addr, ClientName: "budget-test", PoolSize: K})
	conns := make([]*redis.Conn, K)
	for i := range conns {
		conns[i] = rdb.Conn()
		if err := conns[i].Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := Count(ctx, asker, "budget-test"); err != nil || n != K {
		t.Errorf("Count(budget-test) = %d, %v; want %d", n, err, K)
	}
	// The asker's own connection is not counted, nor is the sampler's;
	// with "" everything else is.
	if n, err := Count(ctx, asker, "asker"); err != nil || n != 0 {
		t.Errorf("Count(asker) from the asker = %d, %v; want 0", n, err)
	}
	all, err := Count(ctx, asker, "")
	if err != nil || all < K {
		t.Errorf("Count(\"\") = %d, %v; want at least %d", all, err, K)
	}
	samplers := 0
	list, err := asker.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := Parse(list)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range parsed {
		if cl.Name == SamplerClientName {
			samplers++
		}
	}
	if samplers != 1 {
		t.Errorf("%d sampler connections on %s, want exactly 1", samplers, addr)
	}

	before := s.Snapshot()[addr].Samples
	waitFor(t, "3 samples with K connections", func() bool {
		st := s.Snapshot()[addr]
		return st.Samples >= before+3 && st.Last == K
	})
	if st := s.Snapshot()[addr]; st.Max != K || st.Min != 0 {
		t.Errorf("with %d connections open: %+v; want Max %d, Min 0", K, st, K)
	}

	for _, cn := range conns {
		cn.Close()
	}
	rdb.Close()
	waitFor(t, "Count to drop to 0", func() bool {
		n, err := Count(ctx, asker, "budget-test")
		return err == nil && n == 0
	})
	waitFor(t, "the sampler to see 0 again", func() bool { return s.Snapshot()[addr].Last == 0 })
	if st := s.Snapshot()[addr]; st.Max != K {
		t.Errorf("after closing: Max = %d, want %d", st.Max, K)
	}

	waitFor(t, "errors from the dead address", func() bool { return s.Snapshot()[dead].Errors >= 2 })
	if st := s.Snapshot()[dead]; st.Samples != 0 || st.LastErr == nil {
		t.Errorf("dead address %s: %+v; want errors and no samples", dead, st)
	}
	if st := s.Snapshot()[addr]; st.Errors != 0 {
		t.Errorf("live node: %d errors (%v)", st.Errors, st.LastErr)
	}
	if len(s.Snapshot()) != 2 {
		t.Errorf("Snapshot has %d nodes, want 2 (duplicates sampled once)", len(s.Snapshot()))
	}

	// A node that goes away is counted as errors, and sampling resumes
	// when it is back.
	node.Kill(t)
	errs := s.Snapshot()[addr].Errors
	waitFor(t, "errors while the node is down", func() bool { return s.Snapshot()[addr].Errors > errs })
	node.Restart(t)
	samples := s.Snapshot()[addr].Samples
	waitFor(t, "samples after the node is back", func() bool { return s.Snapshot()[addr].Samples > samples })

	if err := stopRun(); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for a, st := range s.Snapshot() {
		if onSample[a] != st.Samples {
			t.Errorf("%s: OnSample called %d times, Samples = %d", a, onSample[a], st.Samples)
		}
	}
}

func TestRunTwice(t *testing.T) {
	s := NewSampler(SamplerConfig{Addrs: []string{deadAddr(t)}, Interval: time.Hour})
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "the first sample", func() bool { return s.Snapshot()[s.addrs[0]].Errors > 0 })
	if err := s.Run(ctx); err == nil {
		t.Error("second concurrent Run returned nil")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
