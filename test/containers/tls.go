package containers

import (
	"context"

	"github.com/testcontainers/testcontainers-go"
)

// TLSServer names the PEM files (paths on the host) a database server is
// started with: the CA that signs client certificates, and the server's own
// certificate and key.
type TLSServer struct {
	CA, Cert, Key string
}

// Where the files are copied in the container. They are world-readable
// there: the servers run as their own user and the keys are throwaway.
const (
	tlsDir      = "/certs"
	tlsCAFile   = tlsDir + "/ca.pem"
	tlsCertFile = tlsDir + "/server.pem"
	tlsKeyFile  = tlsDir + "/server.key"
)

func (s TLSServer) files() testcontainers.CustomizeRequestOption {
	return testcontainers.WithFiles(
		testcontainers.ContainerFile{HostFilePath: s.CA, ContainerFilePath: tlsCAFile, FileMode: 0o644},
		testcontainers.ContainerFile{HostFilePath: s.Cert, ContainerFilePath: tlsCertFile, FileMode: 0o644},
		testcontainers.ContainerFile{HostFilePath: s.Key, ContainerFilePath: tlsKeyFile, FileMode: 0o644},
	)
}

// StartMySQLTLS starts a MySQL-compatible server (the image of
// USERS_TEST_MYSQL_IMAGE) with TLS turned on from files. Plain connections
// stay possible (the root pool used for set-up is one); an account created
// with REQUIRE X509 can only connect over TLS with a client certificate
// signed by files.CA. Terminate removes it.
func StartMySQLTLS(ctx context.Context, files TLSServer) (*MySQL, error) {
	if err := prepare(ctx); err != nil {
		return nil, err
	}
	image, err := resolveImage(ctx, envOr(MySQLImageEnv, DefaultMySQLImage), MySQLImageEnv, LocalMariaDBImage)
	if err != nil {
		return nil, err
	}
	args := []string{"--ssl-ca=" + tlsCAFile, "--ssl-cert=" + tlsCertFile, "--ssl-key=" + tlsKeyFile}
	return withRetries(ctx, startAttempts, func() (*MySQL, error) { return tryStartMySQL(ctx, image, args, files.files()) })
}

// Terminate removes the container.
func (m *MySQL) Terminate(ctx context.Context) error { return m.terminate(ctx) }

// PostgresTLSUser is the account StartPostgresTLS admits over TLS only, and
// only with a client certificate signed by the CA whose common name is this
// name (clientcert=verify-full). The superuser keeps plain connections, for
// set-up.
const PostgresTLSUser = "tlsuser"

// StartPostgresTLS starts a PostgreSQL server (PostgresImage) with TLS
// turned on from files and an authentication file that admits
// PostgresTLSUser over TLS with a verified client certificate only. The
// caller creates that role with the superuser pool (Root). Terminate
// removes it.
func StartPostgresTLS(ctx context.Context, files TLSServer) (*Postgres, error) {
	if err := prepare(ctx); err != nil {
		return nil, err
	}
	image, err := resolveImage(ctx, PostgresImage(), PostgresImageEnv, LocalPostgresImage)
	if err != nil {
		return nil, err
	}
	// PostgreSQL refuses a key readable by others, so the command copies it
	// to a private file owned by the server's user before handing over to
	// the image's entrypoint (the local image's or the upstream one's).
	wrap := func(args []string) []string {
		script := `set -e
install -m 600 -o postgres ` + tlsKeyFile + ` /tmp/server.key
printf 'local all all trust\nhostnossl all postgres 127.0.0.1/32 scram-sha-256\nhostssl all ` + PostgresTLSUser + ` 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n' >/tmp/hba.conf
for e in /usr/local/bin/docker-entrypoint.sh /usr/local/bin/entrypoint.sh; do
	if [ -x "$e" ]; then exec "$e" "$@"; fi
done
echo "no entrypoint found" >&2
exit 1`
		args = append(args,
			"-c", "ssl=on",
			"-c", "ssl_ca_file="+tlsCAFile,
			"-c", "ssl_cert_file="+tlsCertFile,
			"-c", "ssl_key_file=/tmp/server.key",
			"-c", "hba_file=/tmp/hba.conf",
		)
		return append([]string{"sh", "-c", script, "sh"}, args...)
	}
	return withRetries(ctx, startAttempts, func() (*Postgres, error) { return tryStartPostgres(ctx, image, wrap, files.files()) })
}
