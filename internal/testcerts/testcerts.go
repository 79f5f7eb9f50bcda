// Package testcerts writes a throwaway certificate authority, and server and
// client certificates it signs, as PEM files in a test's temporary
// directory, for TLS tests of NATS and Redis.
//
// Keys are ECDSA P-256, which is fast to generate and which Go, NATS and
// Redis (OpenSSL) all accept. Certificates are valid from an hour ago for a
// day. Nothing here is fit for anything but tests.
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// CA is a certificate authority whose certificate is in CertFile.
type CA struct {
	// CertFile is the CA certificate, PEM: what clients and servers are
	// told to trust (--nats-tls-ca, --redis-tls-ca, tls-ca-cert-file).
	CertFile string

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string

	mu     sync.Mutex
	serial int64
}

// Pair is a certificate and its private key, both PEM files.
type Pair struct {
	CertFile, KeyFile string
}

// NewCA creates a CA named name in a new temporary directory of tb.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	ca := &CA{dir: tb.TempDir(), serial: 1}
	ca.key = newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ca.key.PublicKey, ca.key)
	if err != nil {
		tb.Fatalf("testcerts: creating CA %s: %v", name, err)
	}
	if ca.cert, err = x509.ParseCertificate(der); err != nil {
		tb.Fatalf("testcerts: %v", err)
	}
	ca.CertFile = filepath.Join(ca.dir, "ca.pem")
	writePEM(tb, ca.CertFile, "CERTIFICATE", der)
	return ca
}

// Server issues a server certificate for hosts (IP addresses or DNS names),
// by default 127.0.0.1 and localhost. It is also valid for client
// authentication, because Redis presents its server certificate when it
// connects to other nodes over the TLS cluster bus and replication links.
func (ca *CA) Server(tb testing.TB, hosts ...string) Pair {
	tb.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(tb, "server", tmpl)
}

// Client issues a client certificate with common name name.
func (ca *CA) Client(tb testing.TB, name string) Pair {
	tb.Helper()
	return ca.issue(tb, "client", &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// issue signs tmpl with ca and writes the pair as kind-N.pem and
// kind-N-key.pem, N being the serial number.
func (ca *CA) issue(tb testing.TB, kind string, tmpl *x509.Certificate) Pair {
	tb.Helper()
	ca.mu.Lock()
	ca.serial++
	serial := ca.serial
	ca.mu.Unlock()
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	key := newKey(tb)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatalf("testcerts: issuing a %s certificate: %v", kind, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("testcerts: %v", err)
	}
	base := filepath.Join(ca.dir, kind+"-"+strconv.FormatInt(serial, 10))
	p := Pair{CertFile: base + ".pem", KeyFile: base + "-key.pem"}
	writePEM(tb, p.CertFile, "CERTIFICATE", der)
	writePEM(tb, p.KeyFile, "PRIVATE KEY", keyDER)
	return p
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("testcerts: generating a key: %v", err)
	}
	return key
}

func writePEM(tb testing.TB, path, typ string, der []byte) {
	tb.Helper()
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatalf("testcerts: %v", err)
	}
}
