package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/internal/redistest"
	"github.com/featurestore/featureworker/internal/testcerts"
	"github.com/redis/go-redis/v9"
)

// TestRedisACL runs the worker as a Redis ACL user with exactly the rules
// docs/security.md gives, read from that file so that the document and the
// test cannot drift: a lookup succeeds, while that user cannot read a key
// outside the prefix, write inside it, or run any other command; and a
// wrong password makes Run fail.
func TestRedisACL(t *testing.T) {
	rule, user, prefix := workerACL(t)
	const password = "worker-secret"
	c := redistest.Start(t, redistest.Options{Args: []string{"--requirepass", "admin-secret"}})
	ctx := context.Background()
	admin := c.Client(t)
	if err := authSet.Seed(ctx, admin, prefix); err != nil {
		t.Fatal(err)
	}
	const outside = "other-tenant:secret"
	if err := admin.HSet(ctx, outside, "f0", "not for the worker").Err(); err != nil {
		t.Fatal(err)
	}
	// ACLs are per node: every node gets the rule.
	args := strings.Fields(strings.Replace(rule, "<password>", password, 1))
	for _, n := range c.Nodes {
		if err := n.Client().Do(ctx, toAny(args)...).Err(); err != nil {
			t.Fatalf("%s on %s: %v", rule, n.Addr, err)
		}
	}

	ns := natstest.Start(t, nil)
	base := []string{"--nats-url", ns.ClientURL(), "--redis-addrs", c.Addrs()[0], "--key-prefix", prefix, "--redis-username", user}
	if _, err := runMain(t, map[string]string{"REDIS_PASSWORD": password}, base...); err != nil {
		t.Fatalf("Run as %s: %v", user, err)
	}
	checkLookup(t, natstest.Connect(t, ns))

	// The same user, from a plain client on the node that owns each key.
	as := func(key string) *redis.Client {
		rdb := redis.NewClient(&redis.Options{Addr: c.SlotOwner(t, key).Addr, Username: user, Password: password, DisableIdentity: true})
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
	inside := prefix + "e:1"
	for _, tc := range []struct {
		what string
		err  error
	}{
		{"HMGET outside the prefix", as(outside).HMGet(ctx, outside, "f0").Err()},
		{"HSET inside the prefix", as(inside).HSet(ctx, inside, "f0", "x").Err()},
		{"GET inside the prefix", as(inside).Get(ctx, inside).Err()},
		{"KEYS", as(inside).Keys(ctx, "*").Err()},
		{"CONFIG GET", as(inside).ConfigGet(ctx, "requirepass").Err()},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), "NOPERM") {
			t.Errorf("%s as %s: %v, want NOPERM", tc.what, user, tc.err)
		}
	}
	if v, err := as(inside).HMGet(ctx, inside, "f1").Result(); err != nil || len(v) != 1 || v[0] != *authSet.Value(1, 1) {
		t.Errorf("HMGET inside the prefix as %s: %v, %v", user, v, err)
	}

	checkRefused(t, "WRONGPASS", map[string]string{"REDIS_PASSWORD": "wrong"}, base...)
}

// workerACL returns the ACL SETUSER line of docs/security.md, with its
// "<password>" placeholder, and the user name and key prefix it grants.
func workerACL(t *testing.T) (rule, user, prefix string) {
	t.Helper()
	f, err := os.Open("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); strings.HasPrefix(line, "ACL SETUSER ") {
			rule = line
			break
		}
	}
	m := regexp.MustCompile(`^ACL SETUSER (\S+) .*%R~(\S+)\*( |$)`).FindStringSubmatch(rule)
	if m == nil || !strings.Contains(rule, " ><password> ") {
		t.Fatalf("docs/security.md: no ACL SETUSER line with >%s and a %%R~prefix* pattern (found %q)", "<password>", rule)
	}
	return rule, m[1], m[2]
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// TestRedisTLS runs the worker against a Redis node that only speaks TLS:
// with mutual TLS, then with the CA alone once the node stops asking for
// client certificates; a missing client certificate or a server
// certificate from another CA makes Run fail.
func TestRedisTLS(t *testing.T) {
	ca, otherCA := testcerts.NewCA(t, "redis CA"), testcerts.NewCA(t, "other CA")
	node := startClusterNode(t, ca, nil) // requires client certificates
	ctx := context.Background()
	if err := authSet.Seed(ctx, node.admin, ""); err != nil {
		t.Fatal(err)
	}
	ns := natstest.Start(t, nil)
	cli := ca.Client(t, "features-worker")
	base := []string{"--nats-url", ns.ClientURL(), "--redis-addrs", node.addr, "--redis-tls-ca", ca.CertFile}
	mutual := append([]string{"--redis-tls-cert", cli.CertFile, "--redis-tls-key", cli.KeyFile}, base...)

	if _, err := runMain(t, nil, mutual...); err != nil {
		t.Fatalf("Run with mutual TLS: %v", err)
	}
	checkLookup(t, natstest.Connect(t, ns))

	t.Run("NoClientCert", func(t *testing.T) {
		// Either the server's alert or, when the alert loses the race
		// with the worker's first command, the resp package's diagnosis.
		checkRefused(t, "tls: certificate required|it may require a client certificate", nil, base...)
	})
	t.Run("OtherCA", func(t *testing.T) {
		// The last --redis-tls-ca wins.
		checkRefused(t, "certificate signed by unknown authority", nil, slices.Concat(mutual, []string{"--redis-tls-ca", otherCA.CertFile})...)
	})
	t.Run("ServerAuthOnly", func(t *testing.T) {
		if err := node.admin.ConfigSet(ctx, "tls-auth-clients", "no").Err(); err != nil {
			t.Fatal(err)
		}
		// The name checked is the one given, not the address dialed.
		if _, err := runMain(t, nil, slices.Concat(base, []string{"--redis-tls-server-name", "localhost"})...); err != nil {
			t.Fatalf("Run with the CA alone: %v", err)
		}
		checkLookup(t, natstest.Connect(t, ns))
	})
}

// clusterNode is a one-node Redis Cluster that owns every slot.
type clusterNode struct {
	addr  string
	admin *redis.Client // the default user, with an admin client certificate under TLS
}

// startClusterNode starts redis-server in cluster mode with args, assigns
// it every slot, and returns once the cluster is ok. With ca, the node
// listens on TLS only (its cluster bus too, so that CLUSTER SLOTS gives
// its TLS port) with a certificate ca signs, and by default requires
// client certificates. redistest cannot do this: its clients and
// redis-cli speak plain TCP.
func startClusterNode(t *testing.T, ca *testcerts.CA, args []string) *clusterNode {
	t.Helper()
	ports := freePorts(t, 2)
	port, bus := strconv.Itoa(ports[0]), strconv.Itoa(ports[1])
	dir := t.TempDir()
	all := []string{"--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no",
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", bus}
	opts := &redis.Options{Addr: "127.0.0.1:" + port, DisableIdentity: true, MaxRetries: -1, DialTimeout: time.Second}
	if ca == nil {
		all = append(all, "--port", port)
	} else {
		srv, admin := ca.Server(t), ca.Client(t, "admin")
		all = append(all, "--port", "0", "--tls-port", port,
			"--tls-cert-file", srv.CertFile, "--tls-key-file", srv.KeyFile, "--tls-ca-cert-file", ca.CertFile,
			"--tls-cluster", "yes", "--tls-replication", "yes")
		opts.TLSConfig = clientTLS(t, ca, admin)
	}
	startRedis(t, "redis-"+port, append(all, args...))
	n := &clusterNode{addr: opts.Addr, admin: redis.NewClient(opts)}
	t.Cleanup(func() { n.admin.Close() })

	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	poll := func(what string, ok func() (bool, error)) {
		t.Helper()
		for {
			done, err := ok()
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis node %s: %s: %v", n.addr, what, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	poll("no PONG", func() (bool, error) { err := n.admin.Ping(ctx).Err(); return err == nil, err })
	if err := n.admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", "0", "16383").Err(); err != nil {
		t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", n.addr, err)
	}
	// A new master reports cluster_state:ok about 2s after it starts.
	poll("cluster state not ok", func() (bool, error) {
		info, err := n.admin.ClusterInfo(ctx).Result()
		return strings.Contains(info, "cluster_state:ok"), err
	})
	return n
}

// clientTLS is how a test client trusts ca and authenticates with pair.
func clientTLS(t *testing.T, ca *testcerts.CA, pair testcerts.Pair) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}
