package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/featurestore/featureworker/internal/featureset"
	"github.com/featurestore/featureworker/internal/natstest"
	"github.com/featurestore/featureworker/internal/testcerts"
	"github.com/featurestore/featureworker/subjects"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// authSet is the data the access control tests read.
var authSet = featureset.Set{Entities: 20, Features: 3}

// refusedWithin bounds how long Run may take to give up with a
// --startup-timeout of 2s: a generous liveness bound, not a measurement.
const refusedWithin = 8 * time.Second

// runMain parses args, with env as the environment, and runs the worker in
// this process. A worker that starts is closed when the test ends.
func runMain(t *testing.T, env map[string]string, args ...string) (*Main, error) {
	t.Helper()
	m := NewMain()
	args = append([]string{"--log-level", "error"}, args...)
	if err := m.ParseFlags(args, func(k string) string { return env[k] }); err != nil {
		t.Fatalf("ParseFlags(%q): %v", args, err)
	}
	if err := m.Run(context.Background()); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("closing the worker: %v", err)
		}
	})
	return m, nil
}

// checkRefused runs a worker that must not start, and checks that Run
// gives up within refusedWithin with an error that matches the regular
// expression want, ignoring case.
func checkRefused(t *testing.T, want string, env map[string]string, args ...string) {
	t.Helper()
	start := time.Now()
	_, err := runMain(t, env, append(args, "--startup-timeout", "2s")...)
	took := time.Since(start)
	t.Logf("refused after %v: %v", took.Round(time.Millisecond), err)
	if err == nil || !regexp.MustCompile("(?i)"+want).MatchString(err.Error()) {
		t.Errorf("Run: %v, want an error about %q", err, want)
	}
	if took > refusedWithin {
		t.Errorf("Run gave up after %v with --startup-timeout 2s", took)
	}
}

// checkLookup checks that a worker answers a lookup sent through nc.
func checkLookup(t *testing.T, nc *nats.Conn) {
	t.Helper()
	ids, fs := []int{0, 1, 7, authSet.Entities + 1}, []int{0, 2}
	got, err := (&subjects.Client{Conn: nc, Timeout: 5 * time.Second}).Lookup(context.Background(),
		featureset.Names(featureset.Entity, ids), featureset.Names(featureset.Feature, fs))
	if err == nil {
		err = authSet.Check(ids, fs, got)
	}
	if err != nil {
		t.Errorf("lookup: %v", err)
	}
}

// writeFile writes data to name in a temporary directory and returns its
// path.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNATSAuth runs the worker against NATS servers that require each
// authentication mechanism it supports: with the right credentials it
// connects and answers a lookup, with wrong ones Run fails with the
// server's refusal, within the startup timeout.
func TestNATSAuth(t *testing.T) {
	redis := startClusterNode(t, nil, nil)
	if err := authSet.Seed(context.Background(), redis.admin, ""); err != nil {
		t.Fatal(err)
	}
	ca, otherCA := testcerts.NewCA(t, "nats CA"), testcerts.NewCA(t, "other CA")
	srvCert, cliCert := ca.Server(t), ca.Client(t, "features-worker")
	otherCert := otherCA.Client(t, "features-worker")
	tlsConfig, err := server.GenTLSConfig(&server.TLSConfigOpts{
		CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile, CaFile: ca.CertFile, Verify: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	userSeed, userKey := nkeySeed(t)
	otherSeed, _ := nkeySeed(t)
	op := newOperator(t)

	type refusal struct {
		args []string
		env  map[string]string
		want string
	}
	for _, tc := range []struct {
		name   string
		server *server.Options
		caller []nats.Option // how the test's own client connects
		args   []string      // worker flags that work
		env    map[string]string
		refuse []refusal
	}{{
		name:   "UserPassword",
		server: &server.Options{Username: "features-worker", Password: "s3cret"},
		caller: []nats.Option{nats.UserInfo("features-worker", "s3cret")},
		args:   []string{"--nats-user", "features-worker"},
		env:    map[string]string{"NATS_PASSWORD": "s3cret"},
		refuse: []refusal{{[]string{"--nats-user", "features-worker", "--nats-password", "wrong"}, nil, "authorization violation"}},
	}, {
		// The least-privilege user of docs/security.md.
		name:   "Permissions",
		server: natsConfFromDoc(t, "s3cret", "caller-secret"),
		caller: []nats.Option{nats.UserInfo("caller", "caller-secret")},
		args:   []string{"--nats-user", "features-worker", "--nats-password", "s3cret"},
		// A caller's account may not subscribe to the lookup subject.
		refuse: []refusal{{[]string{"--nats-user", "caller", "--nats-password", "caller-secret"}, nil, "permissions violation"}},
	}, {
		name:   "Token",
		server: &server.Options{Authorization: "t0ken"},
		caller: []nats.Option{nats.Token("t0ken")},
		env:    map[string]string{"NATS_TOKEN": "t0ken"},
		refuse: []refusal{{nil, map[string]string{"NATS_TOKEN": "wrong"}, "authorization violation"}},
	}, {
		name:   "NKey",
		server: &server.Options{Nkeys: []*server.NkeyUser{{Nkey: userKey}}},
		caller: []nats.Option{nkeyOption(t, userSeed)},
		args:   []string{"--nats-nkey", userSeed},
		refuse: []refusal{{[]string{"--nats-nkey", otherSeed}, nil, "authorization violation"}},
	}, {
		name:   "Creds",
		server: &server.Options{TrustedKeys: []string{op.key}, AccountResolver: op.resolver},
		caller: []nats.Option{nats.UserCredentials(op.creds(t, op.account))},
		args:   []string{"--nats-creds", op.creds(t, op.account)},
		// A user of an account the server does not know.
		refuse: []refusal{{[]string{"--nats-creds", op.creds(t, newAccount(t))}, nil, "authorization violation"}},
	}, {
		name:   "MutualTLS",
		server: &server.Options{TLS: true, TLSVerify: true, TLSConfig: tlsConfig},
		caller: []nats.Option{nats.RootCAs(ca.CertFile), nats.ClientCert(cliCert.CertFile, cliCert.KeyFile)},
		args:   []string{"--nats-tls-ca", ca.CertFile, "--nats-tls-cert", cliCert.CertFile, "--nats-tls-key", cliCert.KeyFile},
		refuse: []refusal{
			// The server's certificate is not signed by the CA the worker trusts.
			{[]string{"--nats-tls-ca", otherCA.CertFile, "--nats-tls-cert", cliCert.CertFile, "--nats-tls-key", cliCert.KeyFile}, nil, "certificate signed by unknown authority"},
			// The worker's certificate is not signed by the CA the server
			// trusts, so the worker sends none (the server names the CAs it
			// accepts). The server's verdict comes as an alert or, under
			// TLS 1.3, possibly as a connection closed after the handshake.
			{[]string{"--nats-tls-ca", ca.CertFile, "--nats-tls-cert", otherCert.CertFile, "--nats-tls-key", otherCert.KeyFile}, nil, "tls: certificate required|tls error: connection closed by remote"},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := natstest.Start(t, tc.server)
			base := []string{"--nats-url", ns.ClientURL(), "--redis-addrs", redis.addr}
			if _, err := runMain(t, tc.env, append(base, tc.args...)...); err != nil {
				t.Fatalf("Run with valid credentials: %v", err)
			}
			checkLookup(t, natstest.Connect(t, ns, tc.caller...))
			for _, r := range tc.refuse {
				checkRefused(t, r.want, r.env, append(base, r.args...)...)
			}
		})
	}
}

// nkeySeed creates an NKey user and returns the file holding its seed and
// its public key.
func nkeySeed(t *testing.T) (seedFile, public string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	public, _ = kp.PublicKey()
	return writeFile(t, "user.nk", seed), public
}

func nkeyOption(t *testing.T, seedFile string) nats.Option {
	t.Helper()
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// operator is a NATS operator with one account, in the decentralized JWT
// mode: the server trusts the operator's key and resolves the account's JWT
// from memory.
type operator struct {
	key      string
	account  nkeys.KeyPair
	resolver *server.MemAccResolver
}

func newOperator(t *testing.T) *operator {
	t.Helper()
	okp, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	op := &operator{account: newAccount(t), resolver: &server.MemAccResolver{}}
	op.key, _ = okp.PublicKey()
	apub, _ := op.account.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	if err := op.resolver.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	return op
}

func newAccount(t *testing.T) nkeys.KeyPair {
	t.Helper()
	akp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	return akp
}

// creds writes a credentials file (user JWT and seed) for a new user of
// account and returns its path.
func (op *operator) creds(t *testing.T, account nkeys.KeyPair) string {
	t.Helper()
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	ujwt, err := jwt.NewUserClaims(upub).Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	data, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "user.creds", data)
}

// natsConfFromDoc returns the server options of the NATS configuration in
// docs/security.md, with password for the worker and callerPassword for
// the callers.
func natsConfFromDoc(t *testing.T, password, callerPassword string) *server.Options {
	t.Helper()
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "\n```conf\n")
	block, _, ok2 := strings.Cut(block, "\n```")
	if !ok || !ok2 || !strings.Contains(block, "<password>") {
		t.Fatal("docs/security.md: no ```conf block with a <password> placeholder")
	}
	conf := writeFile(t, "nats.conf", []byte(strings.NewReplacer("<password>", password, "<caller-password>", callerPassword).Replace(block)))
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatalf("the NATS configuration of docs/security.md: %v", err)
	}
	return opts
}
