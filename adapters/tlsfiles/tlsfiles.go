// Package tlsfiles turns the PEM files named by configuration (a private CA,
// a client certificate and key) into a verifying client TLS configuration.
// The MySQL store (DATABASE_TLS_*) and the RabbitMQ publisher (AMQP_TLS_*)
// share it, so both check the same things with the same messages.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Files are the PEM files of a client's TLS: the server's CA and an
// optional client certificate.
type Files struct {
	CA   string // the server's CA bundle; empty: the system's roots
	Cert string // client certificate, with Key
	Key  string // client private key, with Cert
}

// Set reports whether any file is given.
func (f Files) Set() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// ClientConfig reads the files into a verifying TLS configuration for
// serverName. Messages name the variables to fix; variable prefixes a name
// such as "DATABASE_TLS" or "AMQP_TLS".
func (f Files) ClientConfig(variable, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("%s_CA: %w", variable, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s_CA: %s holds no PEM certificate", variable, f.CA)
		}
		cfg.RootCAs = pool
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, fmt.Errorf("%s_CERT and %s_KEY: set both (a client certificate and its key) or neither", variable, variable)
	}
	if f.Cert != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			// The error names files and PEM problems, never key material.
			return nil, fmt.Errorf("%s_CERT/%s_KEY: %w", variable, variable, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
