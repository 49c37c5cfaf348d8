package tlsfiles_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marketplace/usersvc/adapters/tlsfiles"
	"github.com/marketplace/usersvc/test/testpki"
)

func TestClientConfig(t *testing.T) {
	pki := testpki.New(t, "test CA", "client")
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("CA and client certificate", func(t *testing.T) {
		c, err := tlsfiles.Files{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}.ClientConfig("X_TLS", "db.internal")
		if err != nil {
			t.Fatal(err)
		}
		if c.RootCAs == nil || len(c.Certificates) != 1 || c.ServerName != "db.internal" || c.InsecureSkipVerify {
			t.Errorf("config %+v", c)
		}
	})
	t.Run("nothing: the system's roots, still verifying", func(t *testing.T) {
		c, err := tlsfiles.Files{}.ClientConfig("X_TLS", "db.internal")
		if err != nil || c.RootCAs != nil || c.InsecureSkipVerify || c.ServerName != "db.internal" {
			t.Fatalf("config %+v, %v", c, err)
		}
	})
	for _, tc := range []struct {
		name  string
		files tlsfiles.Files
		want  string
	}{
		{"missing CA file", tlsfiles.Files{CA: "/nonexistent/ca.pem"}, "X_TLS_CA"},
		{"CA file without a certificate", tlsfiles.Files{CA: notPEM}, "X_TLS_CA"},
		{"certificate without key", tlsfiles.Files{Cert: pki.ClientCert}, "X_TLS_KEY"},
		{"key without certificate", tlsfiles.Files{Key: pki.ClientKey}, "X_TLS_CERT"},
		{"key of another certificate", tlsfiles.Files{Cert: pki.ClientCert, Key: pki.ServerKey}, "X_TLS_CERT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.files.ClientConfig("X_TLS", "db.internal")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ClientConfig = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
