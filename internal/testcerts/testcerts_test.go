package testcerts

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMutualTLS runs a handshake in which each side checks the other's
// certificate against the CA, and one against a CA that signed neither.
func TestMutualTLS(t *testing.T) {
	ca, other := NewCA(t, "test CA"), NewCA(t, "other CA")
	srv, cli := ca.Server(t), ca.Client(t, "worker")
	if err := handshake(t, ca, srv, cli); err != nil {
		t.Fatalf("handshake with certificates of the trusted CA: %v", err)
	}
	err := handshake(t, other, srv, cli)
	if err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Fatalf("handshake trusting another CA: %v, want an unknown authority error", err)
	}
}

// handshake connects a client trusting ca with certificate cli to a server
// with certificate srv that requires client certificates signed by ca, and
// returns the client's error.
func handshake(t *testing.T, ca *CA, srv, cli Pair) error {
	t.Helper()
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("reading %s: %v", ca.CertFile, err)
	}
	sc, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := tls.LoadX509KeyPair(cli.CertFile, cli.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	// Loopback TCP, not net.Pipe: a side that fails writes an alert while
	// the other may still be writing its flight, and only a buffered
	// transport lets both writes complete.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		done <- tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{sc}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}).Handshake()
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	client := tls.Client(conn, &tls.Config{Certificates: []tls.Certificate{cc}, RootCAs: pool, ServerName: "127.0.0.1"})
	if err := client.Handshake(); err != nil {
		conn.Close()
		<-done
		return err
	}
	// TLS 1.3: the client finishes first; the server's verdict on the
	// client certificate is its own handshake result.
	return <-done
}
