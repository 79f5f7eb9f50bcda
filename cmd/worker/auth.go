package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// authFlags are the credentials and TLS settings for NATS and Redis. Secrets
// are best passed through the environment (NATS_PASSWORD, REDIS_PASSWORD,
// ...), where they do not show in the process list.
type authFlags struct {
	natsUser, natsPassword, natsToken, natsNKey, natsCreds string
	natsCA, natsCert, natsKey                              string
	redisUser, redisPassword                               string
	redisTLS                                               bool
	redisCA, redisCert, redisKey, redisServerName          string
}

// natsOptions turns the NATS flags into connect options.
func (a *authFlags) natsOptions() ([]nats.Option, error) {
	var opts []nats.Option
	set := 0
	if a.natsUser != "" || a.natsPassword != "" {
		opts = append(opts, nats.UserInfo(a.natsUser, a.natsPassword))
		set++
	}
	if a.natsToken != "" {
		opts = append(opts, nats.Token(a.natsToken))
		set++
	}
	if a.natsNKey != "" {
		opt, err := nats.NkeyOptionFromSeed(a.natsNKey)
		if err != nil {
			return nil, fmt.Errorf("--nats-nkey: %w", err)
		}
		opts = append(opts, opt)
		set++
	}
	if a.natsCreds != "" {
		opts = append(opts, nats.UserCredentials(a.natsCreds))
		set++
	}
	if set > 1 {
		return nil, errors.New("give at most one of --nats-user/--nats-password, --nats-token, --nats-nkey and --nats-creds")
	}
	if a.natsCA != "" {
		opts = append(opts, nats.RootCAs(a.natsCA))
	}
	if (a.natsCert == "") != (a.natsKey == "") {
		return nil, errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	if a.natsCert != "" {
		opts = append(opts, nats.ClientCert(a.natsCert, a.natsKey))
	}
	return opts, nil
}

// redisTLSConfig returns the TLS configuration for Redis, or nil for plain
// TCP. Any TLS file implies --redis-tls.
func (a *authFlags) redisTLSConfig() (*tls.Config, error) {
	if !a.redisTLS && a.redisCA == "" && a.redisCert == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: a.redisServerName}
	if a.redisCA != "" {
		pem, err := os.ReadFile(a.redisCA)
		if err != nil {
			return nil, fmt.Errorf("--redis-tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--redis-tls-ca: no PEM certificate in %s", a.redisCA)
		}
	}
	if (a.redisCert == "") != (a.redisKey == "") {
		return nil, errors.New("--redis-tls-cert and --redis-tls-key go together")
	}
	if a.redisCert != "" {
		cert, err := tls.LoadX509KeyPair(a.redisCert, a.redisKey)
		if err != nil {
			return nil, fmt.Errorf("--redis-tls-cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
